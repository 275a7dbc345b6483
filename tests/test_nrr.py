"""The NRR view: revenue changes per term, the renewal side per month, the expansion side
per snapshot (pure logic on hand-made tables)."""

import numpy as np
import pandas as pd
import pytest

from buying_groups.qualify.nrr import (
    expansion_pipeline,
    loss_share,
    nrr_figure,
    renewal_revenue,
    term_changes,
)


def _subscriptions() -> pd.DataFrame:
    # S1: renewed, then expanded 100 -> 150; S2: downgraded 200 -> 50, then churned;
    # S3: one term, churned; S4: still running (no outcome)
    return pd.DataFrame(
        {
            "term_id": ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8"],
            "subscription_id": ["S1", "S1", "S1", "S2", "S2", "S3", "S4", "S2"],
            "term_start": pd.to_datetime(
                [
                    "2025-01-01",
                    "2025-04-01",
                    "2025-07-01",
                    "2025-01-01",
                    "2025-07-01",
                    "2025-03-01",
                    "2025-05-01",
                    "2024-07-01",
                ]
            ),
            "term_end": pd.to_datetime(
                [
                    "2025-04-01",
                    "2025-07-01",
                    "2025-10-01",
                    "2025-07-01",
                    "2026-01-01",
                    "2025-09-01",
                    "2026-05-01",
                    "2025-01-01",
                ]
            ),
            "amount": [100.0, 100.0, 150.0, 200.0, 50.0, 80.0, 60.0, 200.0],
            "outcome": [
                "renewed",
                "expanded",
                None,
                "downgraded",
                "churned",
                "churned",
                None,
                "renewed",
            ],
        }
    )


def test_term_changes_value_each_outcome():
    c = term_changes(_subscriptions()).set_index("term_id")
    assert set(c.index) == {"T1", "T2", "T4", "T5", "T6", "T8"}  # outcomes known
    assert c.loc["T2", "gained"] == 50 and c.loc["T2", "lost"] == 0
    assert c.loc["T4", "lost"] == 150  # downgrade 200 -> 50
    assert c.loc["T5", "lost"] == 50 and c.loc["T5", "next_amount"] == 0  # churn
    assert c.loc["T8", "lost"] == 0 and c.loc["T8", "gained"] == 0  # the oldest term first
    # Only what ended before the date counts: T4 lost 75% of its amount, T5 and T6 all.
    changes = term_changes(_subscriptions())
    assert loss_share(changes, pd.Timestamp("2025-08-01")) == pytest.approx(0.75)
    assert loss_share(changes, pd.Timestamp("2026-02-01")) == pytest.approx((0.75 + 1 + 1) / 3)
    assert loss_share(changes, pd.Timestamp("2025-01-01")) == 1.0  # nothing known yet


def test_renewal_revenue_per_month():
    scored = pd.DataFrame(
        {
            "term_id": ["T5", "T6", "T2"],
            "month": pd.to_datetime(["2025-12-01", "2025-08-01", "2025-06-01"]),
            "score": [0.5, 0.2, 0.1],
            "label": [1.0, 1.0, 0.0],
        }
    )
    table = renewal_revenue(scored, _subscriptions())
    assert list(table.index) == ["2025-06", "2025-08", "2025-12"]
    # Loss share known before the first month (2025-06): T4 had not ended -> 1.0.
    assert table.loc["2025-08", "revenue_at_risk"] == pytest.approx(0.2 * 80)
    assert table.loc["2025-12", "revenue_lost"] == 50
    assert table.loc["2025-06", "revenue_gained"] == 50
    assert table.loc["2025-06", "nrr"] == pytest.approx(1.5)
    assert table.loc["2025-08", "nrr"] == 0
    assert table["at_risk_actual"].sum() == 2 and table["renewals"].sum() == 3


def test_renewal_revenue_without_amounts_still_counts():
    subs = _subscriptions().drop(columns="amount")
    scored = pd.DataFrame(
        {"term_id": ["T6"], "month": pd.to_datetime(["2025-08-01"]), "score": [0.3], "label": [1]}
    )
    table = renewal_revenue(scored, subs)
    assert table.loc["2025-08", "at_risk_expected"] == pytest.approx(0.3)
    assert np.isnan(table.loc["2025-08", "nrr"])


def test_expansion_pipeline_per_snapshot_and_figure():
    groups = pd.DataFrame(
        {
            "snapshot": pd.to_datetime(["2025-01-01"] * 3 + ["2025-02-01"] * 2),
            "segment": ["expansion", "expansion", "new_logo", "expansion", "installed"],
            "score": [0.4, 0.1, 0.9, 0.3, 0.5],
            "qualified": [True, False, True, False, True],
            "label": [1, 0, 1, 0, 0],
        }
    )
    table = expansion_pipeline(groups)
    assert table["groups"].tolist() == [2, 1]
    assert table["opportunities_expected"].tolist() == pytest.approx([0.5, 0.3])
    assert table["opportunities_actual"].tolist() == [1, 0]
    fig = nrr_figure(None, table)
    assert len(fig.axes) == 1
