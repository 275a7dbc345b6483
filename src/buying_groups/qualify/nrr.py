"""The NRR view: month by month, the renewal revenue the renewal-risk model expected to lose
against what was lost, and the expansion opportunities the qualifier expected at customers
against those that came. Both sides are predictions made before the month (the retention
backtest, the qualifier's test period), so the table reads as a forecast against its outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buying_groups.data.schema import AT_RISK_OUTCOMES


def term_changes(subscriptions: pd.DataFrame) -> pd.DataFrame:
    """Per term with a known outcome: ``amount``, ``next_amount`` (the subscription's next
    term; 0 after a churn), the revenue ``lost`` (churn, downgrade) and ``gained``
    (expansion). Terms whose next term is missing from the export, or without an amount,
    get NaN there (they are counted, not valued)."""
    s = subscriptions.sort_values(["subscription_id", "term_start"], kind="stable")
    amount = pd.to_numeric(s.get("amount"), errors="coerce") if "amount" in s else np.nan
    s = s.assign(amount=amount)
    s["next_amount"] = s.groupby("subscription_id")["amount"].shift(-1)
    s.loc[s["outcome"] == "churned", "next_amount"] = 0.0
    s = s[s["outcome"].notna()]
    change = s["next_amount"] - s["amount"]
    s["lost"], s["gained"] = (-change).clip(lower=0), change.clip(lower=0)
    return s[["term_id", "term_end", "outcome", "amount", "next_amount", "lost", "gained"]]


def loss_share(changes: pd.DataFrame, before: pd.Timestamp) -> float:
    """The share of its amount an at-risk renewal (downgrade or churn) lost, over the terms
    that ended before ``before`` (what was known then); 1.0 without any."""
    known = changes[(changes["term_end"] < before) & changes["outcome"].isin(AT_RISK_OUTCOMES)]
    share = (known["lost"] / known["amount"]).replace([np.inf, -np.inf], np.nan).dropna()
    return float(share.mean()) if len(share) else 1.0


def renewal_revenue(scored: pd.DataFrame, subscriptions: pd.DataFrame) -> pd.DataFrame:
    """Per backtest month (``retention.backtest``'s scored renewals): renewals, at-risk
    renewals expected (the sum of their risks) and actual; with amounts, the revenue up for
    renewal, expected at risk (risk x amount x the loss share known before the backtest),
    lost, gained at renewal, and the renewals' net revenue retention."""
    changes = term_changes(subscriptions)
    share = loss_share(changes, scored["month"].min())
    frame = scored[["term_id", "month", "score", "label"]].merge(
        changes.drop(columns=["term_end", "outcome"]),
        on="term_id",
        how="left",
        validate="one_to_one",
    )
    frame["expected_loss"] = frame["score"] * frame["amount"] * share
    table = frame.groupby("month").agg(
        renewals=("term_id", "size"),
        at_risk_expected=("score", "sum"),
        at_risk_actual=("label", "sum"),
        up_for_renewal=("amount", "sum"),
        revenue_at_risk=("expected_loss", "sum"),
        revenue_lost=("lost", "sum"),
        revenue_gained=("gained", "sum"),
        valued=("next_amount", "count"),
    )
    up = table["up_for_renewal"].where(table["valued"] > 0)
    table["nrr"] = (up - table["revenue_lost"] + table["revenue_gained"]) / up
    table.index = table.index.strftime("%Y-%m")
    return table


def expansion_pipeline(scored_groups: pd.DataFrame, segment: str = "expansion") -> pd.DataFrame:
    """Per snapshot, the ``segment`` groups (a customer x a product it does not own):
    groups, qualified, opportunities expected within the label horizon (the sum of the
    qualifier's calibrated probabilities) and those that came (labels)."""
    part = scored_groups[scored_groups["segment"] == segment]
    table = part.groupby("snapshot").agg(
        groups=("label", "size"),
        qualified=("qualified", "sum"),
        opportunities_expected=("score", "sum"),
        opportunities_actual=("label", "sum"),
    )
    table.index = pd.DatetimeIndex(table.index).strftime("%Y-%m-%d")
    return table


def expansion_view(scored_groups: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """The NRR view's expansion side of the qualifier's scored test groups: the table per
    snapshot, its totals as ``test/expansion/<column>`` metrics and its figure (empty
    without expansion groups)."""
    table = expansion_pipeline(scored_groups)
    if not len(table):
        return table, {}, {}
    metrics = {f"test/expansion/{k}": float(v) for k, v in table.sum().items()}
    return table, metrics, {"plots/nrr_expansion.png": nrr_figure(None, table)}


def nrr_figure(revenue: pd.DataFrame | None, pipeline: pd.DataFrame | None):  # noqa: ANN201
    """Predicted before against what happened: renewal revenue lost per month, expansion
    opportunities per snapshot; one panel per table given."""
    import matplotlib.pyplot as plt

    sides = [
        (table, expected, actual, title)
        for table, expected, actual, title in (
            (revenue, "revenue_at_risk", "revenue_lost", "renewal revenue: at risk vs lost"),
            (
                pipeline,
                "opportunities_expected",
                "opportunities_actual",
                "expansion opportunities: expected vs came",
            ),
        )
        if table is not None and len(table)
    ]
    fig, axes = plt.subplots(1, max(len(sides), 1), figsize=(5.5 * max(len(sides), 1), 3.8))
    for ax, (table, expected, actual, title) in zip(np.atleast_1d(axes), sides, strict=False):
        x = np.arange(len(table))
        ax.bar(x - 0.2, table[expected], 0.4, label="predicted before")
        ax.bar(x + 0.2, table[actual], 0.4, label="what happened")
        ax.set_xticks(x, table.index, rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
