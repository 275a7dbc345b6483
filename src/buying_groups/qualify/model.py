"""The qualifier: gradient boosting on group state, calibrated, with an operating threshold
and per-group reasons from SHAP values (tree explainer, exact for these trees)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from buying_groups.data.schema import CHANNELS
from buying_groups.qualify.groups import MEMBER_ROLES, NEVER_CLOSED_DAYS


def build_pipeline(params: Mapping, seed: int = 0) -> Pipeline:
    """A scikit-learn Pipeline around the configured gradient-boosting classifier."""
    params = dict(params)
    kind = params.pop("kind", "hist_gradient_boosting")
    if kind == "hist_gradient_boosting":
        clf = HistGradientBoostingClassifier(random_state=seed, **params)
    elif kind == "lightgbm":
        try:
            from lightgbm import LGBMClassifier
        except ImportError as exc:  # optional extra
            raise SystemExit(
                "qualifier=lightgbm needs LightGBM: pip install 'buying-groups[lightgbm]'"
            ) from exc
        clf = LGBMClassifier(random_state=seed, verbose=-1, **params)
    else:
        raise ValueError(f"unknown qualifier kind {kind!r}")
    return Pipeline([("classifier", clf)])


@dataclass
class Qualifier:
    """Fitted pipeline + calibrator + threshold; ``features`` fixes the input columns."""

    pipeline: Pipeline
    calibrated: CalibratedClassifierCV
    features: list[str]
    threshold: float = 0.5
    threshold_rule: dict = field(default_factory=dict)

    def score(self, groups: pd.DataFrame) -> np.ndarray:
        """Calibrated probability that the group opens an opportunity within the horizon."""
        return self.calibrated.predict_proba(check_features(groups, self.features))[:, 1]

    def contributions(self, groups: pd.DataFrame) -> pd.DataFrame:
        """SHAP values (log-odds of the boosted model) per feature and group."""
        # The explainer converts every tree when built: once per loaded qualifier, not once
        # per call (bg-score asks batch by batch). Not pickled with the qualifier.
        explainer = self.__dict__.get("_explainer")
        if explainer is None:
            import shap

            explainer = shap.TreeExplainer(self.pipeline.named_steps["classifier"])
            self.__dict__["_explainer"] = explainer
        values = explainer.shap_values(check_features(groups, self.features))
        values = values[1] if isinstance(values, list) else values
        return pd.DataFrame(values, columns=self.features, index=groups.index)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_explainer"}


def check_features(groups: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns as floats, with a clear error for missing or non-numeric ones."""
    missing = [f for f in features if f not in groups.columns]
    if missing:
        raise ValueError(f"group-state input is missing columns: {', '.join(missing)}")
    X = groups[features]
    for col, dtype in X.dtypes.items():
        if not pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            bad = X.index[pd.to_numeric(X[col], errors="coerce").isna()]
            if len(bad):
                raise ValueError(f"row {bad[0]}, column {col!r}: not a number")
    return X.astype(float)


def fit_qualifier(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: list[str],
    params: Mapping,
    calibration: str = "sigmoid",
    seed: int = 0,
) -> Qualifier:
    """Fit on ``train``; calibrate on the later ``validation`` period (held out)."""
    pipeline = build_pipeline(params, seed).fit(train[features].astype(float), train["label"])
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline), method=calibration)
    calibrated.fit(validation[features].astype(float), validation["label"])
    return Qualifier(pipeline, calibrated, list(features))


def choose_threshold(
    scores: np.ndarray,
    labels: np.ndarray,
    snapshots: pd.Series,
    mode: str,
    target_precision: float = 0.4,
    capacity_per_snapshot: float = 50,
) -> float:
    """The operating threshold on validation data.

    ``precision``: the lowest threshold whose precision reaches the target (more groups
    flagged at the same precision); ``capacity``: sales can work ``capacity_per_snapshot``
    groups a month, so the threshold flags that many on average.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=int)
    if mode == "capacity":
        n = capacity_per_snapshot * max(1, pd.Series(snapshots).nunique())
        n = min(len(scores), max(1, int(round(n))))
        return float(np.sort(scores)[::-1][n - 1])
    if mode != "precision":
        raise ValueError(f"threshold mode must be 'precision' or 'capacity', got {mode!r}")
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order])
    precision = hits / np.arange(1, len(scores) + 1)
    ok = np.nonzero(precision >= target_precision)[0]
    if len(ok) == 0:  # unreachable: flag only the single best group
        return float(scores[order[0]])
    return float(scores[order[ok[-1]]])


# -- reasons in plain words ----------------------------------------------------------------------


ACTION_NOUNS = {  # singular, plural
    "visited": ("page visit", "page visits"),
    "opened": ("email opened", "emails opened"),
    "clicked": ("email click", "email clicks"),
    "downloaded": ("download", "downloads"),
    "registered": ("webinar registration", "webinar registrations"),
    "attended": ("event attended", "events attended"),
    "logged_in": ("product login", "product logins"),
    "invited_colleague": ("colleague invitation", "colleague invitations"),
    "started_trial": ("trial started", "trials started"),
    "requested_demo": ("demo request", "demo requests"),
    "requested_pricing": ("pricing request", "pricing requests"),
    "met_sales": ("sales meeting", "sales meetings"),
}


def _role_words(role: str) -> str:
    return role.replace("_", " ")


def _employees(log_employees: float) -> str:
    # log1p of the account's size; a size beyond any real company reads as "over ...".
    if log_employees > 20:  # expm1(20) is about 485 million
        return "over 485,000,000 employees"
    return f"{int(round(np.expm1(max(log_employees, 0.0)))):,} employees"


def describe_feature(feature: str, value: float) -> str:
    """A feature and its value as a phrase a seller reads, e.g. ``no gatekeeper yet``."""
    v = float(value)
    if not np.isfinite(v):  # e.g. company size, unknown to a REST request
        return "company size unknown" if feature == "log_employees" else f"{feature} unknown"
    n = int(round(v))
    for role in MEMBER_ROLES:
        w = _role_words(role)
        if feature == f"engaged_{role}":
            return (
                f"{w} engaged in the last 30 days" if n else f"{w} not engaged in the last 30 days"
            )
        if feature == f"members_{role}":
            return f"{n} {w}{'s' if n != 1 else ''} in the group" if n else f"no {w} yet"
        if feature == f"topic_engaged_{role}":
            return (
                f"{w} active on this product in 30 days"
                if n
                else f"no {w} active on this product in 30 days"
            )
    # Lazily: only the asked-for phrase is built, so no other phrase's arithmetic can fail
    # on this value (expm1 of a contact count above 709 overflowed before).
    phrases = {
        "members": lambda: f"{n} group members",
        "engaged_members": lambda: f"{n} members engaged in 30 days",
        "roles_present": lambda: f"{n} of 5 roles filled",
        "roles_engaged": lambda: f"{n} of 5 roles engaged in 30 days",
        "active_contacts_30d": lambda: f"{n} contacts at the account active in 30 days",
        "topic_events_30d": lambda: f"{n} interactions with the product in 30 days",
        "topic_events_90d": lambda: f"{n} interactions with the product in 90 days",
        "intent_30d": lambda: f"{n} high-intent action{'s' if n != 1 else ''} in 30 days",
        "intent_90d": lambda: f"{n} high-intent action{'s' if n != 1 else ''} in 90 days",
        "account_events_90d": lambda: f"{n} account interactions in 90 days",
        "topic_share_90d": lambda: f"{v:.0%} of the account's attention on this product",
        "advocates_90d": lambda: f"{n} advocate{'s' if n != 1 else ''} (demo, trial, pricing, ...)",
        "member_advocates_90d": lambda: f"{n} group member{'s' if n != 1 else ''} advocating",
        "days_since_topic_event": lambda: f"last product interaction {n} days ago",
        "is_customer": lambda: "already a customer" if n else "not a customer yet",
        "owned_other_products": lambda: (
            f"runs {n} other product{'s' if n != 1 else ''} of ours" if n else "owns none of ours"
        ),
        "owned_users_90d": lambda: f"{n} people used its other products in 90 days",
        "owned_usage_trend": lambda: (
            f"use of its other products {'up' if v > 0 else 'down'} {abs(np.expm1(v)):.0%} "
            "on the 90 days before"
        ),
        "owned_sponsors_90d": lambda: (
            f"{n} sponsor{'s' if n != 1 else ''} (decision maker, champion) of its other "
            "products active in 90 days"
        ),
        "log_employees": lambda: _employees(v),
        "account_contacts": lambda: f"{n} contacts known at the account",
        "past_opportunities": lambda: (
            f"{n} past opportunit{'ies' if n != 1 else 'y'} for this product"
        ),
        "won_before": lambda: "bought this product before" if n else "never bought this product",
        "days_since_closed": lambda: (
            "no closed opportunity"
            if v >= NEVER_CLOSED_DAYS
            else f"last opportunity closed {n} days ago"
        ),
    }
    if feature in phrases:
        return phrases[feature]()
    if feature.startswith("days_since_topic_"):
        channel = feature[len("days_since_topic_") :]
        return (
            f"no {channel} interaction with the product in a year"
            if v >= 365
            else f"last {channel} interaction with the product {n} days ago"
        )
    if feature.startswith("topic_") and feature.endswith("_30d"):
        what = feature[len("topic_") : -len("_30d")]
        if what in CHANNELS:
            return f"{n} {what} interaction{'s' if n != 1 else ''} with the product in 30 days"
        noun = ACTION_NOUNS.get(what, (what, what))[0 if n == 1 else 1]
        return f"{n} {noun} for the product in 30 days"
    return f"{feature} = {v:g}"


# Features whose 0 is a value, not "none of it" (every other feature's 0 is a count of nothing,
# never told as a reason *for* a group, whatever the trees made of it: "0 interactions with
# the product in 90 days" headed a silent account's reasons).
_ZERO_IS_A_VALUE = ("days_since_", "owned_usage_trend", "log_employees", "is_customer")


def reasons(groups: pd.DataFrame, contributions: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Top contributions towards and against qualification, in words, per group; a count
    of nothing is a reason against, never for."""
    values = contributions.to_numpy()
    cols = list(contributions.columns)
    features = [groups[c].tolist() for c in cols]  # plain values, column by column
    counts = [not c.startswith(_ZERO_IS_A_VALUE) for c in cols]  # their 0 is none of it
    order = np.argsort(-values, axis=1, kind="stable")
    ups, downs = [], []
    for i in range(len(values)):
        up = [j for j in order[i] if values[i, j] > 0 and not (counts[j] and features[j][i] == 0)]
        ups.append([describe_feature(cols[j], features[j][i]) for j in up[:top]])
        downs.append(
            [
                describe_feature(cols[j], features[j][i])
                for j in order[i, ::-1][:top]
                if values[i, j] < 0
            ]
        )
    return pd.DataFrame({"reasons_for": ups, "reasons_against": downs}, index=groups.index)


def missing_roles(groups: pd.DataFrame) -> pd.Series:
    """Roles with no member, or with members none of whom was engaged in 30 days.

    A member advocating for the product (two advocacy kinds in 90 days) acts as its
    champion even where the role model, reading the title alone, did not say so.
    """

    def column(name: str) -> np.ndarray:
        return groups[name].to_numpy() if name in groups else np.zeros(len(groups))

    advocates = column("member_advocates_90d") > 0
    out: list[list[str]] = [[] for _ in range(len(groups))]
    for role in MEMBER_ROLES:
        members, engaged = column(f"members_{role}"), column(f"engaged_{role}")
        for i in range(len(groups)):
            if role == "champion" and advocates[i]:
                continue
            if members[i] == 0:
                out[i].append(role)
            elif engaged[i] == 0:
                out[i].append(f"{role} (not engaged)")
    return pd.Series(out, index=groups.index, name="missing_roles")


def engage_next(groups: pd.DataFrame, members: pd.DataFrame, per_role: int = 2) -> pd.Series:
    """For each group, the account's contacts most likely to fill its missing or unengaged
    roles (by predicted role probability; engaged contacts first among equals).

    Array code, not merges: a REST request runs it for a handful of groups, where pandas'
    fixed costs per merge were most of its time (docs/serving.md).
    """
    keys = ["account_id", "product"]
    pairs = pd.MultiIndex.from_frame(groups[keys])
    unique_pairs = pairs.unique()
    row_pair = unique_pairs.get_indexer(pairs)
    member_pair = unique_pairs.get_indexer(pd.MultiIndex.from_frame(members[keys]))
    contact_rank = pd.factorize(members["contact_id"], sort=True)[0]
    engaged = members["engaged_30d"].to_numpy(dtype=bool)
    rows, ranks, probs = [], [], []
    for rank, role in enumerate(MEMBER_ROLES):
        col = f"engaged_{role}"
        open_ = np.ones(len(unique_pairs), dtype=bool)
        if col in groups:  # open where any of the pair's rows has no engaged member
            open_[:] = False
            open_[row_pair[groups[col].to_numpy() <= 0]] = True
        p = members[f"p_{role}"].to_numpy(dtype=float)
        sel = np.flatnonzero((p >= 0.2) & (member_pair >= 0))
        sel = sel[open_[member_pair[sel]]]
        rows.append(sel)
        ranks.append(np.full(len(sel), rank))
        probs.append(p[sel])
    row, rank, p = (np.concatenate(x) for x in (rows, ranks, probs))
    pair = member_pair[row]
    # per pair and role: likeliest first, engaged first among equals, then by contact id
    order = np.lexsort((contact_rank[row], ~engaged[row], -p, rank, pair))
    row, rank, p, pair = row[order], rank[order], p[order], pair[order]
    group = pair * len(MEMBER_ROLES) + rank
    starts = np.diff(group, prepend=-1) != 0  # codes are >= 0: the first row starts one
    first = np.maximum.accumulate(np.where(starts, np.arange(len(group)), 0))
    keep = np.arange(len(group)) - first < per_role
    contact_ids = members["contact_id"].to_numpy()
    by_pair: dict[int, list[dict]] = {}
    for g, i, k, q in zip(pair[keep], row[keep], rank[keep], p[keep], strict=True):
        by_pair.setdefault(int(g), []).append(
            {
                "role": MEMBER_ROLES[k],
                "contact_id": contact_ids[i],
                "probability": round(float(q), 3),
            }
        )
    out = [by_pair.get(int(k), []) for k in row_pair]
    return pd.Series(out, index=groups.index, name="engage_next")


def qualifier_outputs(qualifier: Qualifier, groups: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """``score``, ``qualified``, ``reasons_for``, ``reasons_against``, ``missing_roles``."""
    groups = groups.reset_index(drop=True)
    score = qualifier.score(groups)
    why = reasons(groups, qualifier.contributions(groups), top=top)
    out = pd.DataFrame({"score": score, "qualified": score >= qualifier.threshold})
    out["reasons_for"] = why["reasons_for"]
    out["reasons_against"] = why["reasons_against"]
    out["missing_roles"] = missing_roles(groups)
    return out
