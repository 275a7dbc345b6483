"""Customer fields of a group, shared by batch scoring and REST: its commercial segment at
``as_of`` (``new_logo``; ``expansion``: a customer's product it does not own yet;
``installed``) and, for every subscription term running then, the renewal risk with its
reasons from a fitted renewal-risk model (docs/retention.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from buying_groups.qualify.groups import predict_contact_roles, segments
from buying_groups.qualify.retention import RenewalRisk, explain_risk, renewal_states, renewals
from buying_groups.taxonomy import Catalog

# Columns added to scored groups, in this order; renewal fields only on installed groups.
GROUP_FIELDS = ("segment", "renewal_date", "renewal_risk", "renewal_reasons")
RENEWAL_COLUMNS = ["term_id", "account_id", "product", "term_end", "decision_date", "risk"]


@dataclass
class RenewalModel:
    """A fitted renewal-risk model with the lead time it was trained with."""

    model: RenewalRisk
    lead_days: int
    where: str  # its URI and version, for the summary


def running_terms(subscriptions: pd.DataFrame, as_of: pd.Timestamp, lead_days: int) -> pd.DataFrame:
    """Terms started by ``as_of`` whose renewal is not decided then: ending after it, or
    ended with no outcome recorded yet. An outcome dated after ``as_of`` is not known then,
    so it is ignored (scoring a past date sees only that date's past)."""
    terms = renewals(subscriptions, lead_days, as_of=as_of)
    started = terms["term_start"] <= as_of
    open_ = (terms["term_end"] > as_of) | terms["outcome"].isna()
    return terms[started & open_].assign(label=np.nan).reset_index(drop=True)


def renewal_risk(
    predict_roles,  # noqa: ANN001 (a role predictor: inputs -> persona and role per product)
    catalog: Catalog,
    tables: dict[str, pd.DataFrame],
    subscriptions: pd.DataFrame,
    renewal: RenewalModel,
    as_of: pd.Timestamp,
    top_reasons: int = 3,
) -> pd.DataFrame:
    """Every term of ``subscriptions`` running at ``as_of``, ranked by risk, with its reasons
    (``RENEWAL_COLUMNS`` + ``reasons``), from ``tables`` (accounts, contacts, activities,
    opportunities: at least the customers' rows)."""
    terms = running_terms(subscriptions, as_of, renewal.lead_days)
    if len(terms) == 0:
        return pd.DataFrame(columns=[*RENEWAL_COLUMNS, "reasons"])
    ids = terms["account_id"]
    contacts = tables["contacts"][tables["contacts"]["account_id"].isin(ids)]
    if "created_at" not in contacts:  # a REST request does not say when contacts arrived
        contacts = contacts.assign(created_at=pd.NaT).astype({"created_at": "datetime64[ns]"})
    acts = tables["activities"]
    customers = {
        "accounts": tables["accounts"][tables["accounts"]["account_id"].isin(ids)],
        "contacts": contacts,
        "activities": acts[acts["contact_id"].isin(contacts["contact_id"])],
        "opportunities": tables["opportunities"][tables["opportunities"]["account_id"].isin(ids)],
        "subscriptions": subscriptions,
    }
    roles = predict_contact_roles(predict_roles, contacts, catalog)
    states = renewal_states(customers, terms, roles, catalog)
    return explain_risk(renewal.model, states, top_reasons)


def add_customer_fields(
    groups: pd.DataFrame,
    accounts: pd.DataFrame,
    subscriptions: pd.DataFrame | None,
    as_of: pd.Timestamp,
    scored: pd.DataFrame | None,
) -> pd.DataFrame:
    """``groups`` with ``GROUP_FIELDS``: the segment at ``as_of`` (from ``subscriptions``,
    else the accounts' ``is_customer``) and, for installed groups, the running term's end,
    risk and reasons (``scored`` from ``score_renewals``; None: no renewal model, the
    renewal fields stay empty)."""
    tables = {"accounts": accounts}
    if subscriptions is not None:
        tables["subscriptions"] = subscriptions
    out = groups.drop(columns=[c for c in GROUP_FIELDS if c in groups])
    out["segment"] = segments(out.assign(snapshot=as_of), tables)
    fields = pd.DataFrame(columns=["account_id", "product", *GROUP_FIELDS[1:]])
    if scored is not None and len(scored):
        # one running term per account and product is the rule; should two overlap, the
        # one that ends first is the renewal due next
        first = scored.sort_values("term_end", kind="stable").drop_duplicates(
            ["account_id", "product"]
        )
        fields = first.rename(
            columns={
                "term_end": "renewal_date",
                "risk": "renewal_risk",
                "reasons": "renewal_reasons",
            }
        )[fields.columns]
    out = out.merge(fields, on=["account_id", "product"], how="left")
    reasons = out["renewal_reasons"].astype(object)
    out["renewal_reasons"] = reasons.where(reasons.notna(), None)
    out["renewal_date"] = pd.to_datetime(out["renewal_date"])
    out["renewal_risk"] = out["renewal_risk"].astype(float)
    return out
