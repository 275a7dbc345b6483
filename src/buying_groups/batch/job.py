"""One ``bg-score`` run over staged tables: the role-prediction and account caches of the
last run loaded, the buckets scored (pandas) or handed to Spark, the outputs and caches
written atomically, and the summary every run leaves in ``summary.json``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pandas as pd

from buying_groups.batch.cache import AccountCache
from buying_groups.batch.customers import score_renewals
from buying_groups.batch.scoring import score_buckets
from buying_groups.batch.staging import Staged
from buying_groups.data.io import write_table
from buying_groups.data.validate import rejected_rows
from buying_groups.models.inference import PredictionCache, active_cache, caching
from buying_groups.qualify.customers import RenewalModel, add_customer_fields

TABLES = ("accounts", "contacts", "activities", "opportunities")
CACHE_FILE = "role-predictions.arrow"
RENEWALS_FILE = "renewals_scored.parquet"


def staging_dir(cache_dir: str | None, out: Path) -> AbstractContextManager:
    """Where the partitioned activities go: beside the caches (kept, so that a run whose
    activities file did not change reuses them) or a temporary folder in ``out``."""
    if cache_dir:
        return nullcontext(Path(cache_dir) / "staging")
    return tempfile.TemporaryDirectory(prefix=".staging-", dir=out)


def score_staged(
    wrapped,  # noqa: ANN001 (the buying-groups pyfunc's Python model)
    local_path: str,
    staged: Staged,
    as_of: pd.Timestamp,
    out: Path,
    cfg,  # noqa: ANN001 (bg-score's config: engine, cache_dir, top_reasons, chunk_size, spark)
    on_contacts: Callable[[int], None] | None = None,
    renewal: RenewalModel | None = None,
) -> dict:
    """Score every bucket, add the customer fields (segments; renewal risk with ``renewal``),
    write the outputs (and the caches); returns the tally and the cache counts of the
    summary, with seconds per phase."""
    phases, mark = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        phases[name] = round(time.perf_counter() - mark, 2)
        mark = time.perf_counter()

    started = time.perf_counter()
    cache = active_cache() or PredictionCache()
    cache_file = Path(cfg.cache_dir) / CACHE_FILE if cfg.cache_dir else None
    digest = wrapped.role_weights_digest
    if cache_file is not None:  # the Parquet file of older versions: not read any more
        cache_file.with_suffix(".parquet").unlink(missing_ok=True)
    if cfg.engine == "pandas" and cache_file is not None and cache_file.exists():
        cache.load(cache_file, digest, len(wrapped.catalog.names))  # another model: none
    hits, misses, accounts = cache.hits, cache.misses, None
    renewals = None
    if renewal is not None:  # the customers' running terms: a small share of the rows
        with caching(cache):
            renewals = score_renewals(wrapped, staged, renewal, as_of, cfg.top_reasons)
        lap("renewal risk")
    if cfg.engine == "spark":
        from buying_groups.serving.spark_engine import score_spark

        # Writes its own outputs (directories of Parquet parts, committed by Spark).
        tally = score_spark(
            wrapped, local_path, staged, as_of, out, cfg.spark, cfg.top_reasons, renewals
        )
    else:
        # Accounts whose rows, models, as_of and settings are all unchanged since the last
        # run are not scored again: their contacts and groups come from the cache.
        if cache_file is not None:
            accounts = AccountCache(f"{wrapped.scoring_key}|{as_of}|{cfg.top_reasons}")
            accounts.load(cache_file.parent / "accounts")
        lap("read caches")
        with caching(cache):
            contacts, groups = score_buckets(
                wrapped, staged, as_of, cfg.top_reasons, cfg.chunk_size, on_contacts, accounts
            )
        lap("score")
        groups = add_customer_fields(
            groups, staged.tables["accounts"], staged.subscriptions, as_of, renewals
        )
        written = (out / "contacts_scored.parquet", out / "groups_scored.parquet")
        write_table(contacts, written[0])  # atomically: a temporary file, then a rename
        write_table(groups, written[1])
        lap("write outputs")
        if cache_file is not None:  # this run's inputs only: the cache does not grow
            cache.save(cache_file, digest, keep=cache.used)
            accounts.save(cache_file.parent / "accounts", *written)  # copies of them
        lap("write caches")
        tally = {
            "contacts": len(contacts),
            "groups": len(groups),
            "qualified": int(groups["qualified"].sum()),
            "stages": groups["stage"].value_counts().to_dict(),
            "segments": groups["segment"].value_counts().to_dict(),
        }
    if renewals is not None:
        write_table(renewals, out / RENEWALS_FILE)
        tally["renewals"] = len(renewals)
    else:  # a stale file from an earlier run would mislead
        (out / RENEWALS_FILE).unlink(missing_ok=True)
    n_accounts = len(staged.tables["accounts"])
    return {
        "seconds": time.perf_counter() - started,
        "seconds_by_phase": phases,
        "tally": tally,
        "cache_file": cache_file,
        "digest": digest,
        "role_model_inputs": {"encoded": cache.misses - misses, "from_cache": cache.hits - hits},
        "accounts": {
            "scored": accounts.rescored if accounts else n_accounts,
            "from_cache": accounts.reused if accounts else 0,
        },
        "contacts": {
            "scored": accounts.contacts_rescored if accounts else tally["contacts"],
            "from_cache": accounts.contacts_reused if accounts else 0,
        },
    }


def row_counts(staged: Staged) -> pd.DataFrame:
    """Rows in, kept, rejected and kept with a blanked cell, per table."""
    tables = [t for t in (*TABLES, "subscriptions") if t in staged.rows_in]
    counts = pd.DataFrame(
        {
            "rows in": staged.rows_in,
            "scored / kept": staged.kept,
            "rejected": {t: rejected_rows(staged.rejects, t) for t in tables},
            "kept, a cell blanked": {
                t: rejected_rows(staged.rejects, t, "blanked") for t in tables
            },
        }
    ).reindex(tables)
    counts.index.name = "table"
    return counts


def write_rejects(staged: Staged, path: Path) -> None:
    """The rejected rows with their reasons; no file when none (a stale one would mislead)."""
    if len(staged.rejects):
        write_table(staged.rejects, path)
    else:
        path.unlink(missing_ok=True)


def summary(
    wrapped,  # noqa: ANN001
    where: str,
    engine: str,
    as_of: pd.Timestamp,
    phases: dict,
    result: dict,
    staged: Staged,
    renewal_note: str | None = None,
) -> dict:
    """What ``summary.json`` holds; ``renewal_note`` says which renewal-risk model scored
    the renewals, or why none did."""
    tally = result["tally"]
    return {
        "model": where,
        "engine": engine,
        "as_of": str(as_of),
        "seconds": round(result["seconds"], 1),
        "seconds_by_phase": phases | result["seconds_by_phase"],
        "role_weights_digest": result["digest"],
        "role_variant": wrapped.role_variant,
        **{k: result[k] for k in ("role_model_inputs", "accounts", "contacts")},
        "contacts_scored": tally["contacts"],
        "groups_scored": tally["groups"],
        "qualified_groups": tally["qualified"],
        "segments": tally["segments"],
        "renewals_scored": tally.get("renewals"),
        "renewal_model": renewal_note,
        "counts": row_counts(staged).to_dict(orient="index"),
        # present in an export or not, scoring never reads it: say so rather than omit it
        "not_read": {"opportunity_contact_roles": "training labels (labels=crm) only"},
        "mapped": staged.mapped,
    }
