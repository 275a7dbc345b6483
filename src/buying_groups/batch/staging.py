"""Staging: the tables of a data directory validated as a stream (bad rows set aside) and
the activities, the one table that grows without bound, partitioned by account bucket into
a staging directory, streaming the activities file in chunks."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from buying_groups import __version__
from buying_groups.batch.cache import activity_sums
from buying_groups.data.io import (
    atomic_write,
    csv_options,
    find_table,
    read_json,
    write_json,
    write_table,
)
from buying_groups.data.schema import OPTIONAL_TABLES, SCHEMA
from buying_groups.data.source import is_native, read_export
from buying_groups.data.validate import (
    DataValidationError,
    Problem,
    _empty_rejects,
    _rejects,
    _show,
    file_not_found,
    load_tables,
    validate_tables,
)
from buying_groups.taxonomy import Catalog

SMALL_TABLES = ("accounts", "contacts", "opportunities")
ACTIVITY_COLUMNS = list(SCHEMA["activities"])
ACTIVITY_SCHEMA = pa.schema(
    [(c, pa.timestamp("ns") if c == "timestamp" else pa.string()) for c in ACTIVITY_COLUMNS]
)

HASHES_DIR = "activity_hashes"  # per-contact activity hashes of a reusable staging, by bucket

# Spark reads microsecond timestamps, not pandas' nanoseconds.
SPARK_READABLE = {"coerce_timestamps": "us", "allow_truncated_timestamps": True}


@dataclass
class Staged:
    """Validated tables, activities partitioned by account bucket under ``directory``."""

    directory: Path
    # accounts, contacts, opportunities (and subscriptions, if any), each with ``bucket``
    tables: dict[str, pd.DataFrame]
    n_buckets: int
    as_of: pd.Timestamp | None  # the newest valid activity
    rows_in: dict[str, int]
    kept: dict[str, int]
    rejects: pd.DataFrame
    reusable: bool = False  # a later run with the same inputs reuses this staging
    mapped: dict[str, int] = field(default_factory=dict)  # rows each mapping rule took
    # the export's optional subscriptions table (validated; None without one): read by the
    # customer fields after the buckets are scored (batch.customers), not per bucket
    subscriptions: pd.DataFrame | None = None

    @property
    def activities_dir(self) -> Path:
        return self.directory / "activities"

    def bucket(self, k: int, activities: bool = True) -> dict[str, pd.DataFrame]:
        """The tables (``activities`` too, unless told not to) restricted to bucket ``k``'s
        accounts."""
        out = {
            name: df[df["bucket"] == k].drop(columns="bucket").reset_index(drop=True)
            for name, df in self.tables.items()
        }
        if activities:
            out["activities"] = self.activities(k)
        return out

    def activities(self, k: int, contact_ids: pd.Series | None = None) -> pd.DataFrame:
        """Bucket ``k``'s activities, only those of ``contact_ids`` if given (the others
        are never converted to pandas)."""
        path = self.activities_dir / f"bucket={k}" / "part-0.parquet"
        acts = pq.read_table(path) if path.exists() else ACTIVITY_SCHEMA.empty_table()
        if contact_ids is not None:
            wanted = pa.array(np.asarray(contact_ids, dtype=object), pa.string())
            acts = acts.filter(pc.is_in(acts["contact_id"], value_set=wanted))
        return acts.to_pandas().astype({"timestamp": "datetime64[ns]"})

    def activity_sums(self, k: int) -> pd.DataFrame:
        """``activity_sums`` of bucket ``k``; kept beside a reusable staging, so a run whose
        activities did not change does not hash them again."""
        path = self.directory / HASHES_DIR / f"bucket={k}.parquet"
        if self.reusable and path.exists():
            kept = pd.read_parquet(path).set_index("contact_id")
            if list(kept.columns) == ["rows", "sum", "sum_sq"]:  # else: an older layout
                return kept
        sums = activity_sums(self.activities(k))
        if self.reusable:
            atomic_write(path, lambda p: sums.reset_index().to_parquet(p, index=False))
        return sums


def iter_table(path: Path, chunk_rows: int, table: str = "activities") -> Iterator[pd.DataFrame]:
    """A table file in chunks of ``chunk_rows`` rows, read as ``read_table`` reads it. A file
    that cannot be read (truncated Parquet, an empty CSV) raises ``DataValidationError``
    naming it, wherever in the file reading fails."""
    try:
        if path.suffix == ".parquet":
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        else:
            options = csv_options(path)
            yield from pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                chunksize=chunk_rows,
                **options,
            )
    except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError) as exc:
        raise DataValidationError([Problem(table, f"cannot read {path.name}: {exc}")]) from None


def stage_tables(
    data_dir: Path | str,
    catalog: Catalog,
    workdir: Path | str,
    on_bad_rows: str = "skip",
    accounts_per_bucket: int = 500,
    chunk_rows: int = 250_000,
    reuse: bool = False,
    source: Mapping | None = None,
) -> Staged:
    """Validate ``data_dir`` and partition its activities by account bucket into ``workdir``.

    Rows are rejected (``on_bad_rows=skip``) or reported (``error``) exactly as
    ``load_tables`` would, with file row numbers; activity ids are checked for duplicates
    across chunks too. Raises ``DataValidationError`` for unusable tables. With ``reuse``,
    activities that ``workdir`` already holds from the same activities file, contacts and
    settings are not read again (a daily run whose activities did not change). An export in
    another ``source``'s shape (``configs/source/``) is mapped onto the schema first, into
    ``workdir/export`` (row numbers stay the export's).
    """
    data_dir, workdir = Path(data_dir), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source_counts: dict[str, int] = {}
    if not is_native(source):
        raw, source_counts = read_export(
            data_dir, source, catalog, (*SMALL_TABLES, "activities", *OPTIONAL_TABLES)
        )
        data_dir = workdir / "export"
        shutil.rmtree(data_dir, ignore_errors=True)  # an earlier export's tables are not this one's
        for name, df in raw.items():
            write_table(df.astype(object).where(df.notna(), None), data_dir / f"{name}.parquet")
    small = load_tables(data_dir, catalog, on_bad_rows, (*SMALL_TABLES, *OPTIONAL_TABLES))
    problems = list(small.problems)
    if problems:  # unusable tables, or bad rows under on_bad_rows=error
        raise DataValidationError(problems)
    path = find_table(data_dir, "activities")
    if path is None:
        raise DataValidationError([file_not_found("activities", "activities", data_dir)])

    # the small tables, and the optional subscriptions when the export has them: a group's
    # state reads its own account's terms (what else it owns), so they travel per bucket
    tables = {
        name: small.tables[name]
        for name in (*SMALL_TABLES, *OPTIONAL_TABLES)
        if name in small.tables
    }
    accounts = tables["accounts"].sort_values("account_id", kind="stable")
    bucket_of = pd.Series(
        np.arange(len(accounts)) // accounts_per_bucket, index=accounts["account_id"].to_numpy()
    )
    for name in tables:
        tables[name] = tables[name].assign(bucket=tables[name]["account_id"].map(bucket_of))
    contact_bucket = pd.Series(
        tables["contacts"]["bucket"].to_numpy(), index=tables["contacts"]["contact_id"].to_numpy()
    )

    manifest = workdir / "manifest.json"
    key = (
        _staging_key(path, tables["contacts"], catalog, on_bad_rows, chunk_rows) if reuse else None
    )
    previous = read_json(manifest) if key and manifest.exists() else {}
    if key and previous.get("key") == key:  # same activities, contacts and settings
        activity_rejects = pd.read_parquet(workdir / "activity_rejects.parquet")
        rows_in, kept = previous["rows_in"], previous["kept"]
        mapped = previous.get("mapped", {})
        newest = pd.Timestamp(previous["newest"]) if previous["newest"] else None
        problems = []  # a staging is kept only when it had none
    else:
        manifest.unlink(missing_ok=True)
        shutil.rmtree(workdir / "activities", ignore_errors=True)
        shutil.rmtree(workdir / HASHES_DIR, ignore_errors=True)
        rows_in, kept, newest, activity_rejects, problems, mapped = _stage_activities(
            path, catalog, tables["contacts"], contact_bucket, workdir, on_bad_rows, chunk_rows
        )
        if key and not problems and rows_in:
            activity_rejects.to_parquet(workdir / "activity_rejects.parquet", index=False)
            newest_text = str(newest) if newest is not None else None
            record = {"key": key, "rows_in": rows_in, "kept": kept, "newest": newest_text}
            record["mapped"] = mapped
            write_json(record, manifest)  # last: a half-written staging is never reused
    rejects = [small.rejects, activity_rejects]
    if problems:  # on_bad_rows=error: every problem in the file, nothing staged
        raise DataValidationError(problems)
    if rows_in == 0:
        empty = Problem("activities", "the table is empty (no rows)")
        raise DataValidationError([*problems, empty])
    if kept == 0:  # on_bad_rows=skip set every row aside: nothing to score
        reason = activity_rejects["reason"].iloc[0] if len(activity_rejects) else "see rejects"
        message = f"all {rows_in:,} rows were rejected, none is left; the first row's problem: "
        raise DataValidationError([Problem("activities", message + reason)])
    for name in (*SMALL_TABLES, *OPTIONAL_TABLES):  # the Spark engine reads them from here
        if name in tables:
            tables[name].to_parquet(workdir / f"{name}.parquet", index=False, **SPARK_READABLE)
        else:  # an earlier staging's file would be read as this export's
            (workdir / f"{name}.parquet").unlink(missing_ok=True)
    rejects_df = pd.concat([r for r in rejects if len(r)] or [small.rejects], ignore_index=True)
    rank = rejects_df["table"].map({t: i for i, t in enumerate(SCHEMA)})
    rejects_df = rejects_df.iloc[np.lexsort((rejects_df["row"], rank))].reset_index(drop=True)
    counts_in = {**small.rows_in, "activities": rows_in}
    counts_kept = {name: len(df) for name, df in small.tables.items()} | {"activities": kept}
    return Staged(
        directory=workdir,
        tables=tables,
        n_buckets=int(bucket_of.max()) + 1 if len(bucket_of) else 0,
        as_of=newest,
        rows_in={t: counts_in[t] for t in SCHEMA if t in counts_in},
        kept=counts_kept,
        rejects=rejects_df,
        reusable=bool(key) and manifest.exists(),
        mapped=source_counts | small.mapped | mapped,
        subscriptions=small.tables.get("subscriptions"),
    )


def _staging_key(
    path: Path, contacts: pd.DataFrame, catalog: Catalog, on_bad_rows: str, chunk_rows: int
) -> str:
    """What staged activities depend on: the file's bytes, the valid contacts and their
    buckets (unknown contacts are rejected), the catalog, the settings and this code."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    rows = pd.util.hash_pandas_object(contacts[["contact_id", "bucket"]], index=False)
    parts = [h.hexdigest(), str(int(rows.sum())), str(len(rows)), repr(catalog.names)]
    return "|".join([*parts, on_bad_rows, str(chunk_rows), __version__])


def _stage_activities(
    path: Path,
    catalog: Catalog,
    contacts: pd.DataFrame,
    contact_bucket: pd.Series,
    workdir: Path,
    on_bad_rows: str,
    chunk_rows: int,
) -> tuple[int, int, pd.Timestamp | None, pd.DataFrame, list[Problem], dict[str, int]]:
    """Stream, validate and partition the activities: rows in, rows kept, the newest kept
    timestamp, rejected rows, problems and the rows each value alias took."""
    problems: list[Problem] = []
    mapped: Counter[str] = Counter()
    rejects: list[pd.DataFrame] = []
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
                known={"contacts": contacts},
                row_offset=offset,
            )
            if any(p.row is None for p in res.problems):
                raise DataValidationError(problems + res.problems)
            problems += res.problems
            mapped.update(res.mapped)
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
    found = [r for r in rejects if len(r)]
    activity_rejects = pd.concat(found, ignore_index=True) if found else _empty_rejects()
    return rows_in, kept, newest, activity_rejects, problems, dict(mapped)
