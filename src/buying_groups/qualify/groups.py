"""Buying groups (account x product) and their state at snapshot dates.

Members come from *predicted* roles (the role model's output, so its mistakes count); the
group's state at a date ``t`` uses only what was known at ``t``: activities at or before
``t``, opportunities created at or before ``t`` and closed at or before ``t``. Everything is
vectorised over integer codes (no Python loop over activities), one pass per snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from buying_groups.data.activity import advocacy_kind
from buying_groups.data.schema import CHANNELS
from buying_groups.taxonomy import ACTIONS, ADVOCACY_KINDS, CHAMPION_MIN_ADVOCACY, ROLES, Catalog

MEMBER_ROLES: tuple[str, ...] = tuple(r for r in ROLES if r != "none")
HIGH_INTENT_ACTIONS: tuple[str, ...] = (
    "requested_demo",
    "requested_pricing",
    "started_trial",
    "met_sales",
)
ENGAGED_DAYS = 30
LONG_DAYS = 90
RECENCY_CAP_DAYS = 365
NEVER_CLOSED_DAYS = 9999  # days_since_closed of a pair with no closed opportunity
KEYS = ["snapshot", "account_id", "product"]

# A role predictor maps model inputs (job_title, activity_text) to the role model's decoded
# output: role_<product> and, optionally, role_<product>_probs (full probability vectors).
RolePredictor = Callable[[pd.DataFrame], pd.DataFrame]


def predict_contact_roles(
    predict: RolePredictor, contacts: pd.DataFrame, catalog: Catalog
) -> pd.DataFrame:
    """Persona and per-product role of every contact, from its job title.

    One row per (contact, product): ``contact_id, account_id, product, function, seniority,
    role, role_proba`` and ``p_<role>`` for every role. Titles are scored once each (many
    contacts share a title). The role model reads the title with an empty activity text:
    activity enters the groups through their time-stamped engagement features instead, so
    a contact's membership needs one model pass, not one per snapshot.
    """
    titles = contacts["job_title"].fillna("").astype(str)
    unique = pd.DataFrame({"job_title": titles.unique(), "activity_text": ""})
    pred = predict(unique).reset_index(drop=True)
    codes = pd.Index(unique["job_title"]).get_indexer(titles)
    frames = []
    for product in catalog.names:
        role = pred[f"role_{product}"].to_numpy()[codes]
        probs_col = f"role_{product}_probs"
        if probs_col in pred:
            probs = np.stack(pred[probs_col].to_numpy())[codes]
        else:  # a predictor without probabilities (the rules): its answer is certain
            probs = (np.array(ROLES)[None, :] == role[:, None]).astype(float)
        frame = pd.DataFrame(
            {
                "contact_id": contacts["contact_id"].to_numpy(),
                "account_id": contacts["account_id"].to_numpy(),
                "product": product,
                "function": pred["function"].to_numpy()[codes],
                "seniority": pred["seniority"].to_numpy()[codes],
                "role": role,
                "role_proba": probs[np.arange(len(role)), pd.Index(ROLES).get_indexer(role)],
                **{f"p_{r}": probs[:, j] for j, r in enumerate(ROLES)},
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@dataclass
class _Codes:
    """Integer codes shared by every snapshot."""

    accounts: pd.Index
    contacts: pd.Index
    products: tuple[str, ...]
    ev_ts: np.ndarray  # int64 ns, ascending
    ev_contact: np.ndarray
    ev_account: np.ndarray
    ev_topic: np.ndarray  # product index, -1 for general
    ev_channel: np.ndarray
    ev_action: np.ndarray  # index in ACTIONS, -1 for others
    ev_intent: np.ndarray  # bool
    ev_adv: np.ndarray  # advocacy kind index, -1 for none
    contact_account: np.ndarray
    contact_since: np.ndarray  # int64 ns: when each contact is known (see _known_since)
    member_role: np.ndarray  # (contacts, products) role index, -1 for none


def _codes(
    accounts: pd.DataFrame,
    contacts: pd.DataFrame,
    activities: pd.DataFrame,
    contact_roles: pd.DataFrame,
    catalog: Catalog,
) -> _Codes:
    acc = pd.Index(accounts["account_id"])
    con = pd.Index(contacts["contact_id"])
    products = tuple(catalog.names)
    ev = activities.sort_values(["timestamp", "activity_id"], kind="stable")
    contact_account = acc.get_indexer(contacts["account_id"])
    ev_contact = con.get_indexer(ev["contact_id"])
    if (ev_contact < 0).any():
        raise ValueError("activities reference contacts that are not in the contacts table")
    kind = advocacy_kind(ev)
    member_role = np.full((len(con), len(products)), -1, dtype=np.int8)
    cr = contact_roles[contact_roles["role"] != "none"]
    member_role[
        con.get_indexer(cr["contact_id"]), pd.Index(products).get_indexer(cr["product"])
    ] = pd.Index(MEMBER_ROLES).get_indexer(cr["role"])
    return _Codes(
        accounts=acc,
        contacts=con,
        products=products,
        ev_ts=ev["timestamp"].to_numpy("datetime64[ns]").astype(np.int64),
        ev_contact=ev_contact,
        ev_account=contact_account[ev_contact],
        ev_topic=pd.Index(products).get_indexer(ev["topic"]),
        ev_channel=pd.Index(CHANNELS).get_indexer(ev["channel"]),
        ev_action=pd.Index(ACTIONS).get_indexer(ev["action"]),
        ev_intent=ev["action"].isin(HIGH_INTENT_ACTIONS).to_numpy(),
        ev_adv=pd.Index(ADVOCACY_KINDS).get_indexer(kind.fillna("")),
        contact_account=contact_account,
        contact_since=_known_since(contacts, ev_contact, ev["timestamp"]),
        member_role=member_role,
    )


def _known_since(contacts: pd.DataFrame, ev_contact: np.ndarray, ts: pd.Series) -> np.ndarray:
    """When each contact is known to the CRM (int64 ns): its ``created_at``; without one, its
    first activity; without either, always (a snapshot cannot tell, so it counts)."""
    first = np.full(len(contacts), np.iinfo(np.int64).max)
    np.minimum.at(first, ev_contact, ts.to_numpy("datetime64[ns]").astype(np.int64))
    if "created_at" in contacts:
        created = pd.to_datetime(contacts["created_at"]).to_numpy("datetime64[ns]")
        stamp = created.astype(np.int64)
        first = np.where(np.isnat(created), first, stamp)
    return np.where(first == np.iinfo(np.int64).max, np.iinfo(np.int64).min, first)


def _window(c: _Codes, t: pd.Timestamp, days: int) -> slice:
    hi = np.searchsorted(c.ev_ts, t.value, side="right")
    lo = np.searchsorted(c.ev_ts, (t - pd.Timedelta(days=days)).value, side="right")
    return slice(lo, hi)


def _count(index: np.ndarray, size: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(index, weights=weights, minlength=size).astype(float)


def _days_since(key: np.ndarray, ts: np.ndarray, size: int, t: pd.Timestamp) -> np.ndarray:
    """Days from each key's newest timestamp to ``t``, ``RECENCY_CAP_DAYS`` when none."""
    never = np.iinfo(np.int64).min
    last = np.full(size, never)
    np.maximum.at(last, key, ts)
    days = (t.value - last) / 86_400e9
    return np.where(last == never, RECENCY_CAP_DAYS, np.minimum(days, RECENCY_CAP_DAYS))


def _snapshot_state(c: _Codes, t: pd.Timestamp) -> dict[str, np.ndarray]:
    """Features of every (account, product) at ``t`` as (accounts, products) arrays."""
    n_a, n_p, n_c = len(c.accounts), len(c.products), len(c.contacts)
    ap = n_a * n_p
    short, long_ = _window(c, t, ENGAGED_DAYS), _window(c, t, LONG_DAYS)
    recent = _window(c, t, RECENCY_CAP_DAYS)
    out: dict[str, np.ndarray] = {}

    # Who is engaged (any activity in 30 days) and who touched the product's topic.
    active = _count(c.ev_contact[short], n_c) > 0
    on_topic = c.ev_topic[short] >= 0
    topic_key = c.ev_contact[short][on_topic] * n_p + c.ev_topic[short][on_topic]
    active_topic = (_count(topic_key, n_c * n_p) > 0).reshape(n_c, n_p)

    # Members and engaged members by role: the contacts known at t (created by then).
    known = c.contact_since <= t.value
    out["account_contacts"] = np.repeat(_count(c.contact_account[known], n_a), n_p)
    ci, pj = np.nonzero((c.member_role >= 0) & known[:, None])
    r = c.member_role[ci, pj].astype(int)
    a = c.contact_account[ci]
    for k, role in enumerate(MEMBER_ROLES):
        sel = r == k
        key = a[sel] * n_p + pj[sel]
        out[f"members_{role}"] = _count(key, ap)
        out[f"engaged_{role}"] = _count(key, ap, active[ci[sel]].astype(float))
        out[f"topic_engaged_{role}"] = _count(key, ap, active_topic[ci[sel], pj[sel]].astype(float))
    out["members"] = sum(out[f"members_{role}"] for role in MEMBER_ROLES)
    out["engaged_members"] = sum(out[f"engaged_{role}"] for role in MEMBER_ROLES)
    out["roles_present"] = sum((out[f"members_{role}"] > 0) * 1.0 for role in MEMBER_ROLES)
    out["roles_engaged"] = sum((out[f"engaged_{role}"] > 0) * 1.0 for role in MEMBER_ROLES)
    # The account's contacts active in 30 days (members or not); customer users show here.
    out["active_contacts_30d"] = np.repeat(_count(c.contact_account[active], n_a), n_p)

    # Activity volume on the product's topic: by channel (30 days), 90 days, intent.
    s_topic, s_acc = c.ev_topic[short], c.ev_account[short]
    key = s_acc[on_topic] * n_p + s_topic[on_topic]
    out["topic_events_30d"] = _count(key, ap)
    for k, ch in enumerate(CHANNELS):
        sel = c.ev_channel[short][on_topic] == k
        out[f"topic_{ch}_30d"] = _count(key[sel], ap)
    for k, action in enumerate(ACTIONS):
        sel = c.ev_action[short][on_topic] == k
        out[f"topic_{action}_30d"] = _count(key[sel], ap)
    out["intent_30d"] = _count(key, ap, c.ev_intent[short][on_topic].astype(float))
    l_topic, l_acc = c.ev_topic[long_], c.ev_account[long_]
    l_on = l_topic >= 0
    l_key = l_acc[l_on] * n_p + l_topic[l_on]
    out["topic_events_90d"] = _count(l_key, ap)
    out["intent_90d"] = _count(l_key, ap, c.ev_intent[long_][l_on].astype(float))
    acc_90 = np.repeat(_count(l_acc, n_a), n_p)
    out["account_events_90d"] = acc_90
    out["topic_share_90d"] = np.divide(
        out["topic_events_90d"], acc_90, out=np.zeros(ap), where=acc_90 > 0
    )

    # Advocates: contacts with two distinct advocacy kinds for the product in 90 days.
    adv = (c.ev_adv[long_] >= 0) & l_on
    triples = np.unique(
        np.stack([c.ev_contact[long_][adv], l_topic[adv], c.ev_adv[long_][adv]]), axis=1
    )
    per_cp = _count(triples[0] * n_p + triples[1], n_c * n_p).reshape(n_c, n_p)
    is_adv = per_cp >= CHAMPION_MIN_ADVOCACY
    adv_c, adv_p = np.nonzero(is_adv)
    adv_key = c.contact_account[adv_c] * n_p + adv_p
    out["advocates_90d"] = _count(adv_key, ap)
    primary_like = np.isin(c.member_role[adv_c, adv_p], [0, 1, 2, 3])  # dm, champion, infl, user
    out["member_advocates_90d"] = _count(adv_key[primary_like], ap)

    # Recency of the topic's last event, overall and by channel (capped).
    rt, ra = c.ev_topic[recent], c.ev_account[recent]
    r_on = rt >= 0
    r_key, r_ts, r_ch = ra[r_on] * n_p + rt[r_on], c.ev_ts[recent][r_on], c.ev_channel[recent][r_on]
    out["days_since_topic_event"] = _days_since(r_key, r_ts, ap, t)
    for k, ch in enumerate(CHANNELS):
        sel = r_ch == k
        out[f"days_since_topic_{ch}"] = _days_since(r_key[sel], r_ts[sel], ap, t)
    return {k: v.reshape(n_a, n_p) if v.ndim == 1 else v for k, v in out.items()}


# What only customers have (zeros for other accounts, and without a subscriptions table).
CUSTOMER_FEATURES = (
    "owned_other_products",
    "owned_users_90d",
    "owned_usage_trend",
    "owned_sponsors_90d",
)
SPONSOR_ROLES = (MEMBER_ROLES.index("decision_maker"), MEMBER_ROLES.index("champion"))


def _running_at(terms: pd.DataFrame, t: pd.Timestamp | pd.Series) -> pd.Series:
    """Which subscription terms run at ``t`` (one time, or one per row): started, not ended."""
    return (terms["term_start"] <= t) & (t < terms["term_end"])


def _customer_state(
    c: _Codes, subscriptions: pd.DataFrame | None, t: pd.Timestamp
) -> dict[str, np.ndarray]:
    """For each (account, product) at ``t``, what the account's *other* running products
    say about an expansion to this one: how many it runs, their users (distinct contacts
    with product-channel events, 90 days), their usage trend (events in 90 days against the
    90 before, log ratio) and sponsors (contacts known at ``t``, active in 90 days, whose
    role for one of them is decision maker or champion)."""
    n_a, n_p, n_c = len(c.accounts), len(c.products), len(c.contacts)
    out = {k: np.zeros((n_a, n_p)) for k in CUSTOMER_FEATURES}
    if subscriptions is None or len(subscriptions) == 0:
        return out
    run = subscriptions[_running_at(subscriptions, t)]
    ai = c.accounts.get_indexer(run["account_id"])
    pj = pd.Index(c.products).get_indexer(run["product"])
    owned = np.zeros((n_a, n_p))
    owned[ai[(ai >= 0) & (pj >= 0)], pj[(ai >= 0) & (pj >= 0)]] = 1.0

    def others(per_product: np.ndarray) -> np.ndarray:  # sum over the owned products q != p
        x = per_product * owned
        return x.sum(1, keepdims=True) - x

    long_ = _window(c, t, LONG_DAYS)
    before = slice(_window(c, t - pd.Timedelta(days=LONG_DAYS), LONG_DAYS).start, long_.start)

    def topic_events(w: slice) -> np.ndarray:
        on = c.ev_topic[w] >= 0
        return _count(c.ev_account[w][on] * n_p + c.ev_topic[w][on], n_a * n_p).reshape(n_a, n_p)

    use = (c.ev_channel[long_] == CHANNELS.index("product")) & (c.ev_topic[long_] >= 0)
    pairs = np.unique(c.ev_contact[long_][use] * n_p + c.ev_topic[long_][use])
    users = _count(c.contact_account[pairs // n_p] * n_p + pairs % n_p, n_a * n_p)
    active = (_count(c.ev_contact[long_], n_c) > 0) & (c.contact_since <= t.value)
    sponsor = np.isin(c.member_role, SPONSOR_ROLES) & active[:, None]
    ci, qj = np.nonzero(sponsor)
    sponsors = _count(c.contact_account[ci] * n_p + qj, n_a * n_p).reshape(n_a, n_p)
    out["owned_other_products"] = others(np.ones((n_a, n_p)))
    out["owned_users_90d"] = others(users.reshape(n_a, n_p))
    recent, prior = others(topic_events(long_)), others(topic_events(before))
    out["owned_usage_trend"] = np.where(
        out["owned_other_products"] > 0, np.log((recent + 1) / (prior + 1)), 0.0
    )
    out["owned_sponsors_90d"] = others(sponsors)
    return out


def _opportunity_state(
    opportunities: pd.DataFrame, keys: pd.DataFrame, t: pd.Timestamp
) -> pd.DataFrame:
    """Per key row: open opportunity at t, past opportunities, won before, days since close."""
    o = opportunities[opportunities["created_at"] <= t]
    if len(o) == 0:  # a REST request, a new export: no history (the groupbys cost ~10 ms)
        return pd.DataFrame(
            {
                "open_opportunity": np.zeros(len(keys), dtype=bool),
                "past_opportunities": np.zeros(len(keys)),
                "won_before": np.zeros(len(keys)),
                "days_since_closed": np.full(len(keys), float(NEVER_CLOSED_DAYS)),
                "last_outcome": np.full(len(keys), ""),
            }
        )
    closed = o["closed_at"].notna() & (o["closed_at"] <= t)
    open_ = o[~closed]
    past = o[closed]
    idx = pd.MultiIndex.from_frame(keys[["account_id", "product"]])
    open_set = pd.MultiIndex.from_frame(open_[["account_id", "product"]])
    g = past.groupby(["account_id", "product"])
    n_past = g.size().reindex(idx, fill_value=0).to_numpy()
    won = g["won"].any().fillna(False).reindex(idx, fill_value=False)  # NA: outcome unknown
    last_close = g["closed_at"].max().reindex(idx)
    last_won = (
        past.sort_values("closed_at").groupby(["account_id", "product"])["won"].last().reindex(idx)
    )
    days = (t - last_close).dt.days.fillna(NEVER_CLOSED_DAYS).clip(upper=NEVER_CLOSED_DAYS)
    days = days.to_numpy()
    return pd.DataFrame(
        {
            "open_opportunity": idx.isin(open_set),
            "past_opportunities": n_past.astype(float),
            "won_before": won.to_numpy(dtype=bool).astype(float),
            "days_since_closed": days.astype(float),
            "last_outcome": np.where(
                last_won.isna().to_numpy(),
                "",
                np.where(last_won.fillna(False).to_numpy(dtype=bool), "won", "lost"),
            ),
        }
    )


def group_states(
    tables: dict[str, pd.DataFrame],
    contact_roles: pd.DataFrame,
    catalog: Catalog,
    snapshots: Sequence[pd.Timestamp] | pd.DatetimeIndex,
) -> pd.DataFrame:
    """The state of every (account, product) group at every snapshot date.

    One row per (snapshot, account, product) with ``KEYS``, the numeric features in
    ``feature_columns()``, ``open_opportunity``, ``last_outcome`` and ``days_since_closed``.
    Only data at or before each snapshot is used.
    """
    accounts, contacts = tables["accounts"], tables["contacts"]
    c = _codes(accounts, contacts, tables["activities"], contact_roles, catalog)
    n_a, n_p = len(c.accounts), len(c.products)
    static = {
        "is_customer": np.repeat(accounts["is_customer"].to_numpy(dtype=float), n_p),
        "log_employees": np.repeat(np.log1p(accounts["employees"].to_numpy(dtype=float)), n_p),
    }
    frames = []
    for t in pd.DatetimeIndex(snapshots):
        state = _snapshot_state(c, t) | _customer_state(c, tables.get("subscriptions"), t)
        frame = pd.DataFrame(
            {
                "snapshot": t,
                "account_id": np.repeat(c.accounts.to_numpy(), n_p),
                "product": np.tile(np.array(c.products, dtype=object), n_a),
                **static,
                **{k: v.reshape(-1) for k, v in state.items()},
            }
        )
        opp = _opportunity_state(tables["opportunities"], frame, t)
        frames.append(pd.concat([frame, opp], axis=1))
    return pd.concat(frames, ignore_index=True)


def feature_columns(groups: pd.DataFrame) -> list[str]:
    """The model's inputs: every numeric group-state column except keys, flags, labels and
    anything added downstream (the lead-scoring baselines, scores)."""
    skip = {"open_opportunity", "label", "last_outcome", "score", "qualified"}
    skip |= {f"{b}_{k}" for b in ("mql", "mqa") for k in ("score", "flag")}
    return [
        col
        for col in groups.columns
        if col not in skip and col not in KEYS and pd.api.types.is_numeric_dtype(groups[col])
    ]


def add_labels(
    groups: pd.DataFrame, opportunities: pd.DataFrame, horizon_days: int = 90
) -> pd.DataFrame:
    """``label``: an opportunity for the pair is created in (t, t + horizon]."""
    opp = opportunities[["account_id", "product", "created_at"]]
    pairs = groups[KEYS].reset_index().merge(opp, on=["account_id", "product"])
    horizon = pd.Timedelta(days=horizon_days)
    hit = (pairs["created_at"] > pairs["snapshot"]) & (
        pairs["created_at"] <= pairs["snapshot"] + horizon
    )
    positive = pd.Index(pairs.loc[hit, "index"].unique())
    out = groups.copy()
    out["label"] = out.index.isin(positive).astype(int)
    return out


def members_at(
    contact_roles: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Group members and candidates at ``as_of``: every (contact, product) with its role,
    role probabilities and whether it was engaged in the last 30 days."""
    window = activities[
        (activities["timestamp"] <= as_of)
        & (activities["timestamp"] > as_of - pd.Timedelta(days=ENGAGED_DAYS))
    ]
    engaged = set(window["contact_id"])
    out = contact_roles.copy()
    out["engaged_30d"] = out["contact_id"].isin(engaged)
    return out


def segments(groups: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> np.ndarray:
    """Each group's commercial segment at its snapshot: ``installed`` where the account
    subscribes to the product then, ``expansion`` where it subscribes to another product (a
    customer who could buy this one), ``new_logo`` otherwise.

    From the export's ``subscriptions`` table (terms running at the snapshot); without one,
    the accounts' ``is_customer`` flag marks customers and every customer group counts as
    ``expansion`` (nothing says which products they own)."""
    subs = tables.get("subscriptions")
    if subs is None:
        customer = groups["account_id"].map(
            tables["accounts"].set_index("account_id")["is_customer"].fillna(False)
        )
        return np.where(customer.fillna(False).to_numpy(bool), "expansion", "new_logo")
    keys = groups[KEYS].reset_index(drop=True)
    terms = subs[["account_id", "product", "term_start", "term_end"]]
    running = keys.reset_index().merge(terms, on="account_id")
    running = running[_running_at(running, running["snapshot"])]
    customer = np.zeros(len(keys), dtype=bool)
    customer[running["index"].to_numpy()] = True
    owns = np.zeros(len(keys), dtype=bool)
    same = running["product_x"] == running["product_y"]
    owns[running.loc[same, "index"].to_numpy()] = True
    return np.select([owns, customer], ["installed", "expansion"], default="new_logo")
