"""The label space (functions, seniorities, buying roles), the product catalog and the role rules.

The label lists are fixed: models carry them as ``id2label`` maps, so reordering them would
silently change what a saved model's outputs mean. The catalog is configuration
(``configs/catalog/``): a seller with other product lines edits it, and roles follow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FUNCTIONS: tuple[str, ...] = (
    "executive",
    "marketing",
    "sales",
    "business_development",
    "customer_success",
    "information_technology",
    "security",
    "engineering",
    "data_analytics",
    "product_management",
    "project_management",
    "operations",
    "finance",
    "legal",
    "human_resources",
    "procurement",
    "administrative",
    "consulting",
    "other",
)

# Ordered from most junior to most senior: comparisons ("never lowers seniority") use the index.
SENIORITIES: tuple[str, ...] = (
    "entry",
    "professional",
    "senior",
    "manager",
    "director",
    "vp",
    "executive",
)

ROLES: tuple[str, ...] = (
    "decision_maker",
    "champion",
    "influencer",
    "end_user",
    "gatekeeper",
    "none",
)

# Actions that show advocacy for a product (spec: demo, trial, hands-on workshop, pricing or
# quote, inviting colleagues). Two distinct kinds in a contact's recent activity make a
# primary-function contact a champion.
ADVOCACY_KINDS: tuple[str, ...] = (
    "requested_demo",
    "started_trial",
    "attended_workshop",
    "requested_pricing",
    "invited_colleague",
)
CHAMPION_MIN_ADVOCACY = 2
GENERAL_TOPIC = "general"

# The activity schema's actions (docs/data.md). Any other action an export names is read
# through ACTION_ALIASES or, failing that, as GENERIC_ACTION: it still counts as activity
# but carries no intent or advocacy (bg-validate reports how many rows each took).
ACTIONS: tuple[str, ...] = (
    "visited",
    "opened",
    "clicked",
    "downloaded",
    "registered",
    "attended",
    "logged_in",
    "invited_colleague",
    "started_trial",
    "requested_demo",
    "requested_pricing",
    "met_sales",
)
GENERIC_ACTION = "interacted"
# Common names of the same actions in CRM and marketing-automation exports, compared after
# lower-casing and turning spaces and hyphens into underscores.
ACTION_ALIASES: dict[str, str] = {
    "visit": "visited",
    "page_view": "visited",
    "viewed_page": "visited",
    "visit_webpage": "visited",
    "open": "opened",
    "email_open": "opened",
    "open_email": "opened",
    "email_opened": "opened",
    "opened_email": "opened",
    "click": "clicked",
    "email_click": "clicked",
    "click_email": "clicked",
    "click_link": "clicked",
    "email_clicked": "clicked",
    "clicked_email": "clicked",
    "clicked_link": "clicked",
    "link_clicked": "clicked",
    "download": "downloaded",
    "form_fill": "downloaded",
    "form_submission": "downloaded",
    "fill_out_form": "downloaded",
    "form_submitted": "downloaded",
    "filled_out_form": "downloaded",
    "register": "registered",
    "registered_for_event": "registered",
    "register_for_event": "registered",
    "attend": "attended",
    "attend_event": "attended",
    "attended_event": "attended",
    "attended_webinar": "attended",
    "webinar_attended": "attended",
    "registered_for_webinar": "registered",
    "login": "logged_in",
    "log_in": "logged_in",
    "logged_into_product": "logged_in",
    "invite_colleague": "invited_colleague",
    "invited_user": "invited_colleague",
    "free_trial_started": "started_trial",
    "trial_started": "started_trial",
    "start_trial": "started_trial",
    "demo_request": "requested_demo",
    "demo_requested": "requested_demo",
    "request_demo": "requested_demo",
    "pricing_request": "requested_pricing",
    "quote_requested": "requested_pricing",
    "request_pricing": "requested_pricing",
    "meeting": "met_sales",
    "meeting_booked": "met_sales",
    "sales_meeting": "met_sales",
    "call": "met_sales",
}


def canonical_key(value: str) -> str:
    """``"Data Platform"``, ``"data-platform"`` and ``"DATA_PLATFORM"`` -> ``"data_platform"``."""
    return re.sub(r"[^0-9a-z]+", "_", value.strip().lower()).strip("_")


@dataclass(frozen=True)
class Product:
    """One product line of the seller's catalog."""

    name: str
    primary: tuple[str, ...]
    adjacent: tuple[str, ...]
    assets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """The seller's product lines, in a fixed order (the order of the role heads)."""

    products: tuple[Product, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.products)

    def __getitem__(self, name: str) -> Product:
        for p in self.products:
            if p.name == name:
                return p
        raise KeyError(f"unknown product {name!r}; the catalog has {list(self.names)}")

    @classmethod
    def from_config(cls, cfg: Mapping) -> Catalog:
        """Build from the ``catalog`` config group (a mapping with a ``products`` mapping)."""
        products = []
        for name, spec in cfg["products"].items():
            unknown = [f for f in [*spec["primary"], *spec["adjacent"]] if f not in FUNCTIONS]
            if unknown:
                raise ValueError(f"catalog product {name!r}: unknown functions {unknown}")
            assets = {k: tuple(v) for k, v in (spec.get("assets") or {}).items()}
            products.append(Product(name, tuple(spec["primary"]), tuple(spec["adjacent"]), assets))
        if not products:
            raise ValueError("the catalog has no products")
        return cls(tuple(products))


def seniority_rank(seniority: pd.Series | np.ndarray) -> np.ndarray:
    """Map seniority names to their rank (0 = entry ... 6 = executive); unknown -> -1."""
    lookup = {s: i for i, s in enumerate(SENIORITIES)}
    return np.array([lookup.get(s, -1) for s in np.asarray(seniority, dtype=object)])


def assign_roles(
    function: pd.Series | np.ndarray,
    seniority: pd.Series | np.ndarray,
    advocacy: pd.Series | np.ndarray,
    product: Product,
) -> np.ndarray:
    """Apply the buying-role rules (first match wins) for one product, vectorised.

    ``advocacy`` is the number of distinct advocacy kinds for this product in each contact's
    recent activity. Labels generated data, drives the rules baseline, and through
    ``role_rules_table`` gives the role model the rules applied to its predicted persona;
    never applied to parsed titles by the trained model.
    """
    f = np.asarray(function, dtype=object)
    s = np.asarray(seniority, dtype=object)
    adv = np.asarray(advocacy, dtype=float)
    primary = np.isin(f, product.primary)
    adjacent = np.isin(f, product.adjacent)
    top = np.isin(s, ["vp", "executive"])
    mid = np.isin(s, ["manager", "director"])
    ic = np.isin(s, ["entry", "professional", "senior"])
    gatekeeper_fn = np.isin(f, ["procurement", "legal", "administrative"]) | (
        (f == "security") & ("security" not in product.primary)
    )
    champion = primary & (s != "entry") & np.isin(s, SENIORITIES) & (adv >= CHAMPION_MIN_ADVOCACY)
    conditions = [
        champion,
        primary & top,
        primary & mid,
        primary & ic,
        f == "executive",
        gatekeeper_fn & (s == "entry"),
        gatekeeper_fn,
        adjacent & (mid | top),
        (f == "finance") & np.isin(s, ["director", "vp", "executive"]),
    ]
    choices = [
        "champion",
        "decision_maker",
        "influencer",
        "end_user",
        "decision_maker",
        "none",
        "gatekeeper",
        "influencer",
        "influencer",
    ]
    return np.select(conditions, choices, default="none").astype(object)


def role_rules_table(
    product: Product,
    functions: Sequence[str] = FUNCTIONS,
    seniorities: Sequence[str] = SENIORITIES,
    roles: Sequence[str] = ROLES,
    advocacy_levels: int = CHAMPION_MIN_ADVOCACY + 1,
) -> list[list[list[int]]]:
    """``assign_roles`` for every persona and advocacy level of one product, as role
    indices ``[function][seniority][advocacy]`` (the last level: that many or more): what a
    model needs to apply the rules to its predicted distributions."""
    f, s, a = np.meshgrid(
        np.arange(len(functions)), np.arange(len(seniorities)), np.arange(advocacy_levels),
        indexing="ij",
    )  # fmt: skip
    named = assign_roles(
        np.asarray(functions, dtype=object)[f.ravel()],
        np.asarray(seniorities, dtype=object)[s.ravel()],
        a.ravel(),
        product,
    )
    index = {r: i for i, r in enumerate(roles)}
    return np.array([index[r] for r in named]).reshape(f.shape).tolist()
