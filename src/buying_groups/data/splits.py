"""Splits that keep evaluation honest.

* Role model: by account (no account in two splits), so colleagues' near-identical titles
  cannot leak from train to test; accounts that use held-out vocabulary form ``test_ood``.
* Qualification: by time, with an embargo: a training snapshot's 90-day label window must
  end before the cut-off, so no training label peeks into the test period.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

# crm_test: with labels=crm on generated data, the CRM's own labels of the test accounts
# (test and test_ood then hold the ground truth, for measurement only)
ROLE_SPLITS = ("train", "validation", "test", "test_ood", "crm_test")


def unit_hash(keys: pd.Series, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per key (same on every machine and run)."""
    return np.array(
        [int(hashlib.md5(f"{seed}:{k}".encode()).hexdigest()[:12], 16) / 16**12 for k in keys]
    )


def role_splits(
    contacts: pd.DataFrame,
    ood_accounts: pd.Index | set[str],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> pd.Series:
    """Split contacts by account into train/validation/test, OOD accounts into test_ood.

    ``fractions`` are the train/validation/test shares of the in-distribution accounts.
    Returns a Series of split names indexed like ``contacts``.
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    accounts = pd.Series(contacts["account_id"].unique())
    u = pd.Series(unit_hash(accounts, seed), index=accounts.to_numpy())
    edges = np.cumsum(fractions)
    split = pd.Series(
        np.select([u < edges[0], u < edges[1]], ["train", "validation"], "test"), index=u.index
    )
    split[split.index.isin(list(ood_accounts))] = "test_ood"
    return contacts["account_id"].map(split).rename("split")


def account_holdout(account_ids: pd.Series, fraction: float, seed: int = 0) -> np.ndarray:
    """True for the accounts (a stable ``fraction`` of them) held out for validation."""
    accounts = pd.Series(account_ids.unique())
    held = pd.Series(unit_hash(accounts, seed + 1) < fraction, index=accounts.to_numpy())
    return account_ids.map(held).to_numpy(dtype=bool)


def snapshot_dates(
    start: pd.Timestamp | str,
    end: pd.Timestamp | str,
    lookback_days: int = 30,
    horizon_days: int = 90,
    freq: str = "MS",
) -> pd.DatetimeIndex:
    """Monthly snapshot dates with a full lookback before and a full label horizon after."""
    first = pd.Timestamp(start) + pd.Timedelta(days=lookback_days)
    last = pd.Timestamp(end) - pd.Timedelta(days=horizon_days)
    return pd.date_range(first, last, freq=freq)


def time_split(
    snapshots: pd.Series | pd.DatetimeIndex, cutoff: pd.Timestamp | str, horizon_days: int = 90
) -> pd.Series:
    """``train`` if the snapshot's label window ends by the cut-off, ``test`` if it starts
    at or after it, ``embargo`` otherwise (dropped from both)."""
    t = pd.Series(pd.to_datetime(snapshots))
    cutoff = pd.Timestamp(cutoff)
    out = np.select(
        [t + pd.Timedelta(days=horizon_days) <= cutoff, t >= cutoff], ["train", "test"], "embargo"
    )
    return pd.Series(out, index=t.index, name="split")
