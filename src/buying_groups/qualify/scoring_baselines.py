"""Lead scoring (MQL) and account scoring (MQA): the practices buying groups replace.

Both score contacts with points per action, decayed by age (a half-life), over the same
snapshots as the qualifier. A contact's points for a product count events on the product's
topic and general events (a lead scorer does not know which product a webinar sells).

* MQL: a pair (account, product) scores the *best* contact's points: one hot lead flags it.
* MQA: a pair scores the *sum* of its account's contacts' points.

Each has a threshold (``flags``); the comparison also ranks by score at equal volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from buying_groups.taxonomy import Catalog

# Typical marketing-automation point values.
DEFAULT_POINTS: Mapping[str, float] = {
    "visited": 1,
    "opened": 1,
    "clicked": 3,
    "downloaded": 5,
    "registered": 5,
    "attended": 10,
    "logged_in": 1,
    "invited_colleague": 10,
    "started_trial": 20,
    "requested_demo": 25,
    "requested_pricing": 25,
    "met_sales": 15,
}


def lead_scores(
    tables: dict[str, pd.DataFrame],
    catalog: Catalog,
    snapshots: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    points: Mapping[str, float] = DEFAULT_POINTS,
    half_life_days: float = 30.0,
    lookback_days: int = 90,
) -> pd.DataFrame:
    """``snapshot, account_id, product, mql_score, mqa_score`` for every pair and snapshot."""
    accounts = pd.Index(tables["accounts"]["account_id"])
    contacts = tables["contacts"]
    products = list(catalog.names)
    n_a, n_p = len(accounts), len(products)
    ev = tables["activities"].sort_values("timestamp", kind="stable")
    ts = ev["timestamp"].to_numpy("datetime64[ns]").astype(np.int64)
    con = pd.Index(contacts["contact_id"])
    ci = con.get_indexer(ev["contact_id"])
    acc_of_contact = accounts.get_indexer(contacts["account_id"])
    pts = ev["action"].map(points).fillna(0.0).to_numpy(float)
    topic = pd.Index(products).get_indexer(ev["topic"])  # -1: general (counts for all)
    frames = []
    for t in pd.DatetimeIndex(snapshots):
        hi = np.searchsorted(ts, t.value, side="right")
        lo = np.searchsorted(ts, (t - pd.Timedelta(days=lookback_days)).value, side="right")
        age = (t.value - ts[lo:hi]) / 86_400e9
        w = pts[lo:hi] * 0.5 ** (age / half_life_days)
        c, tp = ci[lo:hi], topic[lo:hi]
        general = np.bincount(c[tp < 0], weights=w[tp < 0], minlength=len(con))
        per = np.zeros((len(con), n_p))
        np.add.at(per, (c[tp >= 0], tp[tp >= 0]), w[tp >= 0])
        per += general[:, None]
        mql = np.zeros((n_a, n_p))
        np.maximum.at(mql, acc_of_contact, per)
        mqa = np.zeros((n_a, n_p))
        np.add.at(mqa, acc_of_contact, per)
        frames.append(
            pd.DataFrame(
                {
                    "snapshot": t,
                    "account_id": np.repeat(accounts.to_numpy(), n_p),
                    "product": np.tile(np.array(products, dtype=object), n_a),
                    "mql_score": mql.reshape(-1),
                    "mqa_score": mqa.reshape(-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
