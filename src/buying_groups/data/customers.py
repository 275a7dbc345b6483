"""The generator's installed base: who uses what a customer owns, who leaves, and how each
renewal turns out (the NRR side of buying groups; docs/data.md tells the story).

Every customer account owns one product under a subscription with a fixed term (3, 6 or 12
months). The product has a group at the customer, as a new purchase does: a champion (a
primary-function person who runs it), a decision maker who reviews it (quarterly business
reviews) and its users (log-ins, documentation). People leave their company: their activity
stops and sometimes a successor with the same job appears weeks later as a new contact. A
decision maker may go quiet. Each user's usage drifts up or down over the months.

A renewal is decided a month before the term ends, from what a vendor could have seen then:
whether the champion was active in the last 60 days, whether a decision maker engaged since
the term began, how many people used the product in 90 days and whether usage is growing;
plus the account's overall activity and noise. ``group_effect=0`` switches the group terms
off (the ablation in docs/benchmarks.md): renewals then depend on the account alone.

This module draws from its own random stream, so the accounts, committees and opportunities
of a dataset stay those of the same seed; the activities gain the installed base's events
and lose what departed people would have done after leaving.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from buying_groups.data.activity import EVENT_COLUMNS
from buying_groups.data.titles import TitleComposer, TitleNoise
from buying_groups.taxonomy import Catalog

DECISION_LEAD_DAYS = 30  # a renewal is decided this long before the term ends
QBR_ASSET = "Quarterly business review"


@dataclass
class CustomerConfig:
    """Knobs of the installed base (``configs/data/*.yaml: customers``)."""

    terms: Mapping[int, float] = field(default_factory=lambda: {12: 0.3, 6: 0.3, 3: 0.4})
    group_effect: float = 1.0  # 0: renewals ignore the product's group at the customer
    leave_per_year: float = 0.25  # chance per year that an installed-group member leaves
    p_successor: float = 0.6
    p_dm_quiet: float = 0.35  # the decision maker stops engaging at some point
    usage_per_month: float = 3.0  # a typical user's product events per month
    usage_trend_sd: float = 0.8  # per-subscription drift of usage, log-rate per year
    p_user: float = 0.6  # share of end-user-role contacts who use the product
    p_second_product: float = 0.5  # a customer also subscribes to a second product
    seat_price: float = 40.0  # per seat and month
    risk: Mapping[str, float] = field(
        default_factory=lambda: {
            "intercept": -1.8,  # logit of churn for a typical group and account
            "champion_active": 1.5,
            "dm_engaged": 1.2,
            "users": 0.9,  # per log(1 + active users)
            "trend": 0.8,  # per log of usage growth, last 90 days vs the 90 before
            "account_activity": 0.4,  # per log(1 + the account's events per 90 days)
            "account_sd": 0.5,
            # the typical group's health and account's log activity (so that switching the
            # group terms off keeps the churn rate)
            "health_center": 2.6,
            "activity_center": 3.5,
        }
    )

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> CustomerConfig:
        cfg = dict(cfg or {})
        kwargs = {k: v for k, v in cfg.items() if k in cls.__dataclass_fields__}
        if "terms" in kwargs:
            kwargs["terms"] = {int(k): float(v) for k, v in dict(kwargs["terms"]).items()}
        if "risk" in kwargs:
            kwargs["risk"] = {**cls().risk, **dict(kwargs["risk"])}
        return cls(**kwargs)


@dataclass
class InstalledBase:
    """What the installed base adds to a dataset before renewals are drawn."""

    events: pd.DataFrame  # the installed groups' usage and reviews (EVENT_COLUMNS)
    successors: pd.DataFrame  # new contacts (the generator's internal contact columns)
    left_at: pd.Series  # contact_id -> the day they left (their later events are dropped)
    members: pd.DataFrame  # account_id, product, contact_id, member (champion|dm|user)


def owned_products(
    cfg: CustomerConfig, catalog: Catalog, accounts: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """``account_id, product, employees, main`` per product a customer subscribes to: the
    account's ``owned_product`` and, for some, a second one."""
    customers = accounts[accounts["is_customer"]]
    rows = []
    for acc in customers.itertuples(index=False):
        rows.append((acc.account_id, acc.owned_product, acc.employees, True))
        if rng.random() < cfg.p_second_product:
            others = [p for p in catalog.names if p != acc.owned_product]
            rows.append((acc.account_id, others[rng.integers(len(others))], acc.employees, False))
    return pd.DataFrame(rows, columns=["account_id", "product", "employees", "main"])


def installed_base(
    cfg: CustomerConfig,
    start: pd.Timestamp,
    end: pd.Timestamp,
    catalog: Catalog,
    contacts: pd.DataFrame,
    static_roles: pd.DataFrame,
    title_noise: TitleNoise,
    owned: pd.DataFrame,
    rng: np.random.Generator,
) -> InstalledBase:
    """Members of every customer's product group, their departures, successors and events."""
    composer = TitleComposer(rng, title_noise)
    by_account = {a: g for a, g in contacts.groupby("account_id", sort=False)}
    next_id = len(contacts)
    span_days = (end - start).days
    events: list[tuple] = []
    members: list[tuple] = []
    successors: list[tuple] = []
    left: dict[str, pd.Timestamp] = {}
    fate: dict[str, tuple[pd.Timestamp, pd.Timestamp | None]] = {}  # person -> leave, successor
    successor_of: dict[str, str] = {}
    for acc in owned.itertuples(index=False):
        product = acc.product
        people = by_account.get(acc.account_id)
        if people is None:
            continue
        people = people[people["noise_kind"].isin(["none", "customer_user"])]
        role = static_roles.loc[people["contact_id"], product].to_numpy()
        primary = people["function"].isin(catalog[product].primary).to_numpy()
        senior = (people["seniority"] != "entry").to_numpy()
        picked: dict[str, str] = {}
        champ = np.flatnonzero(primary & senior & (role != "decision_maker"))
        if len(champ):
            picked[people["contact_id"].iat[int(rng.choice(champ))]] = "champion"
        dms = [
            i
            for i in np.flatnonzero(role == "decision_maker")
            if people["contact_id"].iat[i] not in picked
        ]
        if dms:
            picked[people["contact_id"].iat[int(rng.choice(dms))]] = "dm"
        for i in range(len(people)):
            cid = people["contact_id"].iat[i]
            # the customer's users of its main product are the generator's customer_user
            # contacts; other end users join some of the time
            is_user = (acc.main and people["noise_kind"].iat[i] == "customer_user") or (
                role[i] == "end_user" and rng.random() < cfg.p_user
            )
            if cid not in picked and is_user:
                picked[cid] = "user"
        trend = rng.normal(0, cfg.usage_trend_sd)  # log-rate drift per year, per subscription
        for cid, member in picked.items():
            person = people[people["contact_id"] == cid].iloc[0]
            active_from = start
            while True:  # the member, then possibly their successor
                members.append((acc.account_id, product, cid, member))
                if cid not in fate:  # one departure per person, whatever they use
                    fate[cid] = _fate(cfg, active_from, end, rng)
                leave, joined = fate[cid]
                quiet = end
                if member == "dm" and rng.random() < cfg.p_dm_quiet:
                    quiet = start + pd.Timedelta(days=int(rng.integers(0, span_days)))
                stop = min(leave, end, quiet)
                events += _member_events(
                    cfg, cid, member, product, active_from, stop, start, trend, rng
                )
                if leave >= end:
                    break
                left[cid] = leave.floor("D")
                if joined is None:
                    break
                if cid not in successor_of:
                    title, kind = composer.compose(
                        person["function"],
                        person["seniority"],
                        person["language"],
                        person["vocab"] == "ood",
                    )
                    successor_of[cid] = new_id = f"C{next_id:07d}"
                    next_id += 1
                    # the same person's job in a new contact (new id, title and CRM date)
                    successors.append(
                        person.to_dict()
                        | {
                            "contact_id": new_id,
                            "job_title": title,
                            "title_kind": kind,
                            "created_at": joined.floor("D"),
                        }
                    )
                cid, active_from = successor_of[cid], joined
    succ = pd.DataFrame(successors, columns=[*contacts.columns, "created_at"])
    return InstalledBase(
        events=pd.DataFrame(events, columns=EVENT_COLUMNS),
        successors=succ,
        left_at=pd.Series(left, dtype="datetime64[ns]"),
        members=pd.DataFrame(members, columns=["account_id", "product", "contact_id", "member"]),
    )


def _fate(
    cfg: CustomerConfig, active_from: pd.Timestamp, end: pd.Timestamp, rng: np.random.Generator
) -> tuple[pd.Timestamp, pd.Timestamp | None]:
    """When a person leaves (``end`` or later: stays), and when a successor joins (None)."""
    leave = active_from + pd.Timedelta(days=int(rng.exponential(1 / cfg.leave_per_year) * 365))
    if leave >= end or rng.random() >= cfg.p_successor:
        return leave, None
    joined = leave + pd.Timedelta(days=int(rng.integers(14, 120)))
    return leave, (joined if joined < end else None)


def _member_events(
    cfg: CustomerConfig,
    contact_id: str,
    member: str,
    product: str,
    active_from: pd.Timestamp,
    stop: pd.Timestamp,
    start: pd.Timestamp,
    trend: float,
    rng: np.random.Generator,
) -> list[tuple]:
    """Usage (and a decision maker's reviews) between ``active_from`` and ``stop``."""
    days = (stop - active_from).days
    if days <= 0:
        return []
    label = product.replace("_", " ").title()
    # A person's rate drifts with the subscription's trend: a thinned Poisson process.
    base = {"champion": 1.5, "user": 1.0, "dm": 0.15}[member] * cfg.usage_per_month
    base *= math.exp(rng.normal(0, 0.5))
    t0 = (active_from - start).days / 365
    peak = base * math.exp(max(trend * t0, trend * (t0 + days / 365)))
    n = rng.poisson(peak * days / 30)
    offsets = rng.random(n) * days
    keep = rng.random(n) < np.exp(trend * (t0 + offsets / 365)) * base / peak
    out = []
    for off in np.sort(offsets[keep]):
        t = active_from + pd.Timedelta(seconds=float(off) * 86_400)
        r = rng.random()
        if r < 0.65:
            out.append((contact_id, t, "product", "logged_in", f"{label} app", product))
        elif r < 0.9 or member == "dm":
            out.append(
                (contact_id, t, "web", "visited", f"/docs/{product.replace('_', '-')}", product)
            )
        else:  # champions and power users bring colleagues in
            out.append(
                (contact_id, t, "product", "invited_colleague", f"{label} workspace", product)
            )
    if member == "dm":  # a quarterly business review with the vendor
        for off in np.arange(rng.uniform(0, 90), days, 90):
            t = active_from + pd.Timedelta(days=float(off))
            out.append((contact_id, t, "sales", "met_sales", QBR_ASSET, product))
    if member == "champion" and days > 30:  # the product's webinars now and then
        for off in rng.random(rng.poisson(days / 120)) * days:
            t = active_from + pd.Timedelta(days=float(off))
            out.append((contact_id, t, "event", "attended", f"What's new in {label}", product))
    return out


def drop_after_leaving(events: pd.DataFrame, left_at: pd.Series) -> pd.DataFrame:
    """Events of people after the day they left their company are gone."""
    if left_at.empty:
        return events
    leave = events["contact_id"].map(left_at)
    return events[leave.isna() | (events["timestamp"] < leave)]


def subscriptions(
    cfg: CustomerConfig,
    start: pd.Timestamp,
    end: pd.Timestamp,
    owned: pd.DataFrame,
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    members: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One row per subscription term of every customer, with each renewal's outcome drawn
    from the state of the product's group a month before the term ends (``outcome`` is empty
    for a term that ends after the export)."""
    r = cfg.risk
    g = cfg.group_effect
    acc_of = contacts.set_index("contact_id")["account_id"]
    ev = events.assign(account_id=events["contact_id"].map(acc_of))
    ev_by_account = {a: e for a, e in ev.groupby("account_id", sort=False)}
    # The account's general engagement (events per 90 days over the export): a trait of the
    # account, so renewals early in the export are not judged on a cut-off history.
    inside = ev[(ev["timestamp"] >= start) & (ev["timestamp"] < end)]
    per_90 = inside.groupby("account_id").size() * 90 / max((end - start).days, 1)
    terms = list(cfg.terms)
    term_p = np.array([cfg.terms[t] for t in terms], dtype=float)
    rows = []
    for n_sub, acc in enumerate(owned.itertuples(index=False)):
        product = acc.product
        months = int(terms[rng.choice(len(terms), p=term_p / term_p.sum())])
        seats = float(
            max(3, round(math.exp(rng.normal(math.log(max(acc.employees, 10)) * 0.6, 0.5))))
        )
        # The subscription began some terms before the export; its current term covers start.
        term_start = (
            start
            - pd.DateOffset(months=months)
            + pd.Timedelta(days=int(rng.integers(1, 28 * months)))
        )
        renewals = int(rng.integers(0, 4))
        sub_id = f"S{n_sub:06d}"
        account_effect = rng.normal(0, r["account_sd"])
        e = ev_by_account.get(acc.account_id, ev.iloc[:0])
        group = members[(members["account_id"] == acc.account_id) & (members["product"] == product)]
        while term_start < end:
            term_end = term_start + pd.DateOffset(months=months)
            outcome = None
            if term_end <= end:
                state = renewal_signals(
                    e, group, product, term_start, term_end - pd.Timedelta(days=DECISION_LEAD_DAYS)
                )
                health = (
                    r["champion_active"] * state["champion_active"]
                    + r["dm_engaged"] * state["dm_engaged"]
                    + r["users"] * math.log1p(state["users"])
                    + r["trend"] * state["trend"]
                )
                activity = math.log1p(per_90.get(acc.account_id, 0.0)) - r["activity_center"]
                logit = (
                    r["intercept"]
                    - g * (health - r["health_center"])
                    - r["account_activity"] * activity
                    + account_effect
                )
                p_churn = 1 / (1 + math.exp(-logit))
                p_down = 0.6 * p_churn
                p_up = 1 / (
                    1
                    + math.exp(
                        -(
                            -1.6
                            + g
                            * (r["trend"] * state["trend"] + 0.3 * math.log1p(state["users"]) - 0.4)
                        )
                    )
                )
                u = rng.random()
                if u < p_churn:
                    outcome = "churned"
                elif u < p_churn + p_down * (1 - p_churn):
                    outcome = "downgraded"
                elif rng.random() < p_up:
                    outcome = "expanded"
                else:
                    outcome = "renewed"
            rows.append(
                (
                    f"T{len(rows):06d}",
                    sub_id,
                    acc.account_id,
                    product,
                    term_start.floor("D"),
                    term_end.floor("D"),
                    int(seats),
                    round(seats * cfg.seat_price * months, 2),
                    renewals,
                    outcome,
                )
            )
            if outcome in (None, "churned"):
                break
            if outcome == "downgraded":
                seats = max(1.0, round(seats * rng.uniform(0.5, 0.85)))
            elif outcome == "expanded":
                seats = round(seats * rng.uniform(1.15, 1.6))
            term_start, renewals = term_end, renewals + 1
    subs = pd.DataFrame(
        rows,
        columns=[
            "term_id",
            "subscription_id",
            "account_id",
            "product",
            "term_start",
            "term_end",
            "seats",
            "amount",
            "renewal_number",
            "outcome",
        ],
    )
    # A term that began before the export is what the CRM shows as its start, not earlier.
    return subs[subs["term_end"] > start].reset_index(drop=True)


def renewal_signals(
    events: pd.DataFrame,
    group: pd.DataFrame,
    product: str,
    term_start: pd.Timestamp,
    decided: pd.Timestamp,
) -> dict[str, float]:
    """What drives a renewal in the generator, from one account's events up to ``decided``."""
    e = events[events["timestamp"] <= decided]
    on = e[e["topic"] == product]
    day = pd.Timedelta(days=1)
    last90 = on[on["timestamp"] > decided - 90 * day]
    prev90 = on[(on["timestamp"] > decided - 180 * day) & (on["timestamp"] <= decided - 90 * day)]
    champs = set(group.loc[group["member"] == "champion", "contact_id"])
    dms = set(group.loc[group["member"] == "dm", "contact_id"])
    recent = on[on["timestamp"] > decided - 60 * day]
    return {
        "champion_active": float(recent["contact_id"].isin(champs).any()),
        "dm_engaged": float(on[on["timestamp"] > term_start]["contact_id"].isin(dms).any()),
        "users": float(last90.loc[last90["channel"] == "product", "contact_id"].nunique()),
        "trend": math.log((len(last90) + 1) / (len(prev90) + 1)),
    }
