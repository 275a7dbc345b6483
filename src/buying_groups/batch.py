"""Batch scoring of a data directory in account buckets, so memory stays bounded.

Everything the scorer computes for a buying group depends only on its own account's rows,
so a data directory can be scored one bucket of accounts at a time with the same result.
``stage_tables`` validates the tables and partitions the activities (the one table that
grows without bound) by bucket into a staging directory, streaming the activities file in
chunks; ``score_buckets`` (pandas) or ``buying_groups.spark_engine`` (Spark) then score the
buckets. Memory holds the accounts, contacts and opportunities, one chunk or bucket of
activities, and the outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from buying_groups.data.examples import contact_inputs
from buying_groups.data.io import find_table
from buying_groups.data.validate import (
    SCHEMA,
    DataValidationError,
    Problem,
    _rejects,
    _show,
    load_tables,
    validate_tables,
)
from buying_groups.scoring import score_contacts, score_groups
from buying_groups.taxonomy import Catalog

SMALL_TABLES = ("accounts", "contacts", "opportunities")
ACTIVITY_COLUMNS = list(SCHEMA["activities"])
ACTIVITY_SCHEMA = pa.schema(
    [(c, pa.timestamp("ns") if c == "timestamp" else pa.string()) for c in ACTIVITY_COLUMNS]
)

# Spark reads microsecond timestamps, not pandas' nanoseconds.
SPARK_READABLE = {"coerce_timestamps": "us", "allow_truncated_timestamps": True}


@dataclass
class Staged:
    """Validated tables, activities partitioned by account bucket under ``directory``."""

    directory: Path
    tables: dict[str, pd.DataFrame]  # accounts, contacts, opportunities, each with ``bucket``
    n_buckets: int
    as_of: pd.Timestamp | None  # the newest valid activity
    rows_in: dict[str, int]
    kept: dict[str, int]
    rejects: pd.DataFrame

    @property
    def activities_dir(self) -> Path:
        return self.directory / "activities"

    def bucket(self, k: int) -> dict[str, pd.DataFrame]:
        """The four tables restricted to bucket ``k``'s accounts."""
        out = {
            name: df[df["bucket"] == k].drop(columns="bucket").reset_index(drop=True)
            for name, df in self.tables.items()
        }
        path = self.activities_dir / f"bucket={k}" / "part-0.parquet"
        acts = pq.read_table(path) if path.exists() else ACTIVITY_SCHEMA.empty_table()
        out["activities"] = acts.to_pandas().astype({"timestamp": "datetime64[ns]"})
        return out


def iter_table(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A table file in chunks of ``chunk_rows`` rows, read as ``read_table`` reads it."""
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows
        )


def stage_tables(
    data_dir: Path | str,
    catalog: Catalog,
    workdir: Path | str,
    on_bad_rows: str = "skip",
    accounts_per_bucket: int = 500,
    chunk_rows: int = 250_000,
) -> Staged:
    """Validate ``data_dir`` and partition its activities by account bucket into ``workdir``.

    Rows are rejected (``on_bad_rows=skip``) or reported (``error``) exactly as
    ``load_tables`` would, with file row numbers; activity ids are checked for duplicates
    across chunks too. Raises ``DataValidationError`` for unusable tables.
    """
    data_dir, workdir = Path(data_dir), Path(workdir)
    small = load_tables(data_dir, catalog, on_bad_rows, SMALL_TABLES)
    problems = list(small.problems)
    if problems:  # unusable tables, or bad rows under on_bad_rows=error
        raise DataValidationError(problems)
    path = find_table(data_dir, "activities")
    if path is None:
        msg = f"file not found: expected activities.parquet or activities.csv in {data_dir}"
        raise DataValidationError([Problem("activities", msg)])

    tables = {name: small.tables.get(name) for name in SMALL_TABLES}
    accounts = tables["accounts"].sort_values("account_id", kind="stable")
    bucket_of = pd.Series(
        np.arange(len(accounts)) // accounts_per_bucket, index=accounts["account_id"].to_numpy()
    )
    for name in SMALL_TABLES:
        tables[name] = tables[name].assign(bucket=tables[name]["account_id"].map(bucket_of))
    contact_bucket = pd.Series(
        tables["contacts"]["bucket"].to_numpy(), index=tables["contacts"]["contact_id"].to_numpy()
    )

    rejects = [small.rejects]
    writers: dict[int, pq.ParquetWriter] = {}
    seen: list[np.ndarray] = []  # hashes of the activity ids kept so far
    seen_rows: list[np.ndarray] = []  # and their row numbers
    rows_in = kept = offset = 0
    newest = None
    try:
        for raw in iter_table(path, chunk_rows):
            raw = raw.reset_index(drop=True)
            res = validate_tables(
                {"activities": raw},
                catalog,
                on_bad_rows,
                known={"contacts": tables["contacts"]},
                row_offset=offset,
            )
            if any(p.row is None for p in res.problems):
                raise DataValidationError(problems + res.problems)
            problems += res.problems
            bad = res.rejects
            # Under on_bad_rows=error a chunk with problems comes back untyped; its ids are
            # still checked against earlier chunks so that every problem is reported.
            acts = res.tables.get("activities", raw)
            # An id seen in an earlier chunk is a duplicate the chunk's own check cannot see.
            h = pd.util.hash_array(acts["activity_id"].to_numpy(dtype=object))
            first = pd.Index(np.concatenate(seen)).get_indexer(h) if seen else np.full(len(h), -1)
            dup = first >= 0
            if dup.any():
                rows_seen = np.concatenate(seen_rows)
                by_row = {}
                for i, j in zip(acts.index[dup], first[dup], strict=True):
                    why = f"duplicate id {_show(acts.at[i, 'activity_id'])} "
                    why += f"(first seen in row {rows_seen[j]})"
                    p = Problem("activities", why, row=int(i) + 1 + offset, column="activity_id")
                    by_row[int(i)] = [p]
                if on_bad_rows == "error":
                    problems += [p for ps in by_row.values() for p in ps]
                dups = _rejects({"activities": raw}, {"activities": by_row})
                bad = pd.concat([bad, dups.assign(row=dups["row"] + offset)], ignore_index=True)
                acts = acts[~dup]
            seen.append(h[~dup])
            seen_rows.append(acts.index.to_numpy() + 1 + offset)
            rejects.append(bad)
            rows_in += len(raw)
            offset += len(raw)
            if on_bad_rows == "error" and problems:
                continue  # keep looking for problems, write nothing
            kept += len(acts)
            if len(acts):
                ts = acts["timestamp"].max()
                newest = ts if newest is None else max(newest, ts)
            acts = acts[ACTIVITY_COLUMNS].assign(bucket=acts["contact_id"].map(contact_bucket))
            for k, part in acts.groupby("bucket", sort=True):
                k = int(k)
                if k not in writers:
                    (workdir / "activities" / f"bucket={k}").mkdir(parents=True, exist_ok=True)
                    target = workdir / "activities" / f"bucket={k}" / "part-0.parquet"
                    writers[k] = pq.ParquetWriter(target, ACTIVITY_SCHEMA, **SPARK_READABLE)
                table = pa.Table.from_pandas(
                    part[ACTIVITY_COLUMNS], schema=ACTIVITY_SCHEMA, preserve_index=False
                )
                writers[k].write_table(table)
    finally:
        for w in writers.values():
            w.close()
    if problems:  # on_bad_rows=error: every problem in the file, nothing staged
        raise DataValidationError(problems)
    if rows_in == 0:
        empty = Problem("activities", "the table is empty (no rows)")
        raise DataValidationError([*problems, empty])
    for name in SMALL_TABLES:  # the Spark engine reads these from the staging directory
        tables[name].to_parquet(workdir / f"{name}.parquet", index=False, **SPARK_READABLE)
    rejects_df = pd.concat([r for r in rejects if len(r)] or [small.rejects], ignore_index=True)
    rank = rejects_df["table"].map({t: i for i, t in enumerate(SCHEMA)})
    rejects_df = rejects_df.iloc[np.lexsort((rejects_df["row"], rank))].reset_index(drop=True)
    counts_in = {**small.rows_in, "activities": rows_in}
    counts_kept = {name: len(tables[name]) for name in SMALL_TABLES} | {"activities": kept}
    return Staged(
        directory=workdir,
        tables=tables,
        n_buckets=int(bucket_of.max()) + 1 if len(bucket_of) else 0,
        as_of=newest,
        rows_in={t: counts_in[t] for t in ("accounts", "contacts", "activities", "opportunities")},
        kept=counts_kept,
        rejects=rejects_df,
    )


def score_bucket(
    wrapped,  # noqa: ANN001  (the buying-groups pyfunc's Python model)
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    top_reasons: int = 3,
    chunk_size: int = 2000,
    on_contacts: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contacts (persona, roles from title + activity) and groups of one bucket's accounts."""
    inputs = contact_inputs(tables["contacts"], tables["activities"], as_of=as_of)
    parts = []
    for start in range(0, len(inputs), chunk_size):
        chunk = inputs.iloc[start : start + chunk_size]
        parts.append(score_contacts(wrapped.predict_roles, chunk, wrapped.catalog))
        if on_contacts is not None:
            on_contacts(len(chunk))
    contacts = pd.concat(parts) if parts else None
    groups = score_groups(
        wrapped.predict_roles, wrapped.qualifier, tables, wrapped.catalog, as_of, top_reasons
    )
    return contacts, groups


def score_buckets(
    wrapped,  # noqa: ANN001
    staged: Staged,
    as_of: pd.Timestamp,
    top_reasons: int = 3,
    chunk_size: int = 2000,
    on_contacts: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every bucket in turn; outputs in a canonical order (contact; account, product)."""
    contacts, groups = [], []
    for k in range(staged.n_buckets):
        c, g = score_bucket(wrapped, staged.bucket(k), as_of, top_reasons, chunk_size, on_contacts)
        if c is not None:
            contacts.append(c)
        groups.append(g)
    return canonical_contacts(pd.concat(contacts)), canonical_groups(pd.concat(groups))


def canonical_contacts(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("contact_id", kind="stable").reset_index(drop=True)


def canonical_groups(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["account_id", "product"], kind="stable").reset_index(drop=True)
