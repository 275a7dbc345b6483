"""The input contract in one place: the CRM tables an export holds, their columns and
types, keys and references, and the ground-truth tables a generated export adds. The
loader, the validator, the export mappings and the generator all read it from here."""

from __future__ import annotations

from dataclasses import dataclass

# The CRM tables of an export, in the order references need them (a contact refers to an
# account, an activity to a contact, ...); and the ground truth the generator writes beside
# them (never part of a real export: training reads it only where it exists).
TABLES = ("accounts", "contacts", "activities", "opportunities", "opportunity_contact_roles")
# Tables an export may leave out altogether (the installed base: few marketing exports carry
# it). Only the steps that need one read it (bg-train-retention reads subscriptions).
OPTIONAL_TABLES = ("subscriptions",)
LABEL_TABLES = ("contact_labels", "role_labels", "in_market_windows", "committees")

CHANNELS = ("web", "email", "event", "sales", "product")
# Channel names as exports write them (compared case-insensitively, as canonical_key does).
CHANNEL_ALIASES = {
    "webinar": "event",
    "events": "event",
    "website": "web",
    "webpage": "web",
    "e_mail": "email",
    "mail": "email",
    "crm": "sales",
    "app": "product",
    "in_app": "product",
}


@dataclass(frozen=True)
class Col:
    """One column of the input contract."""

    kind: str  # id | str | text | int | number | bool | timestamp
    required: bool = True  # must be present as a column
    nullable: bool = False  # may a cell be empty
    references: str | None = None  # "table.column" this id must exist in
    # an unusable cell is blanked and reported instead of rejecting its row (enrichment a
    # model can do without: a bad company size must not drop an account and its contacts)
    blank_if_bad: bool = False


SCHEMA: dict[str, dict[str, Col]] = {
    "accounts": {
        "account_id": Col("id"),
        "name": Col("str", nullable=True, blank_if_bad=True),
        "industry": Col("str", nullable=True, blank_if_bad=True),
        "employees": Col("int", nullable=True, blank_if_bad=True),
        "country": Col("str", nullable=True, blank_if_bad=True),
        "is_customer": Col("bool", nullable=True, blank_if_bad=True),
    },
    "contacts": {
        "contact_id": Col("id"),
        "account_id": Col("id", references="accounts.account_id"),
        "job_title": Col("text", nullable=True, blank_if_bad=True),
        "country": Col("str", nullable=True, blank_if_bad=True),
        "created_at": Col("timestamp", nullable=True, blank_if_bad=True),
        # optional enrichment (a data vendor's persona fields; labels=crm can learn from them)
        "job_function": Col("str", required=False, nullable=True, blank_if_bad=True),
        "seniority": Col("str", required=False, nullable=True, blank_if_bad=True),
    },
    "activities": {
        "activity_id": Col("id"),
        "contact_id": Col("id", references="contacts.contact_id"),
        "timestamp": Col("timestamp"),
        "channel": Col("str"),
        "action": Col("str"),
        "asset": Col("text", nullable=True, blank_if_bad=True),
        # empty or absent: read from the asset through the catalog, else general
        "topic": Col("str", required=False, nullable=True),
    },
    "opportunities": {
        "opportunity_id": Col("id"),
        "account_id": Col("id", references="accounts.account_id"),
        "product": Col("str"),
        "created_at": Col("timestamp"),
        "closed_at": Col("timestamp", nullable=True),
        "stage": Col("str"),
        "won": Col("bool", nullable=True),
    },
    "opportunity_contact_roles": {
        "opportunity_id": Col("id", references="opportunities.opportunity_id"),
        "contact_id": Col("id", references="contacts.contact_id"),
        "role": Col("str", nullable=True),  # HubSpot leaves an association unlabelled
    },
    # One row per term of a subscription (a contract line); ``outcome`` is what happened at
    # the term's end, empty while it runs: renewed, expanded, downgraded or churned.
    "subscriptions": {
        "term_id": Col("id"),
        "subscription_id": Col("id"),
        "account_id": Col("id", references="accounts.account_id"),
        "product": Col("str"),
        "term_start": Col("timestamp"),
        "term_end": Col("timestamp"),
        "seats": Col("int", required=False, nullable=True, blank_if_bad=True),
        "amount": Col("number", required=False, nullable=True, blank_if_bad=True),
        "outcome": Col("str", nullable=True),
    },
}
SUBSCRIPTION_OUTCOMES = ("renewed", "expanded", "downgraded", "churned")
AT_RISK_OUTCOMES = ("downgraded", "churned")  # revenue at risk at a renewal
PRIMARY_KEYS = {
    "accounts": "account_id",
    "contacts": "contact_id",
    "activities": "activity_id",
    "opportunities": "opportunity_id",
    "subscriptions": "term_id",
}
TABLE_ORDER = tuple(SCHEMA)
# Tables a real export may hold no rows of (few CRMs have contact roles filled at all).
OPTIONAL_ROWS = ("opportunity_contact_roles",)  # referenced tables come first
MAX_TEXT_CHARS = 1_000  # text cells (titles, assets) are cut here; the role model reads 256
assert TABLE_ORDER == TABLES + OPTIONAL_TABLES  # one order for the loader and the generator
