"""What a batch run adds for customers (``qualify.customers``): each group's segment at
``as_of`` and the renewal risk of every term running then, from the registered
renewal-risk model.

It runs after the buckets are scored, on the customers' rows only, and reads the export's
``subscriptions`` table; an export without one gets segments from ``is_customer`` and no
renewal fields. Nothing here is cached per account: a changed subscription alone must move
a renewal's risk.
"""

from __future__ import annotations

import pandas as pd

from buying_groups.batch.staging import Staged
from buying_groups.qualify.customers import (
    RENEWAL_COLUMNS,
    RenewalModel,
    renewal_risk,
    running_terms,
)


def customer_tables(staged: Staged, account_ids: pd.Series) -> dict[str, pd.DataFrame]:
    """The staged tables (activities included) of ``account_ids`` only."""
    tables = {
        name: df[df["account_id"].isin(account_ids)].drop(columns="bucket").reset_index(drop=True)
        for name, df in staged.tables.items()
    }
    buckets = staged.tables["accounts"].loc[
        staged.tables["accounts"]["account_id"].isin(account_ids), "bucket"
    ]
    ids = tables["contacts"]["contact_id"]
    parts = [staged.activities(int(k), ids) for k in sorted(buckets.unique())]
    tables["activities"] = (
        pd.concat(parts, ignore_index=True) if parts else staged.activities(0, ids.iloc[:0])
    )
    return tables


def score_renewals(
    wrapped,  # noqa: ANN001 (the buying-groups pyfunc's Python model: role predictions)
    staged: Staged,
    renewal: RenewalModel,
    as_of: pd.Timestamp,
    top_reasons: int = 3,
) -> pd.DataFrame:
    """``renewal_risk`` of a staged export (its customers' rows only are read); empty
    without subscriptions."""
    subs = staged.subscriptions
    if subs is None or len(subs) == 0:
        return pd.DataFrame(columns=[*RENEWAL_COLUMNS, "reasons"])
    ids = running_terms(subs, as_of, renewal.lead_days)["account_id"]
    tables = customer_tables(staged, ids)
    return renewal_risk(
        wrapped.predict_roles, wrapped.catalog, tables, subs, renewal, as_of, top_reasons
    )
