"""What a real CRM holds instead of ground truth: how the generator writes it.

Sales reps fill opportunity contact roles with the CRM's picklist (Salesforce's default
here), for some of the people they work with on an opportunity, senior people far more
often than junior ones, and not always correctly. An enrichment vendor fills a job function
and a seniority for part of the contacts, in its own value names, with some errors. The
ground truth stays in ``labels/`` for measurement; these are the labels a user trains on
(``labels=crm``, docs/own-data.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from buying_groups.taxonomy import FUNCTIONS, SENIORITIES

# Picklist values a rep picks for a contact of each true role (Salesforce's default
# picklist; "Other" is what a rep picks when unsure).
REP_PICKLIST: dict[str, dict[str, float]] = {
    "decision_maker": {
        "Decision Maker": 0.45,
        "Economic Buyer": 0.25,
        "Economic Decision Maker": 0.1,
        "Executive Sponsor": 0.15,
        "Other": 0.05,
    },
    "champion": {"Evaluator": 0.75, "Influencer": 0.15, "Other": 0.1},
    "influencer": {"Influencer": 0.8, "Evaluator": 0.1, "Other": 0.1},
    "end_user": {"Business User": 0.8, "Evaluator": 0.1, "Other": 0.1},
    "gatekeeper": {"Technical Buyer": 0.7, "Other": 0.3},
    "none": {"Other": 0.5, "Influencer": 0.3, "Business User": 0.2},
}
# Reps name the senior people on a deal: relative odds of being listed, by seniority.
LISTING_ODDS = {
    "entry": 0.1,
    "professional": 0.35,
    "senior": 0.6,
    "manager": 1.0,
    "director": 1.6,
    "vp": 2.2,
    "executive": 2.5,
}
NONE_LISTING_ODDS = 0.1  # people outside the group who engaged anyway are rarely listed
# An enrichment vendor's value names (ZoomInfo / Apollo style) for the taxonomy.
VENDOR_FUNCTION = {
    "executive": "C-Suite",
    "marketing": "Marketing",
    "sales": "Sales",
    "business_development": "Business Development",
    "customer_success": "Customer Service",
    "information_technology": "Information Technology",
    "security": "Information Security",
    "engineering": "Engineering & Technical",
    "data_analytics": "Data & Analytics",
    "product_management": "Product Management",
    "project_management": "Project Management",
    "operations": "Operations",
    "finance": "Finance",
    "legal": "Legal",
    "human_resources": "Human Resources",
    "procurement": "Purchasing",
    "administrative": "Administrative",
    "consulting": "Consulting",
    "other": "Other",
}
VENDOR_SENIORITY = {
    "entry": "Entry Level",
    "professional": "Non-Manager",
    "senior": "Senior",
    "manager": "Manager",
    "director": "Director",
    "vp": "VP-Level",
    "executive": "C-Level",
}


@dataclass(frozen=True)
class CrmWriting:
    """How much of the CRM's own labelling the generator writes (``configs/data/*.yaml``)."""

    role_fill_rate: float = 0.05  # target share of all contacts with an OCR row
    role_error_rate: float = 0.1  # listed with a role of another kind
    enrichment_rate: float = 0.3  # share of contacts with vendor function / seniority
    enrichment_error_rate: float = 0.08  # vendor value wrong (a random other value)

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> CrmWriting:
        cfg = dict(cfg or {})
        return cls(**{k: float(v) for k, v in cfg.items() if k in cls.__dataclass_fields__})


def rep_contact_roles(
    people: pd.DataFrame, n_contacts: int, cfg: CrmWriting, rng: np.random.Generator
) -> pd.DataFrame:
    """OCR rows (opportunity_id, contact_id, role as a picklist value) from the people who
    engaged with an opportunity's product before it (``role``: their true role then,
    ``seniority``). The listing probability is scaled so that about ``role_fill_rate`` of
    all contacts get a row (capped by how many people the opportunities have)."""
    odds = people["seniority"].map(LISTING_ODDS).to_numpy(dtype=float)
    odds = np.where(people["role"].to_numpy() == "none", odds * NONE_LISTING_ODDS, odds)
    # people per contact: a contact on several opportunities counts once in the target
    per_contact = people.groupby("contact_id")["contact_id"].transform("size").to_numpy()
    expected = (odds / per_contact).sum()
    scale = cfg.role_fill_rate * n_contacts / max(expected, 1e-9)
    listed = rng.random(len(people)) < np.minimum(odds * scale, 0.95)
    chosen = people.loc[listed].reset_index(drop=True)
    roles = chosen["role"].to_numpy().copy()
    wrong = rng.random(len(chosen)) < cfg.role_error_rate
    others = np.array([r for r in REP_PICKLIST if r != "none"])
    for i in np.flatnonzero(wrong):
        roles[i] = rng.choice(others[others != roles[i]])
    values = [_pick(rng, REP_PICKLIST[r]) for r in roles]
    return pd.DataFrame(
        {
            "opportunity_id": chosen["opportunity_id"],
            "contact_id": chosen["contact_id"],
            "role": values,
        }
    )


def enrichment(contacts: pd.DataFrame, cfg: CrmWriting, rng: np.random.Generator) -> pd.DataFrame:
    """``job_function`` and ``seniority`` columns in the vendor's value names for about
    ``enrichment_rate`` of the contacts (empty elsewhere), some of them wrong."""
    n = len(contacts)
    has = rng.random(n) < cfg.enrichment_rate
    function = contacts["function"].to_numpy().copy()
    seniority = contacts["seniority"].to_numpy().copy()
    wrong_f = rng.random(n) < cfg.enrichment_error_rate
    wrong_s = rng.random(n) < cfg.enrichment_error_rate
    function[wrong_f] = rng.choice(FUNCTIONS, int(wrong_f.sum()))
    # a wrong level is usually one step off
    idx = np.array([SENIORITIES.index(s) for s in seniority])
    step = rng.choice([-1, 1], n)
    seniority[wrong_s] = np.array(SENIORITIES)[np.clip(idx + step, 0, len(SENIORITIES) - 1)][
        wrong_s
    ]
    return pd.DataFrame(
        {
            "job_function": pd.Series(function).map(VENDOR_FUNCTION).where(has),
            "seniority": pd.Series(seniority).map(VENDOR_SENIORITY).where(has),
        },
        index=contacts.index,
    )


def _pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return str(keys[rng.choice(len(keys), p=p / p.sum())])
