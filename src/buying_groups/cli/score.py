"""bg-score: batch scoring of a data directory with the registered champion model.

config -> model (``models:/buying-groups@champion``) -> validated tables (bad rows to a
rejects file) -> contacts scored in chunks -> groups at ``as_of`` -> atomic writes -> counts
(rows in = rows scored + rows rejected).
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig
from rich.progress import Progress

from buying_groups import tracking
from buying_groups.cli.common import console, fail_with_problems, print_frame
from buying_groups.config import hydra_entry
from buying_groups.data.examples import contact_inputs
from buying_groups.data.io import write_json, write_table
from buying_groups.data.validate import DataValidationError, load_tables
from buying_groups.scoring import score_contacts, score_groups

TABLES = ("accounts", "contacts", "activities", "opportunities")


def load_model(model_uri: str):  # noqa: ANN201
    """The deployable model's parts (role model, qualifier, catalog) and its description."""
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except mlflow.exceptions.MlflowException as exc:
        raise SystemExit(
            f"cannot load {model_uri} from {mlflow.get_tracking_uri()}: {exc.message}\n"
            "Train and promote a model first (bg-pipeline, or bg-train-roles, "
            "bg-train-qualifier, bg-promote), or pass model_uri=<uri>"
        ) from exc
    where = model_uri
    if model_uri.startswith("models:/") and "@" in model_uri:
        name, alias = model_uri[len("models:/") :].split("@", 1)
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
        where = f"{model_uri} (version {version.version})"
    return model.unwrap_python_model(), where


def score_contacts_chunked(wrapped, inputs: pd.DataFrame, chunk_size: int) -> pd.DataFrame:  # noqa: ANN001
    """Persona and roles from title + activity text, ``chunk_size`` contacts at a time."""
    parts = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("scoring contacts", total=len(inputs))
        for start in range(0, len(inputs), chunk_size):
            chunk = inputs.iloc[start : start + chunk_size]
            parts.append(score_contacts(wrapped.predict_roles, chunk, wrapped.catalog))
            progress.advance(task, len(chunk))
    return pd.concat(parts)


def run(cfg: DictConfig) -> dict:
    # -- config and model ----------------------------------------------------------------------
    tracking.setup(cfg.tracking)
    wrapped, where = load_model(cfg.model_uri)
    console.print(f"model: {where}")

    # -- data: validated, bad rows set aside with reasons -------------------------------------
    try:
        result = load_tables(Path(cfg.data_dir), wrapped.catalog, cfg.on_bad_rows, TABLES)
    except DataValidationError as exc:
        fail_with_problems(exc.problems)
    if not result.ok:
        fail_with_problems(result.problems)
    tables = result.tables
    as_of = pd.Timestamp(cfg.as_of) if cfg.as_of else tables["activities"]["timestamp"].max()

    # -- score ---------------------------------------------------------------------------------
    started = time.perf_counter()
    inputs = contact_inputs(tables["contacts"], tables["activities"], as_of=as_of)
    contacts = score_contacts_chunked(wrapped, inputs, cfg.chunk_size)
    with console.status("scoring buying groups"):
        groups = score_groups(
            wrapped.predict_roles,
            wrapped.qualifier,
            tables,
            wrapped.catalog,
            as_of,
            cfg.top_reasons,
        )
    seconds = time.perf_counter() - started

    # -- write atomically ------------------------------------------------------------------------
    out = Path(cfg.output_dir)
    write_table(contacts, out / "contacts_scored.parquet")
    write_table(groups, out / "groups_scored.parquet")
    rejects_path = out / "rejects.csv"
    if len(result.rejects):
        write_table(result.rejects, rejects_path)
    else:
        rejects_path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    counts = pd.DataFrame(
        {
            "rows in": result.rows_in,
            "scored / kept": {t: len(tables[t]) for t in TABLES},
            "rejected": {t: int((result.rejects["table"] == t).sum()) for t in TABLES},
        }
    )
    counts.index.name = "table"
    summary = {
        "model": where,
        "as_of": str(as_of),
        "seconds": round(seconds, 1),
        "contacts_scored": len(contacts),
        "groups_scored": len(groups),
        "qualified_groups": int(groups["qualified"].sum()),
        "counts": counts.to_dict(orient="index"),
    }
    write_json(summary, out / "summary.json")

    # -- report --------------------------------------------------------------------------------
    print_frame(counts, "rows in = scored + rejected")
    stages = groups["stage"].value_counts()
    console.print(
        f"as of {as_of:%Y-%m-%d}: {len(contacts):,} contacts and {len(groups):,} groups scored "
        f"in {seconds:.0f}s; {int(groups['qualified'].sum())} qualified; stages: "
        + ", ".join(f"{k} {v}" for k, v in stages.items())
    )
    console.print(
        f"wrote {out / 'contacts_scored.parquet'}, {out / 'groups_scored.parquet'}"
        + (f", {rejects_path} ({len(result.rejects)} rejected rows)" if len(result.rejects) else "")
    )
    return summary


main = hydra_entry("score", run)
