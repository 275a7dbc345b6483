"""Training labels from what a real CRM holds (``labels=crm``; docs/own-data.md).

* Roles come from ``opportunity_contact_roles``: each row names a contact, an opportunity
  (whose ``product`` the role is for) and a picklist value, mapped to the six roles by
  ``labels.roles``. The example's activity text is rendered as of the opportunity's creation:
  the role holds then, and nothing after it may leak into the input.
* ``none`` (not in the group) is never in a picklist. With ``none_from: unlisted_inactive``
  a contact of the opportunity's account who is named on no opportunity of that product and
  had no event on the product in the ``lookback_days`` before the opportunity's creation is
  ``none`` for it then; ``unlisted`` drops the activity condition; ``mapped`` takes ``none``
  only from picklist values mapped to it. Values mapped to null (``Other``) name a member of
  unknown role: the role is masked out of the loss, never guessed.
* Persona comes from optional contact columns (a data vendor's ``job_function`` /
  ``seniority``) through value maps; where absent, with ``persona.fallback: rules``, from the
  bundled title keywords where a keyword matched (no match: unlabelled).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from buying_groups.baselines.rules import match_function, match_seniority
from buying_groups.data.activity import (
    DEFAULT_MAX_EVENTS,
    advocacy_counts,
    recent_events,
    render_activity_text,
)
from buying_groups.data.splits import role_splits
from buying_groups.data.validate import DataValidationError, Problem
from buying_groups.taxonomy import FUNCTIONS, ROLES, SENIORITIES, Catalog

OCR = "opportunity_contact_roles"
NONE_SOURCES = ("unlisted_inactive", "unlisted", "mapped")


@dataclass(frozen=True)
class CrmLabelConfig:
    """``configs/labels/crm.yaml`` as Python values."""

    roles: Mapping[str, str | None]
    none_from: str = "unlisted_inactive"
    lookback_days: int = 120
    max_none_ratio: float = 3.0  # at most this many none examples per labelled role
    function_column: str | None = "job_function"
    seniority_column: str | None = "seniority"
    function_values: Mapping[str, str | None] | None = None
    seniority_values: Mapping[str, str | None] | None = None
    fallback: str = "rules"  # rules | none
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping, seed: int = 0) -> CrmLabelConfig:
        persona = dict(cfg.get("persona") or {})
        if not cfg.get("roles"):
            raise DataValidationError(
                [Problem(OCR, "no role mapping: set labels.roles (configs/labels/crm.yaml)")]
            )
        if cfg.get("none_from", "unlisted_inactive") not in NONE_SOURCES:
            raise ValueError(f"labels.none_from must be one of {NONE_SOURCES}")
        return cls(
            roles=dict(cfg["roles"]),
            none_from=str(cfg.get("none_from", "unlisted_inactive")),
            lookback_days=int(cfg.get("lookback_days", 120)),
            max_none_ratio=float(cfg.get("max_none_ratio", 3.0)),
            function_column=persona.get("function_column"),
            seniority_column=persona.get("seniority_column"),
            function_values=dict(persona.get("function_values") or {}),
            seniority_values=dict(persona.get("seniority_values") or {}),
            fallback=str(persona.get("fallback", "rules")),
            seed=seed,
        )


def _key(value: object) -> str:
    return " ".join(str(value).split()).casefold()


def map_values(
    values: pd.Series,
    mapping: Mapping[str, str | None],
    allowed: tuple[str, ...],
    table: str,
    column: str,
    setting: str,
) -> pd.Series:
    """CRM values mapped through ``mapping`` (case and spacing ignored; empty cells stay
    empty). A value the mapping lacks, or a mapping onto a name outside ``allowed``, is a
    ``DataValidationError`` naming the value, its first row and how many rows hold it."""
    keyed = {_key(k): v for k, v in mapping.items()}
    bad_targets = sorted({str(v) for v in keyed.values() if v is not None and v not in allowed})
    if bad_targets:
        raise DataValidationError(
            [
                Problem(
                    table,
                    f"{setting} maps onto {bad_targets}, which are not among {list(allowed)}",
                    column=column,
                )
            ]
        )
    present = values.notna() & (values.astype(str).str.strip() != "")
    keys = values[present].map(_key)
    unknown = keys[~keys.isin(keyed)]
    if len(unknown):
        problems = []
        for _, rows in unknown.groupby(unknown, sort=True):
            first = int(np.flatnonzero(values.index == rows.index[0])[0]) + 1
            raw = values.loc[rows.index[0]]
            problems.append(
                Problem(
                    table,
                    f"unknown value {str(raw)!r} ({len(rows)} row(s)): add it to {setting} "
                    "(map it to one of "
                    f"{', '.join(allowed)}, or to null to leave those rows unlabelled)",
                    row=first,
                    column=column,
                )
            )
        raise DataValidationError(problems)
    out = pd.Series(None, index=values.index, dtype=object)
    out[present] = keys.map(keyed)
    return out


def persona_labels(contacts: pd.DataFrame, cfg: CrmLabelConfig) -> pd.DataFrame:
    """``function``, ``seniority`` and their ``persona_source`` (``crm`` where a contact
    column gave it, ``rules`` where the title keywords did, None where neither) per contact."""
    out = pd.DataFrame(index=contacts.index)
    titles = contacts["job_title"].fillna("").astype(str)
    for head, column, values, allowed, match in (
        ("function", cfg.function_column, cfg.function_values, FUNCTIONS, match_function),
        ("seniority", cfg.seniority_column, cfg.seniority_values, SENIORITIES, match_seniority),
    ):
        label = pd.Series(None, index=contacts.index, dtype=object)
        if column and column in contacts.columns:
            setting = f"labels.persona.{head}_values"
            label = map_values(contacts[column], values or {}, allowed, "contacts", column, setting)
        source = pd.Series(np.where(label.notna(), "crm", None), index=contacts.index)
        if cfg.fallback == "rules":
            guess = titles.map(match)  # the keyword's label, or None where none matched
            fill = label.isna() & guess.notna()
            label, source = label.where(~fill, guess), source.where(~fill, "rules")
        out[head], out[f"{head}_source"] = label, source
    return out


def crm_role_rows(
    tables: Mapping[str, pd.DataFrame], catalog: Catalog, cfg: CrmLabelConfig
) -> pd.DataFrame:
    """``contact_id, product, as_of, role`` per labelled (contact, opportunity): the mapped
    OCR rows, then the ``none`` rows of ``cfg.none_from``."""
    ocr = tables[OCR]
    if ocr.empty:
        raise DataValidationError(
            [
                Problem(
                    OCR,
                    "the export has no opportunity contact roles: labels=crm learns roles from "
                    "them (docs/own-data.md); export the table, or train elsewhere and score "
                    "with that model",
                )
            ]
        )
    opps = tables["opportunities"][["opportunity_id", "account_id", "product", "created_at"]]
    role = map_values(ocr["role"], cfg.roles, ROLES, OCR, "role", "labels.roles")
    listed = ocr.assign(role=role).merge(opps, on="opportunity_id", validate="many_to_one")
    rows = [listed[["contact_id", "account_id", "product", "created_at", "role"]]]
    if cfg.none_from != "mapped":
        rows.append(_unlisted(tables, listed, opps, cfg))
    out = pd.concat(rows, ignore_index=True).rename(columns={"created_at": "as_of"})
    return out.drop(columns="account_id")


def _unlisted(
    tables: Mapping[str, pd.DataFrame],
    listed: pd.DataFrame,
    opps: pd.DataFrame,
    cfg: CrmLabelConfig,
) -> pd.DataFrame:
    """``none`` rows: the account's contacts named on no opportunity of the product (and,
    for ``unlisted_inactive``, without an event on it in the lookback), at most
    ``max_none_ratio`` per labelled role (a seeded sample)."""
    contacts = tables["contacts"][["contact_id", "account_id", "created_at"]]
    cand = opps.merge(contacts, on="account_id", suffixes=("", "_contact"))
    cand = cand[~(cand["created_at_contact"] > cand["created_at"])]  # not yet in the CRM
    named = listed[["account_id", "product", "contact_id"]].drop_duplicates().assign(named=True)
    cand = cand.merge(named, on=["account_id", "product", "contact_id"], how="left")
    cand = cand[cand["named"].isna()]
    if cfg.none_from == "unlisted_inactive":
        acts = tables["activities"][["contact_id", "timestamp", "topic"]]
        ev = acts.merge(
            cand[["opportunity_id", "contact_id", "product", "created_at"]],
            left_on=["contact_id", "topic"],
            right_on=["contact_id", "product"],
        )
        recent = ev[
            (ev["timestamp"] <= ev["created_at"])
            & (ev["timestamp"] > ev["created_at"] - pd.Timedelta(days=cfg.lookback_days))
        ]
        active = recent[["opportunity_id", "contact_id"]].drop_duplicates().assign(active=True)
        cand = cand.merge(active, on=["opportunity_id", "contact_id"], how="left")
        cand = cand[cand["active"].isna()]
    cand = cand.sort_values(["opportunity_id", "contact_id"])
    n = int(cfg.max_none_ratio * listed["role"].notna().sum())
    if len(cand) > n:
        cand = cand.sample(n, random_state=cfg.seed).sort_values(["opportunity_id", "contact_id"])
    return cand[["contact_id", "account_id", "product", "created_at"]].assign(role="none")


def crm_examples(
    tables: Mapping[str, pd.DataFrame],
    catalog: Catalog,
    cfg: CrmLabelConfig,
    max_events: int = DEFAULT_MAX_EVENTS,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    holdout_accounts: set[str] | None = None,
) -> pd.DataFrame:
    """Labelled examples from the CRM alone, shaped like ``examples.labelled_examples``:
    one row per labelled (contact, opportunity) with that product's role (the others
    masked) and the activity text as of the opportunity's creation, plus one row per
    contact with a persona from a contact column (as of the export). Every row carries its
    persona labels where known. Split by account; ``holdout_accounts`` go to ``test_ood``."""
    contacts = tables["contacts"].reset_index(drop=True)
    persona = persona_labels(contacts, cfg).set_index(contacts["contact_id"])
    roles = crm_role_rows(tables, catalog, cfg)
    activities = tables["activities"]
    export = activities["timestamp"].max()
    enriched = persona.index[
        (persona["function_source"] == "crm") | (persona["seniority_source"] == "crm")
    ]
    parts = [_rows_as_of(contacts, activities, roles, catalog, max_events)]
    persona_only = pd.DataFrame({"contact_id": enriched, "as_of": export, "product": None})
    parts.append(_rows_as_of(contacts, activities, persona_only, catalog, max_events))
    df = pd.concat(parts, ignore_index=True)
    df = df.join(persona[["function", "seniority", "function_source"]], on="contact_id")
    df["language"], df["title_kind"], df["vocab"] = None, "crm", "crm"
    df["split"] = role_splits(df, holdout_accounts or set(), split_fractions, split_seed)
    return df


def _rows_as_of(
    contacts: pd.DataFrame,
    activities: pd.DataFrame,
    rows: pd.DataFrame,
    catalog: Catalog,
    max_events: int,
) -> pd.DataFrame:
    """Model inputs for ``rows`` (``contact_id, as_of, product[, role]``): title, activity
    text and advocacy as of each row's date, and ``role_<product>`` for its product."""
    info = contacts.set_index("contact_id")
    out = []
    for as_of, group in rows.groupby("as_of", sort=True):
        ids = group["contact_id"]
        acts = activities[activities["contact_id"].isin(set(ids))]
        window = recent_events(acts, as_of=as_of, max_events=max_events)
        text = render_activity_text(window, ids, as_of=as_of, max_events=max_events)
        adv = advocacy_counts(window, list(catalog.names), ids, as_of, max_events)
        part = pd.DataFrame(
            {
                "contact_id": ids.to_numpy(),
                "account_id": info.loc[ids, "account_id"].to_numpy(),
                "job_title": info.loc[ids, "job_title"].fillna("").astype(str).to_numpy(),
                "activity_text": text.to_numpy(),
                "as_of": as_of,
            }
        )
        for p in catalog.names:
            part[f"advocacy_{p}"] = adv[p].to_numpy()
            role = group["role"] if "role" in group else pd.Series(None, index=group.index)
            part[f"role_{p}"] = np.where(group["product"].to_numpy() == p, role.to_numpy(), None)
        out.append(part)
    return pd.concat(out, ignore_index=True)
