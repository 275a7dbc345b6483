"""Renewal risk: the state of a customer's product group before each renewal, a classifier
of revenue at risk (a downgrade or a churn) whose score is a probability, two account-level
baselines, and "what changed" in words.

A renewal is judged at its *decision date*, ``lead_days`` before the term ends: every
feature reads only activities at or before that date and contacts created by then (the
leakage test in tests/test_retention.py changes everything after it and expects the same
features). The group is the product's buying group at the customer (``group_states``, from
the role model's predicted roles) plus what only customers have: product usage, its trend,
people who went quiet, the decision maker since the term began, the lead user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from buying_groups.data.schema import AT_RISK_OUTCOMES, SUBSCRIPTION_OUTCOMES
from buying_groups.qualify.compare import top_k
from buying_groups.qualify.groups import RECENCY_CAP_DAYS, group_states
from buying_groups.taxonomy import Catalog

KEYS = ["term_id", "account_id", "product", "decision_date"]
DAY = pd.Timedelta(days=1)
# Group-state columns that describe a new purchase, not a customer's use of what it owns.
NOT_FOR_RENEWALS = ("open_opportunity", "past_opportunities", "won_before", "days_since_closed")


def renewals(
    subscriptions: pd.DataFrame, lead_days: int = 30, as_of: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Every term with its ``decision_date`` (``lead_days`` before it ends, or ``as_of`` for
    a renewal not yet decided then: nothing later is known) and, where the outcome is known,
    ``label`` (1: downgrade or churn)."""
    out = subscriptions.copy()
    decided = (out["term_end"] - lead_days * DAY).dt.floor("D")
    if as_of is not None:
        decided = decided.where(decided <= as_of, pd.Timestamp(as_of).floor("D"))
    out["decision_date"] = decided
    known = out["outcome"].notna()
    unknown = set(out.loc[known, "outcome"]) - set(SUBSCRIPTION_OUTCOMES)
    if unknown:
        raise ValueError(f"subscriptions: unknown outcome(s) {sorted(unknown)}")
    out["label"] = np.where(known, out["outcome"].isin(AT_RISK_OUTCOMES).astype(float), np.nan)
    return out.reset_index(drop=True)


def renewal_states(
    tables: dict[str, pd.DataFrame],
    terms: pd.DataFrame,
    contact_roles: pd.DataFrame,
    catalog: Catalog,
) -> pd.DataFrame:
    """One row per term of ``terms`` (from ``renewals``): the group's state at its decision
    date and the customer's own signals, all from data up to that date."""
    dates = pd.DatetimeIndex(sorted(terms["decision_date"].unique()))
    # A group's state reads only its own account's rows: the customers' rows are enough (a
    # fifth of the accounts, at every decision date).
    states = group_states(
        _accounts_only(tables, terms["account_id"]),
        contact_roles[contact_roles["account_id"].isin(terms["account_id"])],
        catalog,
        dates,
    )
    states = states.drop(columns=[c for c in NOT_FOR_RENEWALS if c in states] + ["last_outcome"])
    states = states.rename(columns={"snapshot": "decision_date"})
    out = terms.merge(states, on=["decision_date", "account_id", "product"], how="left")
    own = customer_signals(tables, terms, contact_roles, catalog)
    out = pd.concat([out.reset_index(drop=True), own.reset_index(drop=True)], axis=1)
    out["term_months"] = ((out["term_end"] - out["term_start"]).dt.days / 30.44).round()
    out["days_into_term"] = (out["decision_date"] - out["term_start"]).dt.days.astype(float)
    out["log_seats"] = np.log1p(out["seats"].astype(float)) if "seats" in out else np.nan
    return out


def _accounts_only(tables: dict[str, pd.DataFrame], account_ids: pd.Series) -> dict:
    """The tables a group state reads, restricted to ``account_ids``."""
    keep = tables["accounts"]["account_id"].isin(account_ids)
    contacts = tables["contacts"][tables["contacts"]["account_id"].isin(account_ids)]
    acts = tables["activities"]
    return {
        "accounts": tables["accounts"][keep],
        "contacts": contacts,
        "activities": acts[acts["contact_id"].isin(contacts["contact_id"])],
        "opportunities": tables["opportunities"][
            tables["opportunities"]["account_id"].isin(account_ids)
        ],
    }


def customer_signals(
    tables: dict[str, pd.DataFrame],
    terms: pd.DataFrame,
    contact_roles: pd.DataFrame,
    catalog: Catalog,
) -> pd.DataFrame:
    """Usage and its trend, people gone quiet, the decision maker this term, the lead user,
    new contacts: per term, at its decision date."""
    contacts = tables["contacts"].set_index("contact_id")
    acts = tables["activities"][["contact_id", "timestamp", "channel", "topic"]]
    acts = acts.assign(account_id=acts["contact_id"].map(contacts["account_id"]).to_numpy())
    by_pair = {k: g for k, g in acts.groupby(["account_id", "topic"], sort=False)}
    all_by_account = {k: g["timestamp"] for k, g in acts.groupby("account_id", sort=False)}
    roles = contact_roles.set_index(["contact_id", "product"])
    created_by_account = {a: g for a, g in contacts.groupby("account_id")["created_at"]}
    rows = []
    for term in terms.itertuples(index=False):
        t = term.decision_date
        e = by_pair.get((term.account_id, term.product))
        e = e[e["timestamp"] <= t] if e is not None else acts.iloc[:0]
        last90 = e[e["timestamp"] > t - 90 * DAY]
        prev90 = e[(e["timestamp"] > t - 180 * DAY) & (e["timestamp"] <= t - 90 * DAY)]
        product_use = last90[last90["channel"] == "product"]
        quiet = set(prev90["contact_id"]) - set(last90["contact_id"])
        role = roles.reindex(pd.MultiIndex.from_arrays([e["contact_id"], [term.product] * len(e)]))
        dm = e[(role["role"] == "decision_maker").to_numpy()]
        dm_this_term = dm[dm["timestamp"] > term.term_start]
        # The lead user: the primary-function contact (not an entry-level one) with most of
        # the product's events in the past year; days since they last used it.
        persona = role[["function", "seniority"]].to_numpy()
        in_year = (e["timestamp"] > t - 365 * DAY).to_numpy()
        lead_pool = e[
            np.isin(persona[:, 0], list(catalog[term.product].primary))
            & (persona[:, 1] != "entry")
            & in_year
        ]
        this_term = e[e["timestamp"] > term.term_start]
        account_ts = all_by_account.get(term.account_id, pd.Series(dtype="datetime64[ns]"))
        account_ts = account_ts[account_ts <= t]
        new = created_by_account.get(term.account_id, pd.Series(dtype="datetime64[ns]"))
        rows.append(
            {
                "usage_users_90d": float(product_use["contact_id"].nunique()),
                "usage_events_90d": float(len(product_use)),
                "product_events_prev_90d": float(len(prev90)),
                "usage_trend": float(np.log((len(last90) + 1) / (len(prev90) + 1))),
                "users_gone_quiet": float(len(quiet)),
                "dm_engaged_this_term": float(len(dm_this_term) > 0),
                "days_since_dm_event": _days(t, dm["timestamp"]),
                "days_since_lead_user": _days_since_busiest(t, lead_pool),
                # the product's most active user of the past year, whoever they are: a
                # champion who left or lost interest shows here
                "days_since_top_user": _days_since_busiest(t, e[in_year]),
                "reviews_this_term": float((this_term["channel"] == "sales").sum()),
                "new_contacts_90d": float(((new > t - 90 * DAY) & (new <= t)).sum()),
                "days_since_account_activity": _days(t, account_ts),
                "account_engagement": float(
                    np.exp(-((t - account_ts[account_ts > t - 180 * DAY]).dt.days) / 43.3).sum()
                ),
            }
        )
    return pd.DataFrame(rows)


def _days_since_busiest(t: pd.Timestamp, events: pd.DataFrame) -> float:
    """Days since the contact with most of ``events`` was last seen in them (capped)."""
    if len(events) == 0:
        return float(RECENCY_CAP_DAYS)
    busiest = events["contact_id"].value_counts().index[0]
    return _days(t, events.loc[events["contact_id"] == busiest, "timestamp"])


def _days(t: pd.Timestamp, stamps: pd.Series) -> float:
    if len(stamps) == 0:
        return float(RECENCY_CAP_DAYS)
    return float(min((t - stamps.max()).days, RECENCY_CAP_DAYS))


BASELINES = {
    # days since anyone at the customer did anything (higher: more at risk)
    "recency": "days_since_account_activity",
    # the account's engagement, decayed with a 30-day half-life (lower: more at risk)
    "engagement": "account_engagement",
}


def baseline_scores(states: pd.DataFrame) -> pd.DataFrame:
    """The two baselines as risk scores (higher: more at risk)."""
    return pd.DataFrame(
        {
            "recency_score": states[BASELINES["recency"]].astype(float),
            "engagement_score": -states[BASELINES["engagement"]].astype(float),
        },
        index=states.index,
    )


# What the renewal model reads: the product's activity at the customer and the people behind
# it. A compact set, because a customer base renews a few hundred times a year: chosen among
# four sets on two demo seeds' backtests (all 60-odd group features, 25, the customer's own,
# these 10) and checked on a third (docs/benchmarks.md).
FEATURES = (
    "topic_events_90d",
    "usage_users_90d",
    "usage_trend",
    "users_gone_quiet",
    "days_since_top_user",
    "days_since_lead_user",
    "dm_engaged_this_term",
    "days_since_dm_event",
    "reviews_this_term",
    "account_engagement",
)


def retention_features(states: pd.DataFrame) -> list[str]:
    """The renewal model's inputs present in ``states``."""
    return [c for c in FEATURES if c in states.columns]


RETENTION_PHRASES = {
    "usage_users_90d": lambda n, v: f"{n} people used the product in 90 days",
    "usage_events_90d": lambda n, v: f"{n} product sessions in 90 days",
    "product_events_prev_90d": lambda n, v: f"{n} product interactions in the 90 days before",
    "usage_trend": lambda n, v: (
        f"product activity {'up' if v > 0 else 'down'} {abs(np.expm1(v)):.0%} on the 90 days before"
    ),
    "users_gone_quiet": lambda n, v: (
        f"{n} former user{'s' if n != 1 else ''} went quiet" if n else "nobody went quiet"
    ),
    "dm_engaged_this_term": lambda n, v: (
        "decision maker engaged this term"
        if n
        else "no decision maker engaged since the last renewal"
    ),
    "days_since_dm_event": lambda n, v: (
        "no decision maker active on the product in a year"
        if v >= RECENCY_CAP_DAYS
        else f"decision maker last active {n} days ago"
    ),
    "days_since_lead_user": lambda n, v: (
        "no lead user in a year"
        if v >= RECENCY_CAP_DAYS
        else f"lead user (champion) inactive for {n} days"
        if n >= 30
        else f"lead user (champion) active {n} days ago"
    ),
    "days_since_top_user": lambda n, v: (
        "nobody used the product in a year"
        if v >= RECENCY_CAP_DAYS
        else f"its most active user last seen {n} days ago"
    ),
    "reviews_this_term": lambda n, v: (
        f"{n} business review{'s' if n != 1 else ''} or sales meeting{'s' if n != 1 else ''}"
        " this term"
        if n
        else "no business review this term"
    ),
    "new_contacts_90d": lambda n, v: f"{n} new contact{'s' if n != 1 else ''} in 90 days",
    "days_since_account_activity": lambda n, v: f"last activity at the account {n} days ago",
    "account_engagement": lambda n, v: (
        f"the account's recent activity at {v:.0f} (events, halved every 30 days)"
    ),
    "term_months": lambda n, v: f"{n}-month term",
    "days_into_term": lambda n, v: f"{n} days into the term",
    "log_seats": lambda n, v: f"{int(round(np.expm1(v)))} seats",
}


def describe_retention_feature(feature: str, value: float) -> str:
    """A renewal feature and its value in words; the group's own features as the qualifier
    says them."""
    from buying_groups.qualify.model import describe_feature

    v = float(value)
    if feature in RETENTION_PHRASES and np.isfinite(v):
        return RETENTION_PHRASES[feature](int(round(v)), v)
    return describe_feature(feature, v)


def risk_reasons(states: pd.DataFrame, contributions: pd.DataFrame, top: int = 3) -> pd.Series:
    """Per renewal, the features that push its risk up most, in words."""
    values = contributions.to_numpy()
    cols = list(contributions.columns)
    order = np.argsort(-values, axis=1, kind="stable")
    out = []
    for i in range(len(values)):
        row = states.iloc[i]
        out.append(
            [
                describe_retention_feature(cols[j], row[cols[j]])
                for j in order[i, :top]
                if values[i, j] > 0
            ]
        )
    return pd.Series(out, index=states.index)


class TooFewRenewals(ValueError):
    """The export holds too few decided renewals to backtest on."""


@dataclass
class RenewalRisk:
    """A logistic regression on the renewal state (signed-log, standardised). Linear on
    purpose: a customer base renews a few hundred times a year, and on demo's backtests it
    beat small boosted trees (docs/benchmarks.md); its explanation is exact (each feature's
    share of the log-odds against the average renewal it learned from).

    Trained with balanced class weights, which shift its log-odds by the class ratio;
    ``prior_logit`` (the log-odds of the base rate) shifts them back, so ``score`` is a
    probability (checked by the backtest's Brier score) and keeps the model's ranking.
    """

    pipeline: Pipeline
    prior_logit: float
    features: list[str]

    def score(self, states: pd.DataFrame) -> np.ndarray:
        """Probability that the renewal loses revenue (downgrade or churn)."""
        from buying_groups.qualify.model import check_features

        logit = self.pipeline.decision_function(check_features(states, self.features))
        return 1 / (1 + np.exp(-(logit + self.prior_logit)))

    def contributions(self, states: pd.DataFrame) -> pd.DataFrame:
        """Log-odds contribution of each feature (positive: towards risk)."""
        from buying_groups.qualify.model import check_features

        x = signed_log(check_features(states, self.features).to_numpy())
        scaler = self.pipeline.named_steps["scale"]
        coef = self.pipeline.named_steps["model"].coef_[0]
        z = (x - scaler.mean_) / scaler.scale_
        return pd.DataFrame(z * coef, columns=self.features, index=states.index)


def signed_log(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``."""
    return np.sign(x) * np.log1p(np.abs(x))


def fit_risk(train: pd.DataFrame, features: list[str], C: float = 0.01) -> RenewalRisk:  # noqa: N803
    """Fit on renewals with a known outcome."""
    pipeline = Pipeline(
        [
            ("log", FunctionTransformer(signed_log)),  # counts and days are heavy-tailed
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=C, class_weight="balanced", max_iter=2000)),
        ]
    )
    y = train["label"].astype(int)
    pipeline.fit(train[features].astype(float), y)
    rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    return RenewalRisk(pipeline, float(np.log(rate / (1 - rate))), list(features))


def usable_renewals(
    states: pd.DataFrame, export_start: pd.Timestamp, min_history_days: int
) -> pd.Series:
    """Renewals to learn from and judge: outcome known, decided after ``min_history_days``
    of the export (before that the export holds too little history to judge by)."""
    return states["label"].notna() & (
        states["decision_date"] >= export_start + min_history_days * DAY
    )


def backtest(
    states: pd.DataFrame,
    features: list[str],
    export_end: pd.Timestamp,
    months: int,
    C: float = 0.01,  # noqa: N803
    min_train_positives: int = 10,
) -> pd.DataFrame:
    """Rolling-origin evaluation, as a team that refits monthly would see it: for each of the
    export's last ``months`` months, fit on the renewals whose outcome was known when the
    month began (term ended before it) and score the renewals decided in that month. The
    scored renewals with ``score`` and ``month``; months with too little history are skipped."""
    first = (export_end - pd.DateOffset(months=months)).to_period("M").to_timestamp()
    out = []
    for start in pd.date_range(first, export_end, freq="MS"):
        end = start + pd.DateOffset(months=1)
        known = states[states["term_end"] <= start]
        now = states[(states["decision_date"] >= start) & (states["decision_date"] < end)]
        if len(now) == 0 or known["label"].sum() < min_train_positives:
            continue
        model = fit_risk(known, features, C)
        out.append(now.assign(score=model.score(now), month=start, trained_on=len(known)))
    if not out:
        raise TooFewRenewals(
            f"no month of the {months}-month backtest has {min_train_positives} at-risk "
            f"renewals known before it ({int(states['label'].sum())} in all)"
        )
    return pd.concat(out)


def monthly_capacity_table(
    scored: pd.DataFrame, scores: dict[str, str], share: float
) -> pd.DataFrame:
    """Per method, over all backtest months: precision, recall and lift of each month's top
    ``share`` of renewals (what a customer-success team can call on that month) and PR-AUC
    of the pooled scores."""
    from sklearn.metrics import average_precision_score

    labels = scored["label"].to_numpy(int)
    base = labels.mean()
    rows = {}
    for name, col in scores.items():
        flagged = np.zeros(len(scored), dtype=bool)
        for _, idx in scored.groupby("month").indices.items():
            k = max(1, int(round(share * len(idx))))
            flagged[idx[top_k(scored[col].to_numpy(float)[idx], k)]] = True
        tp = int(labels[flagged].sum())
        rows[name] = {
            "flagged": int(flagged.sum()),
            "precision": tp / flagged.sum(),
            "recall": tp / labels.sum() if labels.sum() else float("nan"),
            "lift": tp / flagged.sum() / base if base else float("nan"),
            "pr_auc": float(average_precision_score(labels, scored[col])),
            "base_rate": float(base),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return table


@dataclass
class RetentionResult:
    """What ``train_retention`` returns: the model fitted on every known renewal, the
    backtest's scored renewals and comparison, and the open renewals scored and explained."""

    model: RenewalRisk
    features: list[str]
    backtest: pd.DataFrame
    comparison: pd.DataFrame
    at_risk: pd.DataFrame


METHODS = {"renewal risk": "score", "recency": "recency_score", "engagement": "engagement_score"}


def train_retention(
    tables: dict[str, pd.DataFrame],
    contact_roles: pd.DataFrame,
    catalog: Catalog,
    export_start: pd.Timestamp,
    export_end: pd.Timestamp,
    settings: dict,
) -> RetentionResult:
    """Renewal states -> rolling backtest against the two baselines -> the final model on
    every renewal with a known outcome -> the open renewals ranked, with reasons.

    ``settings``: ``lead_days``, ``min_history_days``, ``backtest_months``, ``C``,
    ``min_train_positives``, ``capacity_share``, ``top_reasons``
    (configs/train_retention.yaml).
    """
    subs = tables.get("subscriptions")
    if subs is None or len(subs) == 0:
        raise ValueError(
            "the export has no subscriptions table: renewal risk needs one row per "
            "subscription term (docs/data.md#subscriptions)"
        )
    terms = renewals(subs, settings["lead_days"], as_of=export_end)
    states = renewal_states(tables, terms, contact_roles, catalog)
    states = pd.concat([states, baseline_scores(states)], axis=1)
    features = retention_features(states)
    usable = states[usable_renewals(states, export_start, settings["min_history_days"])]
    scored = backtest(
        usable,
        features,
        export_end,
        settings["backtest_months"],
        settings["C"],
        settings.get("min_train_positives", 10),
    )
    comparison = monthly_capacity_table(scored, METHODS, settings["capacity_share"])
    model = fit_risk(usable, features, settings["C"])
    # Open renewals: no outcome yet; judged as of their decision date or the export's end.
    open_terms = states[states["label"].isna()].copy()
    at_risk = (
        explain_risk(model, open_terms, settings["top_reasons"]) if len(open_terms) else open_terms
    )
    return RetentionResult(model, features, scored, comparison, at_risk)


def explain_risk(model: RenewalRisk, states: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Renewals ranked by risk with the reasons that raise it, in words."""
    out = states[["term_id", "account_id", "product", "term_end", "decision_date"]].copy()
    out["risk"] = model.score(states)
    out["reasons"] = risk_reasons(states, model.contributions(states), top).to_numpy()
    return out.sort_values("risk", ascending=False).reset_index(drop=True)
