"""Synthetic CRM + marketing-automation export with ground truth.

The causal story (docs/data.md tells it in full):

1. Accounts have an industry, a size, a country and maybe a customer relationship.
2. Contacts get a persona (function x seniority) from the account's industry and size, and a
   job title composed from it, in the account's language or English, with CRM noise.
3. Each account x product has latent *in-market windows*. In a window a buying committee
   (3-20 people, mostly 6-10) forms from the contacts whose role for that product is not
   ``none`` and engages with the product's content; champions show advocacy.
4. Everybody also has background activity: newsletters, their own function's content,
   content for their seniority. Noise contacts (students, competitors, existing customers'
   users) engage too, some of them heavily.
5. Opportunities arise weekly with a hazard driven by the *group's observable state*
   (decision maker engaged, champion, breadth of engaged roles, intent, volume), plus noise.
   CRM contact roles get filled for only part of each opportunity's contacts.
6. Labels: function and seniority per contact; role per contact x product by the spec's
   rules applied to the persona and the advocacy in the contact's rendered activity window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from buying_groups.data import vocab
from buying_groups.data.activity import (
    DEFAULT_MAX_EVENTS,
    EVENT_COLUMNS,
    WORKSHOP_PREFIX,
    advocacy_counts,
    advocacy_kind,
)
from buying_groups.data.crm_writing import CrmWriting, enrichment, rep_contact_roles
from buying_groups.data.customers import (
    CustomerConfig,
    drop_after_leaving,
    installed_base,
    owned_products,
    subscriptions,
)
from buying_groups.data.titles import TitleComposer, TitleNoise
from buying_groups.taxonomy import ADVOCACY_KINDS, GENERAL_TOPIC, Catalog, assign_roles

BASE_FUNCTION_WEIGHTS = {
    "executive": 0.035,
    "marketing": 0.09,
    "sales": 0.11,
    "business_development": 0.04,
    "customer_success": 0.06,
    "information_technology": 0.08,
    "security": 0.045,
    "engineering": 0.09,
    "data_analytics": 0.055,
    "product_management": 0.03,
    "project_management": 0.04,
    "operations": 0.07,
    "finance": 0.06,
    "legal": 0.03,
    "human_resources": 0.04,
    "procurement": 0.035,
    "administrative": 0.04,
    "consulting": 0.02,
    "other": 0.04,
}
PYRAMID = {
    "entry": 0.08,
    "professional": 0.33,
    "senior": 0.18,
    "manager": 0.18,
    "director": 0.12,
    "vp": 0.065,
    "executive": 0.045,
}
SENIORITY_OVERRIDES = {
    "executive": {"executive": 1.0},
    "other": {"entry": 0.45, "professional": 0.45, "senior": 0.10},
    "administrative": {
        "entry": 0.1,
        "professional": 0.6,
        "senior": 0.1,
        "manager": 0.15,
        "director": 0.05,
    },
    "project_management": {
        "entry": 0.08,
        "professional": 0.4,
        "senior": 0.2,
        "manager": 0.17,
        "director": 0.1,
        "vp": 0.05,
    },
}
# Events per month for committee members, by the role they play for the product.
COMMITTEE_RATES = {
    "champion": 3.0,
    "decision_maker": 1.5,
    "influencer": 2.0,
    "end_user": 2.5,
    "gatekeeper": 1.0,
    "none": 1.0,
}


@dataclass
class GeneratorConfig:
    """Sizes and knobs of the generator (``configs/data/*.yaml``)."""

    name: str = "demo"
    seed: int = 42
    n_accounts: int = 600
    start_date: str = "2025-01-01"
    months: int = 18
    contacts_base: float = 6.0  # contacts per account ~ base + per_log_employee * ln(employees)
    contacts_per_log_employee: float = 2.2
    max_contacts_per_account: int = 80
    p_ood_account: float = 0.12
    p_customer: float = 0.22
    p_competitor: float = 0.03
    p_customer_user: float = 0.35
    in_market_rate: float = 0.32  # chance an account x product has an in-market window
    p_second_window: float = 0.15
    window_days: tuple[int, int] = (45, 150)
    committee_median: float = 9.5
    background_rate: float = 0.6  # median events per contact per month outside committees
    noise_rate_multiplier: Mapping[str, float] = field(
        default_factory=lambda: {"student": 2.0, "competitor": 3.0, "customer_user": 4.0}
    )
    hazard: Mapping[str, float] = field(
        default_factory=lambda: {
            "intercept": -7.4,
            "decision_maker_engaged": 1.6,
            "champion": 1.6,
            "roles_engaged": 0.5,
            "intent": 0.5,
            "volume": 0.1,
            "customer": 0.3,
            "account_sd": 0.5,
        }
    )
    crm: CrmWriting = field(default_factory=CrmWriting)  # OCR picklist rows, enrichment
    max_events: int = DEFAULT_MAX_EVENTS
    title_noise: TitleNoise = field(default_factory=TitleNoise)
    customers: CustomerConfig = field(default_factory=CustomerConfig)  # the installed base

    @classmethod
    def from_config(cls, cfg: Mapping) -> GeneratorConfig:
        kwargs = {k: v for k, v in dict(cfg).items() if k in cls.__dataclass_fields__}
        if "title_noise" in kwargs:
            kwargs["title_noise"] = TitleNoise(**dict(kwargs["title_noise"]))
        if "crm" in kwargs:
            kwargs["crm"] = CrmWriting.from_config(kwargs["crm"])
        if "customers" in kwargs:
            kwargs["customers"] = CustomerConfig.from_config(kwargs["customers"])
        if "window_days" in kwargs:
            kwargs["window_days"] = tuple(kwargs["window_days"])
        for key in ("hazard", "noise_rate_multiplier"):
            if key in kwargs:
                default = getattr(cls(), key)
                kwargs[key] = {**default, **dict(kwargs[key])}
        return cls(**kwargs)

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.start_date)

    @property
    def end(self) -> pd.Timestamp:
        return self.start + pd.DateOffset(months=self.months)


@dataclass
class Dataset:
    """The five CRM tables plus the ground truth the generator knows."""

    tables: dict[str, pd.DataFrame]
    labels: dict[str, pd.DataFrame]
    config: GeneratorConfig


def generate(cfg: GeneratorConfig, catalog: Catalog) -> Dataset:
    """Generate a dataset; the same config and catalog always give the same tables."""
    rng = np.random.default_rng(cfg.seed)
    accounts = _accounts(cfg, catalog, rng)
    contacts = _contacts(cfg, accounts, rng)
    static_roles = _static_roles(contacts, catalog)
    windows = _in_market_windows(cfg, catalog, accounts, rng)
    committees = _committees(cfg, catalog, windows, contacts, static_roles, accounts, rng)
    windows = windows[windows["window_id"].isin(committees["window_id"])].reset_index(drop=True)
    # The installed base draws from its own stream: the rest of a seed's dataset stays put.
    base_rng = np.random.default_rng([cfg.seed, 2])
    history = cfg.start - pd.Timedelta(days=INSTALLED_HISTORY_DAYS)
    owned = owned_products(cfg.customers, catalog, accounts, base_rng)
    base = installed_base(
        cfg.customers,
        history,
        cfg.end,
        catalog,
        contacts,
        static_roles,
        cfg.title_noise,
        owned,
        base_rng,
    )
    events = pd.concat(
        [
            _background_events(cfg, catalog, contacts, accounts, rng),
            _committee_events(cfg, catalog, committees, windows, rng),
            base.events,
        ],
        ignore_index=True,
    )
    events = drop_after_leaving(events, base.left_at)
    subs = subscriptions(
        cfg.customers,
        cfg.start,
        cfg.end,
        owned,
        pd.concat([contacts, base.successors]),
        events,
        base.members,
        base_rng,
    )
    events = _finalise_events(cfg, events)
    contacts = pd.concat([_created_at(cfg, contacts, events, rng), base.successors])
    contacts = contacts.reset_index(drop=True)
    static_roles = _static_roles(contacts, catalog)
    opportunities, ocr = _opportunities(cfg, catalog, accounts, contacts, static_roles, events, rng)
    contact_labels, role_labels = _labels(cfg, catalog, contacts, events)
    public_contacts = contacts[["contact_id", "account_id", "job_title", "country", "created_at"]]
    # A vendor's persona fields for part of the contacts (own generator: the tables above
    # stay the same whatever the enrichment settings).
    vendor = enrichment(contacts, cfg.crm, np.random.default_rng([cfg.seed, 1]))
    public_contacts = pd.concat([public_contacts, vendor], axis=1)
    public_accounts = accounts[
        ["account_id", "name", "industry", "employees", "country", "is_customer"]
    ]
    tables = {
        "accounts": public_accounts.reset_index(drop=True),
        "contacts": public_contacts.reset_index(drop=True),
        "activities": events,
        "opportunities": opportunities,
        "opportunity_contact_roles": ocr,
        "subscriptions": subs,
    }
    labels = {
        "contact_labels": contact_labels,
        "role_labels": role_labels,
        "in_market_windows": windows,
        "committees": committees,
    }
    return Dataset(tables, labels, cfg)


# Installed-base activity starts this long before the export, so that renewals early in it
# are decided on a history the export itself only partly shows.
INSTALLED_HISTORY_DAYS = 200


# --- accounts and contacts ---------------------------------------------------------------------


def _choice(rng: np.random.Generator, weights: Mapping[str, float], size: int) -> np.ndarray:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=size, p=p / p.sum())]


def _accounts(cfg: GeneratorConfig, catalog: Catalog, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_accounts
    industry = _choice(rng, {k: v[0] for k, v in vocab.INDUSTRIES.items()}, n)
    country = _choice(rng, {k: v[0] for k, v in vocab.COUNTRIES.items()}, n)
    employees = np.clip(np.round(np.exp(rng.normal(math.log(600), 1.3, n))), 10, 250_000)
    competitor = rng.random(n) < cfg.p_competitor
    industry[competitor] = "Software"
    customer = (rng.random(n) < cfg.p_customer) & ~competitor
    owned = np.where(customer, rng.integers(len(catalog.names), size=n), -1)
    names = []
    for i in range(n):
        lang = vocab.COUNTRIES[country[i]][1]
        first, second, legal = vocab.NAME_PARTS[lang]
        names.append(
            f"{first[rng.integers(len(first))]}{second[rng.integers(len(second))]} "
            f"{legal[rng.integers(len(legal))]}"
        )
    return pd.DataFrame(
        {
            "account_id": [f"A{i:06d}" for i in range(n)],
            "name": names,
            "industry": industry,
            "employees": employees.astype("int64"),
            "country": country,
            "is_customer": customer,
            "owned_product": [catalog.names[o] if o >= 0 else None for o in owned],
            "is_competitor": competitor,
            "is_ood": rng.random(n) < cfg.p_ood_account,
        }
    )


def _seniority_weights(function: str, has_c_level: bool) -> dict[str, float]:
    w = dict(SENIORITY_OVERRIDES.get(function, PYRAMID))
    if not has_c_level:
        w.pop("executive", None)
    return w


def _contacts(
    cfg: GeneratorConfig, accounts: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    composer = TitleComposer(rng, cfg.title_noise)
    base = cfg.contacts_base + cfg.contacts_per_log_employee * np.log(accounts["employees"])
    counts = np.clip(
        np.round(base * np.exp(rng.normal(0, 0.35, len(accounts)))), 3, cfg.max_contacts_per_account
    ).astype(int)
    rows = []
    cid = 0
    for acc, n in zip(accounts.itertuples(index=False), counts, strict=True):
        weights = dict(BASE_FUNCTION_WEIGHTS)
        for f, m in vocab.INDUSTRIES[acc.industry][1].items():
            weights[f] *= m
        if acc.employees < 100:  # small firms: the owner answers the email
            weights["executive"] *= 2.5
        functions = _choice(rng, weights, n)
        _, local_lang, p_local = vocab.COUNTRIES[acc.country]
        for f in functions:
            seniority = _choice(
                rng, _seniority_weights(f, f in vocab.C_LEVEL or f == "executive"), 1
            )[0]
            lang = local_lang if rng.random() < p_local else "en"
            if acc.is_competitor:
                noise = "competitor"
            elif f == "other":
                noise = "student" if seniority == "entry" else "non_business"
            elif acc.is_customer and rng.random() < cfg.p_customer_user:
                noise = "customer_user"
            else:
                noise = "none"
            title, kind = composer.compose(f, seniority, lang, bool(acc.is_ood))
            country = (
                acc.country
                if rng.random() < 0.9
                else _choice(rng, {k: v[0] for k, v in vocab.COUNTRIES.items()}, 1)[0]
            )
            rows.append(
                (
                    f"C{cid:07d}",
                    acc.account_id,
                    title,
                    country,
                    f,
                    seniority,
                    lang,
                    kind,
                    "ood" if acc.is_ood else "in",
                    noise,
                )
            )
            cid += 1
    return pd.DataFrame(
        rows,
        columns=[
            "contact_id",
            "account_id",
            "job_title",
            "country",
            "function",
            "seniority",
            "language",
            "title_kind",
            "vocab",
            "noise_kind",
        ],
    )


def _static_roles(contacts: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Role per product from the persona alone (no advocacy): who can sit on a committee."""
    zero = np.zeros(len(contacts))
    return pd.DataFrame(
        {
            p.name: assign_roles(contacts["function"], contacts["seniority"], zero, p)
            for p in catalog.products
        },
        index=contacts["contact_id"],
    )


# --- in-market windows and committees ----------------------------------------------------------


def _in_market_windows(
    cfg: GeneratorConfig, catalog: Catalog, accounts: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    rows = []
    span = (cfg.end - cfg.start).days
    size = np.clip(0.6 + 0.12 * np.log10(accounts["employees"].to_numpy()), 0.6, 1.4)
    for product in catalog.names:
        prop = np.array([vocab.INDUSTRIES[i][2].get(product, 1.0) for i in accounts["industry"]])
        cross_sell = accounts["is_customer"].to_numpy() & (
            accounts["owned_product"].to_numpy() != product
        )
        p = np.clip(cfg.in_market_rate * prop * size * np.where(cross_sell, 1.3, 1.0), 0, 0.9)
        eligible = ~accounts["is_competitor"].to_numpy() & (
            accounts["owned_product"].to_numpy() != product
        )
        n_windows = (rng.random(len(accounts)) < p).astype(int)
        n_windows += (n_windows > 0) & (rng.random(len(accounts)) < cfg.p_second_window)
        for i in np.flatnonzero(eligible & (n_windows > 0)):
            starts = np.sort(rng.integers(-30, span - 30, size=n_windows[i]))
            last_end = -(10**6)
            for s in starts:
                s = max(int(s), last_end + 60)
                if s > span - 30:
                    break
                d = int(rng.integers(*cfg.window_days))
                rows.append(
                    (
                        accounts["account_id"].iat[i],
                        product,
                        cfg.start + pd.Timedelta(days=s),
                        cfg.start + pd.Timedelta(days=s + d),
                    )
                )
                last_end = s + d
    windows = pd.DataFrame(rows, columns=["account_id", "product", "start", "end"])
    windows.insert(0, "window_id", [f"W{i:06d}" for i in range(len(windows))])
    return windows


def _committees(
    cfg: GeneratorConfig,
    catalog: Catalog,
    windows: pd.DataFrame,
    contacts: pd.DataFrame,
    static_roles: pd.DataFrame,
    accounts: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    by_account = {a: g for a, g in contacts.groupby("account_id", sort=False)}
    employees = accounts.set_index("account_id")["employees"]
    weight_of = {"decision_maker": 2.5, "influencer": 1.5, "end_user": 1.5, "gatekeeper": 1.0}
    rows = []
    for w in windows.itertuples(index=False):
        people = by_account[w.account_id]
        people = people[people["noise_kind"] == "none"]
        roles = static_roles.loc[people["contact_id"], w.product].to_numpy()
        primary = people["function"].isin(catalog[w.product].primary).to_numpy()
        eligible = np.flatnonzero(roles != "none")
        if len(eligible) < 3:  # too few people who could buy: no committee forms
            continue
        k = rng.lognormal(math.log(cfg.committee_median), 0.3)
        k += 0.8 * max(0.0, math.log10(employees[w.account_id]) - 3)
        k = int(np.clip(round(k), 3, 20))
        weights = np.array([weight_of[r] for r in roles[eligible]]) * np.where(
            primary[eligible], 2.0, 1.0
        )
        chosen = rng.choice(
            eligible, size=min(k, len(eligible)), replace=False, p=weights / weights.sum()
        )
        tagalongs = np.flatnonzero(roles == "none")
        if len(tagalongs) and rng.random() < 0.3:
            chosen = np.append(chosen, rng.choice(tagalongs))
        member_roles = roles[chosen].astype(object)
        can_champion = [
            i for i, c in enumerate(chosen) if primary[c] and people["seniority"].iat[c] != "entry"
        ]
        n_champions = int(rng.random() < 0.75) + int(rng.random() < 0.25)
        for i in rng.permutation(can_champion)[:n_champions]:
            member_roles[i] = "champion"
        for c, r in zip(chosen, member_roles, strict=True):
            rows.append((w.window_id, w.account_id, w.product, people["contact_id"].iat[c], r))
    return pd.DataFrame(
        rows, columns=["window_id", "account_id", "product", "contact_id", "committee_role"]
    )


# --- events -------------------------------------------------------------------------------------


# (channel, action) for engaging with one asset of a kind.
ASSET_EVENT = {
    "page": ("web", "visited"),
    "document": ("web", "downloaded"),
    "webinar": ("event", "attended"),
    "email": ("email", "opened"),
    "workshop": ("event", "attended"),
}


def _advocacy_event(kind: str, product: str) -> tuple[str, str, str]:
    """(channel, action, asset) of one advocacy kind for a product."""
    label = product.replace("_", " ").title()
    return {
        "requested_demo": ("web", "requested_demo", "Demo request form"),
        "started_trial": ("product", "started_trial", f"{label} trial"),
        "attended_workshop": ("event", "attended", f"{WORKSHOP_PREFIX}: {label}"),
        "requested_pricing": ("sales", "requested_pricing", "Pricing request"),
        "invited_colleague": ("product", "invited_colleague", f"{label} trial workspace"),
    }[kind]


def _background_events(
    cfg: GeneratorConfig,
    catalog: Catalog,
    contacts: pd.DataFrame,
    accounts: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    span_s = (cfg.end - cfg.start).total_seconds()
    rate = np.exp(rng.normal(math.log(cfg.background_rate), 0.8, len(contacts)))
    rate *= contacts["noise_kind"].map(cfg.noise_rate_multiplier).fillna(1.0).to_numpy()
    n = rng.poisson(rate * cfg.months)
    idx = np.repeat(np.arange(len(contacts)), n)
    total = len(idx)
    ts = cfg.start + pd.to_timedelta(rng.random(total) * span_s, unit="s")
    owned = contacts["account_id"].map(accounts.set_index("account_id")["owned_product"])
    noise = contacts["noise_kind"].to_numpy()[idx]
    func = contacts["function"].to_numpy()[idx]
    sen = contacts["seniority"].to_numpy()[idx]
    own = owned.to_numpy()[idx]
    kind = rng.random(total)
    products = list(catalog.names)
    rows_channel = np.empty(total, dtype=object)
    rows_action = np.empty(total, dtype=object)
    rows_asset = np.empty(total, dtype=object)
    rows_topic = np.full(total, GENERAL_TOPIC, dtype=object)
    general_kinds = list(vocab.GENERAL_ASSETS)
    for i in range(total):  # one branch per event; ~1 us each, fine for millions
        r = kind[i]
        if noise[i] == "customer_user" and r < 0.6 and own[i] is not None:
            p = own[i]
            if r < 0.35:
                ch, ac, asset = "product", "logged_in", p.replace("_", " ").title() + " app"
            else:
                ch, ac = "web", "visited"
                asset = f"/docs/{p.replace('_', '-')}"
            rows_channel[i], rows_action[i], rows_asset[i], rows_topic[i] = ch, ac, asset, p
            continue
        if noise[i] == "competitor" and r < 0.55:
            p = products[rng.integers(len(products))]
            assets = catalog[p].assets
            if r < 0.06:
                ch, ac, asset = _advocacy_event(
                    ("requested_demo", "started_trial")[rng.integers(2)], p
                )
            elif r < 0.3:
                ch, ac, asset = "web", "visited", assets["page"][1]  # pricing page
            else:
                k = ("document", "webinar", "page")[rng.integers(3)]
                asset = assets[k][rng.integers(len(assets[k]))]
                ch, ac = ASSET_EVENT[k]
            rows_channel[i], rows_action[i], rows_asset[i], rows_topic[i] = ch, ac, asset, p
            continue
        if r < 0.42:
            k = general_kinds[rng.integers(len(general_kinds))]
            asset = vocab.GENERAL_ASSETS[k][rng.integers(len(vocab.GENERAL_ASSETS[k]))]
            ch, ac = ASSET_EVENT[k]
            if k == "email" and rng.random() < 0.3:
                ac = "clicked"
        elif r < 0.74:
            assets = vocab.FUNCTION_ASSETS[func[i]]
            asset = assets[rng.integers(len(assets))]
            ch, ac = ("web", "visited") if asset.startswith("/") else ("web", "downloaded")
        elif r < 0.86:
            assets = vocab.SENIORITY_ASSETS[sen[i]]
            asset = assets[rng.integers(len(assets))]
            ch, ac = ("web", "visited") if asset.startswith("/") else ("event", "attended")
        else:  # light, unfocused product interest: a page or a product email
            p = products[rng.integers(len(products))]
            k = ("page", "email")[rng.integers(2)]
            assets = catalog[p].assets[k]
            asset = assets[rng.integers(len(assets))]
            ch, ac = ASSET_EVENT[k]
            rows_topic[i] = p
        rows_channel[i], rows_action[i], rows_asset[i] = ch, ac, asset
    return pd.DataFrame(
        {
            "contact_id": contacts["contact_id"].to_numpy()[idx],
            "timestamp": ts,
            "channel": rows_channel,
            "action": rows_action,
            "asset": rows_asset,
            "topic": rows_topic,
        }
    )


ROLE_CONTENT = {
    # (kind weights) of product content per committee role; "pricing" = the product pricing page
    "decision_maker": {
        "page": 0.3,
        "pricing": 0.2,
        "document": 0.25,
        "webinar": 0.1,
        "email": 0.1,
        "met_sales": 0.05,
    },
    "champion": {
        "page": 0.25,
        "document": 0.2,
        "webinar": 0.25,
        "email": 0.15,
        "pricing": 0.1,
        "met_sales": 0.05,
    },
    "influencer": {"page": 0.3, "document": 0.25, "webinar": 0.25, "email": 0.2},
    "end_user": {"page": 0.35, "document": 0.15, "webinar": 0.3, "email": 0.2},
    "gatekeeper": {"trust": 0.4, "pricing": 0.25, "document": 0.2, "email": 0.15},
    "none": {"page": 0.4, "webinar": 0.3, "email": 0.3},
}
GATEKEEPER_ASSETS = ["/trust-center", "/legal/dpa", "/legal/terms", "Security questionnaire"]


def _committee_events(
    cfg: GeneratorConfig,
    catalog: Catalog,
    committees: pd.DataFrame,
    windows: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    win = windows.set_index("window_id")
    out: list[tuple] = []
    for m in committees.itertuples(index=False):
        w = win.loc[m.window_id]
        start, end = w["start"], w["end"]
        dur = (end - start).total_seconds()
        role = m.committee_role
        assets = catalog[m.product].assets
        n = 1 + rng.poisson(COMMITTEE_RATES[role] * dur / (30 * 86400))
        shape = 3.0 if role == "gatekeeper" else 1.6  # gatekeepers show up late
        times = start + pd.to_timedelta(rng.beta(shape, 1.0, n) * dur, unit="s")
        kinds = _choice(rng, ROLE_CONTENT[role], n)
        for t, k in zip(times, kinds, strict=True):
            if k == "pricing":
                ch, ac, asset = "web", "visited", assets["page"][1]
            elif k == "met_sales":
                ch, ac, asset = "sales", "met_sales", "Discovery call"
            elif k == "trust":
                asset = GATEKEEPER_ASSETS[rng.integers(len(GATEKEEPER_ASSETS))]
                ch, ac = ("web", "visited") if asset.startswith("/") else ("web", "downloaded")
            else:
                asset = assets[k][rng.integers(len(assets[k]))]
                ch, ac = ASSET_EVENT[k]
                if k == "webinar" and rng.random() < 0.5:  # registered first, then attended
                    out.append(
                        (
                            m.contact_id,
                            t - pd.Timedelta(days=int(rng.integers(2, 15))),
                            "event",
                            "registered",
                            asset,
                            m.product,
                        )
                    )
            out.append((m.contact_id, t, ch, ac, asset, m.product))
        # Advocacy: champions show two or three kinds, others sometimes one (near misses).
        if role == "champion":
            n_adv = 2 + int(rng.random() < 0.4)
        elif role in ("end_user", "influencer"):
            n_adv = int(rng.random() < 0.3)
        elif role == "decision_maker":
            n_adv = int(rng.random() < 0.25)
        else:
            n_adv = 0
        for kind in rng.choice(ADVOCACY_KINDS, size=n_adv, replace=False):
            t = start + pd.Timedelta(seconds=float(rng.uniform(0.8, 1.0) * dur))
            ch, ac, asset = _advocacy_event(str(kind), m.product)
            out.append((m.contact_id, t, ch, ac, asset, m.product))
    return pd.DataFrame(out, columns=EVENT_COLUMNS)


def _finalise_events(cfg: GeneratorConfig, events: pd.DataFrame) -> pd.DataFrame:
    # Windows may start before or end after the export: keep what falls inside it.
    events = events[(events["timestamp"] >= cfg.start) & (events["timestamp"] < cfg.end)].copy()
    events["timestamp"] = pd.to_datetime(events["timestamp"]).dt.floor("s")
    events = events.sort_values(["timestamp", "contact_id", "action", "asset"], kind="stable")
    events = events.reset_index(drop=True)
    events.insert(0, "activity_id", [f"E{i:09d}" for i in range(len(events))])
    return events


def _created_at(
    cfg: GeneratorConfig, contacts: pd.DataFrame, events: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    contacts = contacts.copy()
    days_before = rng.integers(0, 3 * 365, len(contacts))
    created = cfg.start - pd.to_timedelta(days_before, unit="D")
    late = rng.random(len(contacts)) < 0.25  # a quarter joined the CRM during the period
    span = (cfg.end - cfg.start).days
    created = created.where(
        ~late, cfg.start + pd.to_timedelta(rng.integers(0, span, len(contacts)), unit="D")
    )
    first = events.groupby("contact_id")["timestamp"].min()
    first = contacts["contact_id"].map(first)
    bound = first - pd.to_timedelta(rng.integers(1, 30, len(contacts)), unit="D")
    contacts["created_at"] = (
        pd.Series(created, index=contacts.index)
        .where(first.isna() | (pd.Series(created, index=contacts.index) <= bound), bound)
        .dt.floor("D")
    )
    return contacts


# --- opportunities ------------------------------------------------------------------------------


def _opportunities(
    cfg: GeneratorConfig,
    catalog: Catalog,
    accounts: pd.DataFrame,
    contacts: pd.DataFrame,
    static_roles: pd.DataFrame,
    events: pd.DataFrame,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly hazard from the observable group state; at most one open opportunity per pair."""
    h = cfg.hazard
    products = list(catalog.names)
    acc_index = {a: i for i, a in enumerate(accounts["account_id"])}
    n_acc, n_prod = len(accounts), len(products)
    n_weeks = int(math.ceil((cfg.end - cfg.start).days / 7))
    state = _weekly_group_state(cfg, catalog, contacts, static_roles, events, acc_index, n_weeks)

    # Observable group state -> weekly opportunity probability.
    acct_effect = rng.normal(0, h["account_sd"], (n_acc, 1, 1))
    owned = accounts["owned_product"].to_numpy()
    customer = accounts["is_customer"].to_numpy()
    cust_other = np.stack([customer & (owned != p) for p in products], axis=1)[:, :, None]
    logit = (
        h["intercept"]
        + h["decision_maker_engaged"] * state["dm"]
        + h["champion"] * state["champion"]
        + h["roles_engaged"] * state["roles"]
        + h["intent"] * np.log1p(state["intent"])
        + h["volume"] * np.log1p(state["volume"])
        + h["customer"] * cust_other
        + acct_effect
    )
    p_week = 1 / (1 + np.exp(-logit))
    blocked = np.zeros((n_acc, n_prod), dtype=int)  # weeks until a new opp may open
    never = accounts["is_competitor"].to_numpy()[:, None] | (owned[:, None] == np.array(products))
    draws = rng.random((n_acc, n_prod, n_weeks))
    rows = []
    for wk in range(n_weeks):
        fire = (draws[:, :, wk] < p_week[:, :, wk]) & (blocked <= 0) & ~never
        blocked -= 1
        for a, p in zip(*np.nonzero(fire), strict=True):
            created = cfg.start + pd.Timedelta(days=7 * wk + int(rng.integers(0, 7)))
            open_days = int(rng.integers(30, 150))
            won_logit = (
                -0.6
                + 0.8 * state["champion"][a, p, wk]
                + 0.6 * state["dm"][a, p, wk]
                + 0.2 * state["roles"][a, p, wk]
            )
            won = bool(rng.random() < 1 / (1 + math.exp(-won_logit)))
            closed = created + pd.Timedelta(days=open_days)
            blocked[a, p] = (open_days + 60) // 7 if not won else n_weeks
            rows.append((accounts["account_id"].iat[a], products[p], created, closed, won, wk))
    opp = pd.DataFrame(
        rows, columns=["account_id", "product", "created_at", "closed_at", "won", "week"]
    )
    opp = opp.sort_values(["created_at", "account_id", "product"]).reset_index(drop=True)
    opp.insert(0, "opportunity_id", [f"O{i:06d}" for i in range(len(opp))])
    still_open = opp["closed_at"] > cfg.end
    age = (cfg.end - opp["created_at"]).dt.days
    open_stage = np.select([age < 30, age < 75], ["qualification", "proposal"], "negotiation")
    opp["stage"] = np.where(
        still_open, open_stage, np.where(opp["won"], "closed_won", "closed_lost")
    )
    opp["closed_at"] = opp["closed_at"].where(~still_open)
    opp["won"] = opp["won"].astype("boolean").where(~still_open, pd.NA)
    ocr = _opportunity_contact_roles(cfg, catalog, opp, contacts, events, rng)
    return opp[
        ["opportunity_id", "account_id", "product", "created_at", "closed_at", "stage", "won"]
    ], ocr


def _weekly_group_state(
    cfg: GeneratorConfig,
    catalog: Catalog,
    contacts: pd.DataFrame,
    static_roles: pd.DataFrame,
    events: pd.DataFrame,
    acc_index: Mapping[str, int],
    n_weeks: int,
) -> dict[str, np.ndarray]:
    """Per (account, product, week): engagement features over the trailing 30 days."""
    products = list(catalog.names)
    n_acc, n_prod = len(acc_index), len(products)
    ev = events[events["topic"].isin(products)]
    contact_acc = contacts.set_index("contact_id")["account_id"].map(acc_index)
    a = contact_acc.loc[ev["contact_id"]].to_numpy()
    p = ev["topic"].map({q: i for i, q in enumerate(products)}).to_numpy()
    wk = np.clip(((ev["timestamp"] - cfg.start).dt.days // 7).to_numpy(), 0, n_weeks - 1)
    role = static_roles.to_numpy()[static_roles.index.get_indexer(ev["contact_id"]), p]
    intent = (
        ev["action"]
        .isin(["requested_demo", "requested_pricing", "started_trial", "met_sales"])
        .to_numpy()
    )

    def rolling(x: np.ndarray, weeks: int) -> np.ndarray:
        c = np.cumsum(x, axis=-1)
        out = c.copy()
        out[..., weeks:] -= c[..., :-weeks]
        return out

    def grid(mask: np.ndarray) -> np.ndarray:
        g = np.zeros((n_acc, n_prod, n_weeks))
        np.add.at(g, (a[mask], p[mask], wk[mask]), 1)
        return g

    all_rows = np.ones(len(ev), dtype=bool)
    roles_engaged = sum(
        (rolling(grid(role == r), 4) > 0).astype(float)
        for r in ("decision_maker", "influencer", "end_user", "gatekeeper")
    )
    # Champion: a primary-function contact (not entry) with two advocacy kinds in ~90 days.
    kind = pd.Series(
        np.where(ev["action"].isin(ADVOCACY_KINDS), ev["action"], None), index=ev.index
    ).mask(
        (ev["action"] == "attended") & ev["asset"].str.startswith(WORKSHOP_PREFIX),
        "attended_workshop",
    )
    adv = pd.DataFrame({"c": ev["contact_id"], "a": a, "p": p, "wk": wk, "kind": kind}).dropna()
    champion = np.zeros((n_acc, n_prod, n_weeks))
    if len(adv):
        person = contacts.set_index("contact_id").loc[adv["c"]]
        prim = np.array(
            [
                f in catalog[products[q]].primary
                for f, q in zip(person["function"], adv["p"], strict=True)
            ]
        )
        adv = adv[prim & (person["seniority"].to_numpy() != "entry")]
        spread = adv.loc[adv.index.repeat(13)].copy()
        spread["wk"] = spread["wk"] + np.tile(np.arange(13), len(adv))
        spread = spread[spread["wk"] < n_weeks].drop_duplicates(["c", "p", "kind", "wk"])
        n_kinds = spread.groupby(["c", "a", "p", "wk"]).size().reset_index(name="n")
        n_kinds = n_kinds[n_kinds["n"] >= 2]
        np.add.at(
            champion,
            (n_kinds["a"].to_numpy(), n_kinds["p"].to_numpy(), n_kinds["wk"].to_numpy()),
            1,
        )
    return {
        "dm": (rolling(grid(role == "decision_maker"), 4) > 0).astype(float),
        "champion": (champion > 0).astype(float),
        "roles": roles_engaged,
        "intent": rolling(grid(intent), 4),
        "volume": rolling(grid(all_rows), 4),
    }


def _opportunity_contact_roles(
    cfg: GeneratorConfig,
    catalog: Catalog,
    opp: pd.DataFrame,
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """CRM roles as sales reps fill them, for people who engaged with the product before
    the opportunity (``crm_writing.rep_contact_roles``: picklist values, senior people
    listed far more often, some wrong).

    A person's true role then is their persona plus advocacy among their last product
    events before the opportunity's creation.
    """
    ev = events[events["topic"].isin(catalog.names)].merge(
        contacts[["contact_id", "account_id"]], on="contact_id"
    )
    ev = ev.rename(columns={"topic": "product"}).merge(
        opp[["opportunity_id", "account_id", "product", "created_at"]], on=["account_id", "product"]
    )
    ev = ev[
        (ev["timestamp"] <= ev["created_at"])
        & (ev["timestamp"] > ev["created_at"] - pd.Timedelta(days=120))
    ]
    ev = ev.sort_values(
        ["opportunity_id", "contact_id", "timestamp", "activity_id"],
        ascending=[True, True, False, False],
    )
    ev = ev.groupby(["opportunity_id", "contact_id"], sort=False).head(cfg.max_events)
    ev = ev.assign(kind=advocacy_kind(ev))
    people = ev[["opportunity_id", "contact_id", "product"]].drop_duplicates()
    adv = ev.dropna(subset=["kind"]).drop_duplicates(["opportunity_id", "contact_id", "kind"])
    n_adv = adv.groupby(["opportunity_id", "contact_id"]).size().rename("adv")
    people = people.merge(n_adv, on=["opportunity_id", "contact_id"], how="left").fillna({"adv": 0})
    people = people.merge(contacts[["contact_id", "function", "seniority"]], on="contact_id")
    people["role"] = "none"
    for product in catalog.products:
        m = (people["product"] == product.name).to_numpy()
        people.loc[m, "role"] = assign_roles(
            people.loc[m, "function"], people.loc[m, "seniority"], people.loc[m, "adv"], product
        )
    people = people.sort_values(["opportunity_id", "contact_id"]).reset_index(drop=True)
    return rep_contact_roles(people, len(contacts), cfg.crm, rng)


# --- labels -------------------------------------------------------------------------------------


def _labels(
    cfg: GeneratorConfig, catalog: Catalog, contacts: pd.DataFrame, events: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ground truth as of the export date, from persona + advocacy in the rendered window."""
    adv = advocacy_counts(
        events,
        catalog.names,
        contact_ids=contacts["contact_id"],
        as_of=cfg.end,
        max_events=cfg.max_events,
    )
    contact_labels = contacts[
        ["contact_id", "function", "seniority", "language", "title_kind", "vocab", "noise_kind"]
    ].reset_index(drop=True)
    roles = []
    for product in catalog.products:
        r = assign_roles(
            contacts["function"], contacts["seniority"], adv[product.name].to_numpy(), product
        )
        roles.append(
            pd.DataFrame(
                {
                    "contact_id": contacts["contact_id"].to_numpy(),
                    "product": product.name,
                    "role": r,
                }
            )
        )
    role_labels = pd.concat(roles, ignore_index=True)
    return contact_labels, role_labels
