"""One row per contact, as the role model and the baselines read it."""

from __future__ import annotations

import pandas as pd

from buying_groups.data.activity import (
    DEFAULT_MAX_EVENTS,
    advocacy_counts,
    recent_events,
    render_activity_text,
)
from buying_groups.data.splits import role_splits
from buying_groups.taxonomy import Catalog


def contact_inputs(
    contacts: pd.DataFrame,
    activities: pd.DataFrame,
    as_of: pd.Timestamp | str | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> pd.DataFrame:
    """``contact_id, account_id, job_title, activity_text``: the model's input columns."""
    text = render_activity_text(
        activities, contacts["contact_id"], as_of=as_of, max_events=max_events
    )
    out = contacts[["contact_id", "account_id", "job_title"]].copy()
    out["job_title"] = out["job_title"].fillna("").astype(str)
    out["activity_text"] = text.to_numpy()
    return out.reset_index(drop=True)


def labelled_examples(
    tables: dict[str, pd.DataFrame],
    labels: dict[str, pd.DataFrame],
    catalog: Catalog,
    as_of: pd.Timestamp | str | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
) -> pd.DataFrame:
    """Model inputs joined with ground truth (``function``, ``seniority``, ``role_<product>``),
    ``language``, ``title_kind`` and the account-level ``split``; ``advocacy_<product>``
    counts the distinct advocacy kinds in the rendered events (an auxiliary training target
    read from the activity log, not from the labels)."""
    # The text and the advocacy counts read the same window of events: select it once (both
    # select it again from this window, which keeps it as it is, at a fraction of the cost).
    window = recent_events(tables["activities"], as_of=as_of, max_events=max_events)
    df = contact_inputs(tables["contacts"], window, as_of, max_events)
    advocacy = advocacy_counts(window, list(catalog.names), df["contact_id"], as_of, max_events)
    for product in catalog.names:
        df[f"advocacy_{product}"] = advocacy[product].to_numpy()
    cl = labels["contact_labels"]
    df = df.merge(
        cl[["contact_id", "function", "seniority", "language", "title_kind", "vocab"]],
        on="contact_id",
        how="left",
        validate="one_to_one",
    )
    roles = labels["role_labels"].pivot(index="contact_id", columns="product", values="role")
    roles = roles.reindex(columns=list(catalog.names)).add_prefix("role_")
    df = df.merge(roles, left_on="contact_id", right_index=True, how="left")
    ood_accounts = set(df.loc[df["vocab"] == "ood", "account_id"])
    df["split"] = role_splits(df, ood_accounts, split_fractions, split_seed).to_numpy()
    return df
