"""Score contacts and buying groups as of a date: the one code path that batch scoring
(``bg-score``) and the deployable ``buying-groups`` model share."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from buying_groups.qualify.compare import journey_stages
from buying_groups.qualify.groups import group_states, members_at, predict_contact_roles
from buying_groups.qualify.model import Qualifier, engage_next, qualifier_outputs
from buying_groups.taxonomy import Catalog

RolePredictor = Callable[[pd.DataFrame], pd.DataFrame]
# The shape of a scored group; bg-score's cache keys on it, so an older run's groups are
# scored again, not mixed in. 2: members carry their persona (function, seniority).
GROUPS_FORMAT = 2


def score_contacts(predict: RolePredictor, inputs: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Persona and per-product role (with probabilities) next to each contact's model inputs
    (``contact_inputs``: ids, ``job_title``, ``activity_text``)."""
    pred = predict(inputs[["job_title", "activity_text"]])
    keep = ["function", "function_proba", "seniority", "seniority_proba"]
    for p in catalog.names:
        keep += [f"role_{p}", f"role_{p}_proba"]
    return pd.concat([inputs, pred[keep].set_axis(inputs.index)], axis=1)


def _members(contact_roles: pd.DataFrame) -> dict[tuple, list[dict]]:
    """Per (account, product): the members as a list of {contact_id, function, seniority,
    role, probability, engaged_30d}; the persona says why the title got its role."""
    m = contact_roles[contact_roles["role"] != "none"].sort_values(
        ["account_id", "product", "role", "contact_id"]
    )
    out: dict[tuple, list[dict]] = {}
    for a, prod, c, f, s, r, p, e in zip(
        m["account_id"],
        m["product"],
        m["contact_id"],
        m["function"],
        m["seniority"],
        m["role"],
        m["role_proba"],
        m["engaged_30d"],
        strict=True,
    ):
        out.setdefault((a, prod), []).append(
            {
                "contact_id": c,
                "function": f,
                "seniority": s,
                "role": r,
                "probability": round(float(p), 4),
                "engaged_30d": bool(e),
            }
        )
    return out


def score_groups(
    predict: RolePredictor,
    qualifier: Qualifier,
    tables: dict[str, pd.DataFrame],
    catalog: Catalog,
    as_of: pd.Timestamp,
    top_reasons: int = 3,
) -> pd.DataFrame:
    """One row per (account, product) at ``as_of``: score, qualified flag, journey stage,
    members with persona and role, reasons, missing roles and whom to engage next."""
    contact_roles = predict_contact_roles(predict, tables["contacts"], catalog)
    state = group_states(tables, contact_roles, catalog, [as_of])
    out = qualifier_outputs(qualifier, state, top=top_reasons)
    # A pair with an open opportunity is past qualification: scored, never flagged.
    out["qualified"] = out["qualified"] & ~state["open_opportunity"].to_numpy()
    members = members_at(contact_roles, tables["activities"], as_of)
    groups = pd.DataFrame(
        {
            "account_id": state["account_id"],
            "product": state["product"],
            "as_of": as_of,
            "score": out["score"].astype(np.float64),
            "qualified": out["qualified"],
            "stage": journey_stages(state, out["qualified"].to_numpy()).to_numpy(),
        }
    )
    by_pair = _members(members)
    pairs = zip(groups["account_id"], groups["product"], strict=True)
    groups["members"] = [by_pair.get(k, []) for k in pairs]
    for col in ("reasons_for", "reasons_against", "missing_roles"):
        groups[col] = out[col]
    groups["engage_next"] = engage_next(state, members).to_numpy()
    return groups
