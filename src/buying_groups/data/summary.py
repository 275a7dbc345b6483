"""Dataset summary: the realism checks the generator must pass, as numbers."""

from __future__ import annotations

import pandas as pd

from buying_groups.data.schema import AT_RISK_OUTCOMES


def committee_sizes(committees: pd.DataFrame) -> pd.Series:
    """Members per in-market window (only windows whose committee formed)."""
    return committees.groupby("window_id").size()


def opportunity_rates(
    opportunities: pd.DataFrame,
    windows: pd.DataFrame,
    accounts: pd.DataFrame,
    products: list[str] | tuple[str, ...],
    follow_days: int = 90,
) -> tuple[float, float]:
    """(in-market, out-of-market) share of account x product pairs with an opportunity.

    An in-market pair counts as converted when an opportunity was created between its
    window's start and ``follow_days`` after its end; an out-of-market pair (no window at
    all) when it had any opportunity.
    """
    merged = windows.merge(opportunities, on=["account_id", "product"], how="left")
    hit = (merged["created_at"] >= merged["start"]) & (
        merged["created_at"] <= merged["end"] + pd.Timedelta(days=follow_days)
    )
    in_pairs = windows[["account_id", "product"]].drop_duplicates()
    converted = merged[hit][["account_id", "product"]].drop_duplicates()
    in_rate = len(converted) / max(len(in_pairs), 1)
    all_pairs = pd.MultiIndex.from_product([accounts["account_id"], products])
    in_index = pd.MultiIndex.from_frame(in_pairs)
    out_pairs = all_pairs.difference(in_index)
    opp_pairs = pd.MultiIndex.from_frame(opportunities[["account_id", "product"]].drop_duplicates())
    out_rate = len(out_pairs.intersection(opp_pairs)) / max(len(out_pairs), 1)
    return in_rate, out_rate


def summarize(
    tables: dict[str, pd.DataFrame],
    labels: dict[str, pd.DataFrame] | None,
    products: list[str] | tuple[str, ...],
) -> dict[str, float | int | str]:
    """Counts and realism statistics of a dataset (labels optional: user data has none)."""
    contacts = tables["contacts"]
    acts = tables["activities"]
    title = contacts["job_title"].fillna("").astype(str).str.strip()
    out: dict[str, float | int | str] = {
        "accounts": len(tables["accounts"]),
        "contacts": len(contacts),
        "activities": len(acts),
        "opportunities": len(tables["opportunities"]),
        "opportunity_contact_roles": len(tables["opportunity_contact_roles"]),
        "first_activity": str(acts["timestamp"].min().date()) if len(acts) else "",
        "last_activity": str(acts["timestamp"].max().date()) if len(acts) else "",
        "empty_title_share": float((title == "").mean()),
        "contacts_with_crm_role_share": float(
            tables["opportunity_contact_roles"]["contact_id"].nunique() / max(len(contacts), 1)
        ),
    }
    subs = tables.get("subscriptions")
    if subs is not None and len(subs):
        decided = subs["outcome"].dropna()
        out["subscriptions"] = int(subs["subscription_id"].nunique())
        out["renewals"] = len(decided)
        out["renewals_at_risk_share"] = float(decided.isin(AT_RISK_OUTCOMES).mean())
    if labels:
        cl = labels["contact_labels"]
        titled = cl["title_kind"] != "empty"
        out["non_english_title_share"] = float(((cl["language"] != "en") & titled).mean())
        out["ood_contact_share"] = float((cl["vocab"] == "ood").mean())
        sizes = committee_sizes(labels["committees"])
        out["in_market_windows"] = int(len(labels["in_market_windows"]))
        out["committee_size_median"] = float(sizes.median()) if len(sizes) else 0.0
        out["committee_size_min"] = int(sizes.min()) if len(sizes) else 0
        out["committee_size_max"] = int(sizes.max()) if len(sizes) else 0
        in_rate, out_rate = opportunity_rates(
            tables["opportunities"], labels["in_market_windows"], tables["accounts"], products
        )
        out["opportunity_rate_in_market"] = in_rate
        out["opportunity_rate_out_of_market"] = out_rate
        roles = labels["role_labels"]["role"].value_counts(normalize=True)
        for r, share in roles.items():
            out[f"role_share_{r}"] = float(share)
    return out
