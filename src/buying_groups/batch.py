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

import hashlib
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from buying_groups import __version__
from buying_groups.data.examples import contact_inputs
from buying_groups.data.io import atomic_write, find_table, read_json, write_json, write_table
from buying_groups.data.source import is_native, read_export
from buying_groups.data.validate import (
    SCHEMA,
    DataValidationError,
    Problem,
    _empty_rejects,
    _rejects,
    _show,
    file_not_found,
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

HASHES_DIR = "activity_hashes"  # per-contact activity hashes of a reusable staging, by bucket

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
    reusable: bool = False  # a later run with the same inputs reuses this staging
    mapped: dict[str, int] = field(default_factory=dict)  # rows each mapping rule took

    @property
    def activities_dir(self) -> Path:
        return self.directory / "activities"

    def bucket(self, k: int, activities: bool = True) -> dict[str, pd.DataFrame]:
        """The four tables (three without ``activities``) restricted to bucket ``k``'s
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
            yield from pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows
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
        raw, source_counts = read_export(data_dir, source, catalog, (*SMALL_TABLES, "activities"))
        data_dir = workdir / "export"
        for name, df in raw.items():
            write_table(df.astype(object).where(df.notna(), None), data_dir / f"{name}.parquet")
    small = load_tables(data_dir, catalog, on_bad_rows, SMALL_TABLES)
    problems = list(small.problems)
    if problems:  # unusable tables, or bad rows under on_bad_rows=error
        raise DataValidationError(problems)
    path = find_table(data_dir, "activities")
    if path is None:
        raise DataValidationError([file_not_found("activities", "activities", data_dir)])

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
        rows_in={t: counts_in[t] for t in SCHEMA if t in counts_in},
        kept=counts_kept,
        rejects=rejects_df,
        reusable=bool(key) and manifest.exists(),
        mapped=source_counts | small.mapped | mapped,
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


# -- reusing unchanged accounts ----------------------------------------------------------------
_HASH_KEYS = ("buying-groups-01", "buying-groups-02")  # 16-byte keys of pandas' row hash


def _row_hashes(df: pd.DataFrame) -> np.ndarray:
    cols = sorted(c for c in df.columns if c != "bucket")
    return pd.util.hash_pandas_object(df[cols], index=False, hash_key=_HASH_KEYS[0]).to_numpy()


def _sums(
    codes: np.ndarray, n: int, counts: np.ndarray | None, h1: np.ndarray, h2: np.ndarray
) -> dict[str, np.ndarray]:
    """Rows (each element stands for ``counts`` rows; None: one) and the sums (modulo
    2**64) of the row hashes ``h1`` and of their squares ``h2``, by ``codes`` (-1: left out)."""
    keep = codes >= 0
    weights = None if counts is None else counts[keep]
    out = {"rows": np.bincount(codes[keep], weights, minlength=n).astype(np.int64)}
    for key, h in (("sum", h1), ("sum_sq", h2)):
        out[key] = np.zeros(n, dtype=np.uint64)
        np.add.at(out[key], codes[keep], h[keep])
    return out


def activity_sums(activities: pd.DataFrame) -> pd.DataFrame:
    """Per contact: its activity rows, and the sums (modulo 2**64) of their row hashes and
    of the hashes' squares, as ``account_digests`` adds them up per account."""
    codes, contact_ids = pd.factorize(activities["contact_id"])
    h = _row_hashes(activities)
    index = pd.Index(np.asarray(contact_ids, dtype=object), name="contact_id")
    return pd.DataFrame(_sums(codes, len(index), None, h, h**2), index=index)


def account_digests(
    tables: dict[str, pd.DataFrame],
    salt: str,
    per_contact: pd.DataFrame | None = None,
    contact_rows: np.ndarray | None = None,
) -> pd.Series:
    """A 64-bit digest per account of every input row its outputs depend
    on (its account row, contacts, their activities, its opportunities) and of ``salt``
    (models, ``as_of``, settings). Row order does not matter: rows hash as a multiset.
    ``per_contact``: the activities' ``activity_sums``, if known (then ``tables`` needs no
    activities); ``contact_rows``: the contacts' ``_row_hashes``, if known."""
    accounts = pd.Index(tables["accounts"]["account_id"])
    contacts = tables["contacts"]
    account_of_contact = pd.Series(
        contacts["account_id"].to_numpy(), index=contacts["contact_id"].to_numpy()
    )
    if per_contact is None:
        per_contact = activity_sums(tables["activities"])
    columns: dict[str, np.ndarray] = {}
    for name in ("accounts", "contacts", "activities", "opportunities"):
        # Sums of the row hashes and of their squares (modulo 2**64): a multiset hash, so
        # row order does not matter but every row, and how often it occurs, does.
        if name == "activities":  # summed per contact already: add them up per account
            codes = accounts.get_indexer(per_contact.index.map(account_of_contact))
            counts, h1, h2 = (per_contact[c].to_numpy() for c in ("rows", "sum", "sum_sq"))
        else:
            codes = accounts.get_indexer(tables[name]["account_id"])
            known = contact_rows if name == "contacts" else None
            counts, h1 = None, _row_hashes(tables[name]) if known is None else known
            h2 = h1**2
        for key, value in _sums(codes, len(accounts), counts, h1, h2).items():
            columns[f"{name}_{key}"] = value
    return _digests(pd.DataFrame(columns, index=accounts), salt)


def contact_digests(
    contacts: pd.DataFrame,
    salt: str,
    per_contact: pd.DataFrame,
    rows: np.ndarray | None = None,
) -> pd.Series:
    """A 64-bit digest per contact of what its own output row depends on: its row (``rows``:
    the contacts' ``_row_hashes``, if known), its activities (``per_contact``: their
    ``activity_sums``) and ``salt``."""
    pos = per_contact.index.get_indexer(contacts["contact_id"])
    rows = _row_hashes(contacts) if rows is None else rows
    frame = pd.DataFrame({"row": rows}, index=contacts["contact_id"].to_numpy())
    for col in ("rows", "sum", "sum_sq"):  # a contact without activities: zeros
        values = per_contact[col].to_numpy()
        frame[col] = np.where(pos >= 0, values[pos] if len(values) else 0, 0).astype(values.dtype)
    return _digests(frame, salt)


def _digests(frame: pd.DataFrame, salt: str) -> pd.Series:
    """Per row of ``frame`` (index included) and ``salt``: a uint64. A changed account or
    contact keeps its digest with probability 2**-64; kept as numbers, not text, digests are
    compared and stored without a Python object each."""
    digest = pd.util.hash_pandas_object(frame.assign(salt=salt), index=True, hash_key=_HASH_KEYS[1])
    return digest.rename("digest")


def unchanged(previous: pd.Series, digests: pd.Series) -> np.ndarray:
    """Where ``digests`` equal the ``previous`` digest of the same id (False for new ids)."""
    if len(previous) == 0:
        return np.zeros(len(digests), dtype=bool)
    pos = previous.index.get_indexer(digests.index)
    return (pos >= 0) & (previous.to_numpy()[pos] == digests.to_numpy())


@dataclass
class Split:
    """A bucket split by ``AccountCache.split``."""

    tables: dict[str, pd.DataFrame]  # the accounts to score (all their rows: groups need them)
    contact_ids: pd.Series | None  # ids of their contacts to score (None: all)
    contacts: pd.DataFrame | None  # the other contacts' outputs, from the cache
    groups: pd.DataFrame | None  # the other accounts' groups, from the cache


class AccountCache:
    """Contacts and groups an earlier run scored, reused for every account whose digest
    (``account_digests``: its rows, the models, ``as_of`` and settings) is unchanged, so a
    daily run scores only accounts with new or changed rows; in those, contacts whose own
    rows did not change (``contact_digests``) keep their output rows too. ``save`` keeps
    this run's."""

    FILES = ("accounts.parquet", "contacts.parquet", "groups.parquet", "contact_digests.parquet")

    def __init__(self, salt: str) -> None:
        self.salt = salt
        self.previous = pd.Series(dtype=np.uint64)  # account_id -> digest
        self.previous_contacts = pd.Series(dtype=np.uint64)  # contact_id -> digest
        self.contacts: pd.DataFrame | None = None
        self._rows = pd.Index([])  # contact_id of each cached contacts row
        self.groups: pd.DataFrame | None = None
        self.seen: list[pd.Series] = []
        self.seen_contacts: list[pd.Series] = []
        self.reused = self.rescored = 0  # accounts
        self.contacts_reused = self.contacts_rescored = 0

    def load(self, directory: Path) -> int:
        """Read a cache written by ``save`` with the same salt; returns the accounts in it."""
        paths = [Path(directory) / f for f in self.FILES]
        if not all(p.exists() for p in paths):
            return 0
        if (pq.read_schema(paths[0]).metadata or {}).get(b"salt", b"").decode() != self.salt:
            return 0  # another model, as_of or scorer: nothing carries over
        self.previous = _read_digests(paths[0], "account_id")
        self.previous_contacts = _read_digests(paths[3], "contact_id")
        self.contacts = pd.read_parquet(paths[1])
        self.groups = pd.read_parquet(paths[2])
        self._rows = pd.Index(self.contacts["contact_id"])
        return len(self.previous)

    def split(
        self, tables: dict[str, pd.DataFrame], per_contact: pd.DataFrame | None = None
    ) -> Split:
        """Which accounts and contacts of ``tables`` need scoring, and the cached outputs of
        the others. ``per_contact``: as for ``account_digests``."""
        if per_contact is None:
            per_contact = activity_sums(tables["activities"])
        rows = _row_hashes(tables["contacts"])  # both digests hash the contacts' rows
        digests = account_digests(tables, self.salt, per_contact, rows)
        by_contact = contact_digests(tables["contacts"], self.salt, per_contact, rows)
        self.seen.append(digests)
        self.seen_contacts.append(by_contact)
        same = unchanged(self.previous, digests)
        self.reused += int(same.sum())
        self.rescored += int((~same).sum())
        if self.contacts is None:
            self.contacts_rescored += len(by_contact)
            return Split(tables, None, None, None)
        reused = digests.index[same]
        todo = {}
        for name, df in tables.items():
            if name == "activities":
                ids = tables["contacts"].loc[
                    tables["contacts"]["account_id"].isin(reused), "contact_id"
                ]
                todo[name] = df[~df["contact_id"].isin(ids)].reset_index(drop=True)
            else:
                todo[name] = df[~df["account_id"].isin(reused)].reset_index(drop=True)
        # Every contact of a reused account, and the unchanged contacts of the others.
        same_contact = by_contact.index[unchanged(self.previous_contacts, by_contact)]
        rows = self._rows.get_indexer(same_contact)  # lookups, not a pass over the cache
        cached = self.contacts.iloc[np.sort(rows[rows >= 0])]
        ids = todo["contacts"]["contact_id"]
        rescore = ids[~ids.isin(cached["contact_id"])]
        self.contacts_reused += len(by_contact) - len(rescore)
        self.contacts_rescored += len(rescore)
        groups = self.groups[self.groups["account_id"].isin(reused)] if len(reused) else None
        return Split(todo, rescore, cached if len(cached) else None, groups)

    def save(
        self,
        directory: Path,
        contacts: pd.DataFrame | Path,
        groups: pd.DataFrame | Path,
    ) -> None:
        """Write this run's digests and outputs (atomically, file by file). ``contacts`` and
        ``groups`` may be Parquet files of them already written (the run's outputs): they
        are copied, not converted and compressed again."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # Digests out first and back last: a run that stops in between leaves no cache.
        (directory / self.FILES[0]).unlink(missing_ok=True)
        for table, name in ((contacts, self.FILES[1]), (groups, self.FILES[2])):
            if isinstance(table, Path):
                atomic_write(directory / name, lambda p, src=table: shutil.copyfile(src, p))
            else:
                write_table(table, directory / name)
        _write_digests(self.seen_contacts, "contact_id", directory / self.FILES[3], self.salt)
        _write_digests(self.seen, "account_id", directory / self.FILES[0], self.salt)


def _write_digests(parts: list[pd.Series], key: str, path: Path, salt: str) -> None:
    digests = pd.concat(parts) if parts else pd.Series(dtype=np.uint64)
    table = pa.table(
        {
            key: pa.array(digests.index.astype(str), pa.string()),
            "digest": pa.array(digests.to_numpy(), pa.uint64()),
        }
    ).replace_schema_metadata({"salt": salt})
    atomic_write(path, lambda p: pq.write_table(table, p))


def _read_digests(path: Path, key: str) -> pd.Series:
    frame = pd.read_parquet(path)
    if frame["digest"].dtype != np.uint64:  # written by an older version: nothing matches
        return pd.Series(dtype=np.uint64)
    return pd.Series(frame["digest"].to_numpy(), index=frame[key].to_numpy())


def score_bucket(
    wrapped,  # noqa: ANN001  (the buying-groups pyfunc's Python model)
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    top_reasons: int = 3,
    chunk_size: int = 2000,
    on_contacts: Callable[[int], None] | None = None,
    contact_ids: pd.Series | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Contacts (persona, roles from title + activity; only ``contact_ids`` if given) and
    groups of some accounts."""
    contacts, activities = tables["contacts"], tables["activities"]
    if contact_ids is not None:
        contacts = contacts[contacts["contact_id"].isin(contact_ids)]
        activities = activities[activities["contact_id"].isin(contact_ids)]
    inputs = contact_inputs(contacts, activities, as_of=as_of)
    parts = []
    for start in range(0, len(inputs), chunk_size):
        chunk = inputs.iloc[start : start + chunk_size]
        parts.append(score_contacts(wrapped.predict_roles, chunk, wrapped.catalog))
        if on_contacts is not None:
            on_contacts(len(chunk))
    scored = pd.concat(parts) if parts else None
    groups = score_groups(
        wrapped.predict_roles, wrapped.qualifier, tables, wrapped.catalog, as_of, top_reasons
    )
    return scored, groups


def _keep_role_predictions(contacts: pd.DataFrame) -> None:
    """Reused contacts' role predictions stay in the active prediction cache (it keeps only
    the inputs a run used), so a later change to one contact re-encodes only that one."""
    from buying_groups.models.inference import PredictionCache, active_cache, clean_inputs

    cache = active_cache()
    if cache is None:
        return
    titles, texts = clean_inputs(contacts)
    cache.used.update(PredictionCache.key(t, a) for t, a in zip(titles, texts, strict=True))
    cache.used.update(PredictionCache.key(t, "") for t in set(titles))  # group membership


def score_buckets(
    wrapped,  # noqa: ANN001
    staged: Staged,
    as_of: pd.Timestamp,
    top_reasons: int = 3,
    chunk_size: int = 2000,
    on_contacts: Callable[[int], None] | None = None,
    cache: AccountCache | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every bucket in turn; outputs in a canonical order (contact; account, product). With
    ``cache``, unchanged accounts and contacts come from it (the activities of unchanged
    accounts are not even read), and the changed accounts of several buckets are scored
    together, up to the largest bucket's number of accounts: a daily run's few changed
    accounts per bucket cost one model call and one group-state pass, not one per bucket,
    while memory stays bounded by a bucket's."""
    contacts, groups = [], []
    pending: list[Split] = []  # changed accounts not scored yet
    sizes = staged.tables["accounts"]["bucket"].value_counts()
    largest = int(sizes.max()) if len(sizes) else 0  # accounts of the largest bucket

    def score_pending() -> None:
        if not pending:
            return
        tables = {
            name: pd.concat([p.tables[name] for p in pending], ignore_index=True)
            for name in pending[0].tables
        }
        ids = None
        if any(p.contact_ids is not None for p in pending):
            ids = pd.concat(
                [
                    p.tables["contacts"]["contact_id"] if p.contact_ids is None else p.contact_ids
                    for p in pending
                ],
                ignore_index=True,
            )
        c, g = score_bucket(wrapped, tables, as_of, top_reasons, chunk_size, on_contacts, ids)
        if c is not None:
            contacts.append(c)
        groups.append(g)
        pending.clear()

    for k in range(staged.n_buckets):
        if cache is None:
            split = Split(staged.bucket(k), None, None, None)
        else:
            split = cache.split(staged.bucket(k, activities=False), staged.activity_sums(k))
            if len(split.tables["accounts"]):  # read only the activities still needed
                todo = None if split.groups is None else split.tables["contacts"]["contact_id"]
                split.tables["activities"] = staged.activities(k, todo)
        if split.contacts is not None:
            _keep_role_predictions(split.contacts)
            contacts.append(split.contacts)
            if on_contacts is not None:
                on_contacts(len(split.contacts))
        if split.groups is not None:
            groups.append(split.groups)
        n = len(split.tables["accounts"])
        if n == 0:
            continue
        if sum(len(p.tables["accounts"]) for p in pending) + n > largest:
            score_pending()
        pending.append(split)
    score_pending()
    return canonical_contacts(pd.concat(contacts)), canonical_groups(pd.concat(groups))


def canonical_contacts(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("contact_id", kind="stable").reset_index(drop=True)


def canonical_groups(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["account_id", "product"], kind="stable").reset_index(drop=True)
