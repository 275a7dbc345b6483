"""bg-score: batch scoring of a data directory with the registered champion model.

config -> model (``models:/buying-groups@champion``) -> tables validated as a stream (bad rows
to a rejects file) with activities partitioned by account bucket -> contacts and groups at
``as_of``, bucket by bucket (``engine=pandas``) or on Spark (``engine=spark``) -> atomic
writes -> counts (rows in = rows scored + rows rejected).
"""

from __future__ import annotations

import gc
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig
from rich.progress import Progress

from buying_groups import tracking
from buying_groups.batch import AccountCache, score_buckets, stage_tables
from buying_groups.cli.common import (
    console,
    fail_with_problems,
    print_frame,
    print_mapped,
    source_from,
)
from buying_groups.config import hydra_entry
from buying_groups.data.dates import DateError, parse_date
from buying_groups.data.io import check_writable_dir, write_json, write_table
from buying_groups.data.validate import DataValidationError, rejected_rows
from buying_groups.models.inference import PredictionCache, active_cache, caching
from buying_groups.models.runtime import VariantUnavailable

TABLES = ("accounts", "contacts", "activities", "opportunities")
CACHE_FILE = "role-predictions.arrow"


def load_model(model_uri: str, variant: str | None = None):  # noqa: ANN201
    """The deployable model's parts (role model, qualifier, catalog), its description and
    the local directory it was downloaded to. ``variant``: the role model's inference
    variant (None: the one recorded in the model)."""
    try:
        local_path = mlflow.artifacts.download_artifacts(model_uri)
        model = tracking.load_model(local_path, {"variant": variant} if variant else None)
    except VariantUnavailable as exc:
        raise SystemExit(str(exc)) from exc
    except mlflow.exceptions.MlflowException as exc:
        raise SystemExit(
            f"cannot load {model_uri} from {mlflow.get_tracking_uri()}: {exc.message}\n"
            "Train and promote a model first (bg-pipeline, or bg-train-roles, "
            "bg-train-qualifier, bg-promote), or pass model_uri=<uri>"
        ) from exc
    version = tracking.model_identity(model_uri)["version"]
    where = f"{model_uri} (version {version})" if version else model_uri
    wrapped = model.unwrap_python_model()
    return wrapped, f"{where}, role model as {wrapped.role_variant}", local_path


def _score_local(wrapped, staged, as_of: pd.Timestamp, cfg: DictConfig, accounts):  # noqa: ANN001, ANN202
    """The pandas engine: bucket after bucket in this process, with progress."""
    with Progress(console=console, transient=True) as progress:
        n_contacts = len(staged.tables["contacts"])
        task = progress.add_task("scoring contacts and groups", total=n_contacts)
        return score_buckets(
            wrapped,
            staged,
            as_of,
            cfg.top_reasons,
            cfg.chunk_size,
            on_contacts=lambda n: progress.advance(task, n),
            cache=accounts,
        )


def run(cfg: DictConfig) -> dict:
    # -- config and model ----------------------------------------------------------------------
    phases, mark = {}, time.perf_counter()  # seconds per phase, for summary.json

    def lap(name: str) -> None:
        nonlocal mark
        phases[name] = round(time.perf_counter() - mark, 2)
        mark = time.perf_counter()

    # Arguments and the output directory first: a mistake costs a second, not a model load.
    if cfg.engine not in ("pandas", "spark"):
        raise SystemExit(f"engine must be pandas or spark, not {cfg.engine!r}")
    try:
        as_of_arg = parse_date(str(cfg.as_of), "as_of") if cfg.as_of else None
        out = check_writable_dir(Path(cfg.output_dir), "output_dir")
    except (DateError, OSError) as exc:
        raise SystemExit(f"bg-score: {exc}") from None
    tracking.setup(cfg.tracking)
    wrapped, where, local_path = load_model(cfg.model_uri, cfg.variant)
    lap("load model")
    console.print(f"model: {where}")

    # With a cache, the partitioned activities stay there: a run whose activities file did
    # not change reuses them instead of reading and validating it again.
    staging = (
        nullcontext(Path(cfg.cache_dir) / "staging")
        if cfg.cache_dir
        else tempfile.TemporaryDirectory(prefix=".staging-", dir=out)
    )
    with staging as workdir:
        # -- data: validated in a stream, bad rows set aside, activities split by account --
        with console.status("validating and partitioning the input"):
            try:
                staged = stage_tables(
                    Path(cfg.data_dir),
                    wrapped.catalog,
                    Path(workdir),
                    cfg.on_bad_rows,
                    cfg.accounts_per_bucket,
                    cfg.chunk_rows,
                    reuse=bool(cfg.cache_dir),
                    source=source_from(cfg),
                )
            except DataValidationError as exc:
                fail_with_problems(exc.problems)
        lap("validate and stage")
        as_of = as_of_arg or staged.as_of
        if as_of is None:
            raise SystemExit("no valid activities to date the scoring: pass as_of=<date>")

        # -- score, bucket by bucket, reusing the role predictions of earlier runs ----------
        started = time.perf_counter()
        cache = active_cache() or PredictionCache()
        cache_file = Path(cfg.cache_dir) / CACHE_FILE if cfg.cache_dir else None
        digest = wrapped.role_weights_digest
        if cache_file is not None:  # the Parquet file of older versions: not read any more
            cache_file.with_suffix(".parquet").unlink(missing_ok=True)
        if cfg.engine == "pandas" and cache_file is not None and cache_file.exists():
            cache.load(cache_file, digest, len(wrapped.catalog.names))  # another model: none
        hits, misses = cache.hits, cache.misses
        accounts = None
        if cfg.engine == "spark":
            from buying_groups.spark_engine import score_spark

            # Writes its own outputs (directories of Parquet parts, committed by Spark).
            tally = score_spark(wrapped, local_path, staged, as_of, out, cfg.spark, cfg.top_reasons)
        else:  # pandas
            # Accounts whose rows, models, as_of and settings are all unchanged since the
            # last run are not scored again: their contacts and groups come from the cache.
            if cache_file is not None:
                accounts = AccountCache(f"{wrapped.scoring_key}|{as_of}|{cfg.top_reasons}")
                accounts.load(cache_file.parent / "accounts")
            lap("read caches")
            with caching(cache):
                contacts, groups = _score_local(wrapped, staged, as_of, cfg, accounts)
            lap("score")
            # -- write atomically (temp file, then rename) -----------------------------------
            write_table(contacts, out / "contacts_scored.parquet")
            write_table(groups, out / "groups_scored.parquet")
            lap("write outputs")
            if cache_file is not None:  # this run's inputs only: the cache does not grow
                cache.save(cache_file, digest, keep=cache.used)
                written = (out / "contacts_scored.parquet", out / "groups_scored.parquet")
                accounts.save(cache_file.parent / "accounts", *written)  # copies of them
            lap("write caches")
            tally = {
                "contacts": len(contacts),
                "groups": len(groups),
                "qualified": int(groups["qualified"].sum()),
                "stages": groups["stage"].value_counts().to_dict(),
            }
        seconds = time.perf_counter() - started

    rejects_path = out / "rejects.csv"
    if len(staged.rejects):
        write_table(staged.rejects, rejects_path)
    else:
        rejects_path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    counts = pd.DataFrame(
        {
            "rows in": staged.rows_in,
            "scored / kept": staged.kept,
            "rejected": {t: rejected_rows(staged.rejects, t) for t in TABLES},
            "kept, a cell blanked": {
                t: rejected_rows(staged.rejects, t, "blanked") for t in TABLES
            },
        }
    )
    counts.index.name = "table"
    summary = {
        "model": where,
        "engine": cfg.engine,
        "as_of": str(as_of),
        "seconds": round(seconds, 1),
        "seconds_by_phase": phases,
        "role_weights_digest": digest,
        "role_variant": wrapped.role_variant,
        "role_model_inputs": {"encoded": cache.misses - misses, "from_cache": cache.hits - hits},
        "accounts": {
            "scored": accounts.rescored if accounts else len(staged.tables["accounts"]),
            "from_cache": accounts.reused if accounts else 0,
        },
        "contacts": {
            "scored": accounts.contacts_rescored if accounts else tally["contacts"],
            "from_cache": accounts.contacts_reused if accounts else 0,
        },
        "contacts_scored": tally["contacts"],
        "groups_scored": tally["groups"],
        "qualified_groups": tally["qualified"],
        "counts": counts.to_dict(orient="index"),
        # present in an export or not, scoring never reads it: say so rather than omit it
        "not_read": {"opportunity_contact_roles": "training labels (labels=crm) only"},
        "mapped": staged.mapped,
    }
    write_json(summary, out / "summary.json")

    # -- report --------------------------------------------------------------------------------
    print_mapped(staged.mapped, cfg.source.name)
    print_frame(counts, "rows in = scored + rejected")
    cached = summary["role_model_inputs"]
    if cfg.engine == "pandas":
        console.print(
            f"role model: {cached['encoded']:,} distinct inputs encoded, "
            f"{cached['from_cache']:,} from the cache"
            + (f" ({cache_file})" if cache_file is not None else "")
        )
        n = summary["accounts"]
        console.print(
            f"accounts: {n['scored']:,} scored, {n['from_cache']:,} unchanged since the last "
            "run (outputs reused); contacts: "
            f"{summary['contacts']['scored']:,} scored, {summary['contacts']['from_cache']:,} "
            "unchanged"
        )
    console.print(
        f"as of {as_of:%Y-%m-%d}: {tally['contacts']:,} contacts and {tally['groups']:,} groups "
        f"scored in {seconds:.0f}s ({cfg.engine}); {tally['qualified']} qualified; stages: "
        + ", ".join(f"{k} {v}" for k, v in tally["stages"].items())
    )
    console.print(
        f"wrote {out / 'contacts_scored.parquet'}, {out / 'groups_scored.parquet'}"
        + (f", {rejects_path} ({len(staged.rejects)} rejected rows)" if len(staged.rejects) else "")
    )
    return summary


_main = hydra_entry("score", run)


def main() -> None:
    """The ``bg-score`` command."""
    # A batch run allocates millions of short-lived objects (frames, Arrow conversions) beside
    # ~1 M long-lived ones (the libraries imported above). Leave those out of garbage
    # collections and collect the young generation every 10,000 allocations rather than 700:
    # 0.7-0.9 s less collecting in a rescore of the large dataset (docs/benchmarks.md).
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    _main()
