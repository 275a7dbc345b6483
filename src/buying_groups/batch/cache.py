"""Reusing unchanged accounts between runs: a digest per account and per contact of every
row its outputs depend on, and the cache of the contacts and groups an earlier run scored
(``AccountCache``), so a daily rescore scores only what changed."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from buying_groups.data.io import atomic_write, write_table

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
    on (its account row, contacts, their activities, its opportunities and subscriptions) and
    of ``salt``
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
    names = ("accounts", "contacts", "activities", "opportunities", "subscriptions")
    for name in (n for n in names if n in tables or n == "activities"):
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
