"""bg-score: batch scoring of a data directory with the registered champion model.

config -> model (``models:/buying-groups@champion``) -> tables validated as a stream (bad rows
to a rejects file) with activities partitioned by account bucket -> contacts and groups at
``as_of``, bucket by bucket (``engine=pandas``) or on Spark (``engine=spark``) -> atomic
writes -> counts (rows in = rows scored + rows rejected). The work is in ``batch/``.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig
from rich.progress import Progress

from buying_groups import registry, tracking
from buying_groups.batch import job
from buying_groups.batch.staging import stage_tables
from buying_groups.cli.common import (
    console,
    fail_with_problems,
    print_frame,
    print_mapped,
    source_from,
)
from buying_groups.config import hydra_entry
from buying_groups.data.dates import DateError, parse_date
from buying_groups.data.io import check_writable_dir, write_json
from buying_groups.data.validate import DataValidationError


def run(cfg: DictConfig) -> dict:
    # Arguments and the output directory first: a mistake costs a second, not a model load.
    started = time.perf_counter()
    if cfg.engine not in ("pandas", "spark"):
        raise SystemExit(f"engine must be pandas or spark, not {cfg.engine!r}")
    try:
        as_of_arg = parse_date(str(cfg.as_of), "as_of") if cfg.as_of else None
        out = check_writable_dir(Path(cfg.output_dir), "output_dir")
    except (DateError, OSError) as exc:
        raise SystemExit(f"bg-score: {exc}") from None
    tracking.setup(cfg.tracking)
    wrapped, where, local_path = registry.load_deployable(cfg.model_uri, cfg.variant)
    phases = {"load model": round(time.perf_counter() - started, 2)}
    console.print(f"model: {where}")
    with job.staging_dir(cfg.cache_dir, out) as workdir:
        started = time.perf_counter()
        with console.status("validating and partitioning the input"):
            try:
                staged = stage_tables(
                    Path(cfg.data_dir), wrapped.catalog, Path(workdir), cfg.on_bad_rows,
                    cfg.accounts_per_bucket, cfg.chunk_rows, reuse=bool(cfg.cache_dir),
                    source=source_from(cfg),
                )  # fmt: skip
            except DataValidationError as exc:
                fail_with_problems(exc.problems)
        phases["validate and stage"] = round(time.perf_counter() - started, 2)
        as_of = as_of_arg or staged.as_of
        if as_of is None:
            raise SystemExit("no valid activities to date the scoring: pass as_of=<date>")
        renewal, renewal_note = renewal_model(cfg, staged)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(
                "scoring contacts and groups", total=len(staged.tables["contacts"])
            )
            result = job.score_staged(
                wrapped, local_path, staged, as_of, out, cfg,
                on_contacts=lambda n: progress.advance(task, n), renewal=renewal,
            )  # fmt: skip
    job.write_rejects(staged, out / "rejects.csv")
    summary = job.summary(wrapped, where, cfg.engine, as_of, phases, result, staged, renewal_note)
    write_json(summary, out / "summary.json")
    report(cfg, summary, result, staged, out)
    return summary


def renewal_model(cfg: DictConfig, staged) -> tuple[object | None, str | None]:  # noqa: ANN001
    """The renewal-risk model for an export with subscriptions (pandas engine), and a note
    for the summary: which model, or why none."""
    if staged.subscriptions is None:
        return None, "not needed: the export has no subscriptions table"
    if not cfg.renewal_model_uri or cfg.engine != "pandas":
        return None, "off (renewal_model_uri=null)" if cfg.engine == "pandas" else "pandas only"
    try:
        renewal = registry.load_renewal_model(cfg.renewal_model_uri)
    except LookupError as exc:  # not trained yet: score the rest, say so
        console.print(f"[yellow]renewal risk not scored: {exc}[/]")
        return None, str(exc)
    console.print(f"renewal-risk model: {renewal.where}")
    return renewal, renewal.where


def report(cfg: DictConfig, summary: dict, result: dict, staged, out: Path) -> None:  # noqa: ANN001
    print_mapped(staged.mapped, cfg.source.name)
    print_frame(job.row_counts(staged), "rows in = scored + rejected")
    cached, tally = summary["role_model_inputs"], result["tally"]
    if cfg.engine == "pandas":
        cache_file = result["cache_file"]
        console.print(
            f"role model: {cached['encoded']:,} distinct inputs encoded, "
            f"{cached['from_cache']:,} from the cache"
            + (f" ({cache_file})" if cache_file is not None else "")
        )
        n, c = summary["accounts"], summary["contacts"]
        console.print(
            f"accounts: {n['scored']:,} scored, {n['from_cache']:,} unchanged since the last "
            f"run (outputs reused); contacts: {c['scored']:,} scored, {c['from_cache']:,} "
            "unchanged"
        )
    console.print(
        f"as of {summary['as_of'][:10]}: {tally['contacts']:,} contacts and {tally['groups']:,} "
        f"groups scored in {result['seconds']:.0f}s ({cfg.engine}); {tally['qualified']} "
        "qualified; stages: " + ", ".join(f"{k} {v}" for k, v in tally["stages"].items())
    )
    if "segments" in tally:
        console.print("segments: " + ", ".join(f"{k} {v}" for k, v in tally["segments"].items()))
    if tally.get("renewals") is not None:
        console.print(f"renewals: {tally['renewals']:,} running terms scored ({job.RENEWALS_FILE})")
    actions = staged.rejects["action"].value_counts()
    set_aside = ", ".join(f"{n:,} {a}" for a, n in actions.items())  # rejected / blanked rows
    console.print(
        f"wrote {out / 'contacts_scored.parquet'}, {out / 'groups_scored.parquet'}"
        + (f", {out / 'rejects.csv'} ({set_aside})" if len(actions) else "")
    )


main = hydra_entry("score", run)
