"""bg-score's customer fields: segments at as_of, and the renewal risk of every running term,
which must read nothing after as_of (the rules stand in for the role model: quick tier)."""

import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.batch.customers import score_renewals
from buying_groups.batch.staging import stage_tables
from buying_groups.qualify import retention as R
from buying_groups.qualify.customers import RenewalModel, add_customer_fields, running_terms
from buying_groups.qualify.groups import predict_contact_roles

from .conftest import compose_config


@pytest.fixture(scope="module")
def renewal_model(tiny_dataset, catalog):
    tables = tiny_dataset.tables
    roles = predict_contact_roles(RulesBaseline(catalog).predict, tables["contacts"], catalog)
    ts = tables["activities"]["timestamp"]
    cfg = compose_config(
        "train_retention", ["retention.backtest_months=8", "retention.min_train_positives=3"]
    )
    settings = OmegaConf.to_container(cfg.retention, resolve=True)
    result = R.train_retention(tables, roles, catalog, ts.min(), ts.max(), settings)
    return RenewalModel(result.model, 30, "tiny")


@pytest.fixture(scope="module")
def rules_model(catalog):
    """The role predictor bg-score's model offers, here the rules (a real predictor)."""
    return SimpleNamespace(predict_roles=RulesBaseline(catalog).predict, catalog=catalog)


def customers_of(staged):
    return staged.tables["accounts"], staged.subscriptions


def _as_of(tiny_dataset) -> pd.Timestamp:
    subs = tiny_dataset.tables["subscriptions"]
    return subs["term_start"].quantile(0.7).floor("D")  # terms running, some decided later


def test_running_terms_ignore_outcomes_not_known_at_as_of():
    subs = pd.DataFrame(
        {
            "term_id": ["T1", "T2", "T3", "T4"],
            "account_id": ["A1", "A1", "A2", "A3"],
            "product": ["p"] * 4,
            "term_start": pd.to_datetime(["2025-01-01", "2026-01-01", "2025-06-01", "2026-09-01"]),
            "term_end": pd.to_datetime(["2026-01-01", "2027-01-01", "2026-03-01", "2027-09-01"]),
            "outcome": ["renewed", "churned", None, None],
        }
    )
    got = running_terms(subs, pd.Timestamp("2026-06-01"), lead_days=30)
    # T1 decided before as_of; T2 runs (its churn is in the future); T3 ended undecided;
    # T4 not started
    assert got["term_id"].tolist() == ["T2", "T3"] and got["label"].isna().all()


def test_every_running_term_is_scored_once_and_installed_groups_carry_it(
    tiny_dir, tiny_dataset, catalog, renewal_model, rules_model, tmp_path
):
    staged = stage_tables(tiny_dir, catalog, tmp_path / "stage")
    as_of = _as_of(tiny_dataset)
    scored = score_renewals(rules_model, staged, renewal_model, as_of)
    running = running_terms(staged.subscriptions, as_of, 30)
    assert len(running) > 5 and sorted(scored["term_id"]) == sorted(running["term_id"])
    assert scored["risk"].between(0, 1).all() and scored["risk"].is_monotonic_decreasing
    assert scored["reasons"].map(len).gt(0).all()

    groups = pd.DataFrame(
        [(a, p) for a in staged.tables["accounts"]["account_id"] for p in catalog.names],
        columns=["account_id", "product"],
    )
    out = add_customer_fields(groups, *customers_of(staged), as_of, scored)
    installed = out["segment"] == "installed"
    assert set(out["segment"]) <= {"new_logo", "expansion", "installed"}
    assert installed.sum() == scored[["account_id", "product"]].drop_duplicates().shape[0]
    assert out.loc[installed, "renewal_risk"].notna().all()
    assert out.loc[~installed, ["renewal_risk", "renewal_date"]].isna().all().all()
    # a customer's product it does not own yet is an expansion group
    customers = set(scored["account_id"])
    assert (out.loc[out["account_id"].isin(customers) & ~installed, "segment"] == "expansion").all()
    # without a renewal model: segments, empty renewal fields
    bare = add_customer_fields(groups, *customers_of(staged), as_of, None)
    assert (bare["segment"] == out["segment"]).all() and bare["renewal_risk"].isna().all()


def test_renewal_risk_reads_nothing_after_as_of(
    tiny_dir, tiny_dataset, catalog, renewal_model, rules_model, tmp_path
):
    """Leakage: drop every activity after as_of and blank the outcomes decided after it, and
    each running term's risk and reasons stay the same."""
    as_of = _as_of(tiny_dataset)
    cut = tmp_path / "cut"
    shutil.copytree(tiny_dir, cut, ignore=shutil.ignore_patterns("*.csv", "labels"))
    acts = pd.read_parquet(cut / "activities.parquet")
    acts[acts["timestamp"] <= as_of].to_parquet(cut / "activities.parquet")
    subs = pd.read_parquet(cut / "subscriptions.parquet")
    later = subs["term_end"] - pd.Timedelta(days=30) > as_of
    subs.loc[later, "outcome"] = None
    subs.to_parquet(cut / "subscriptions.parquet")

    full = score_renewals(
        rules_model, stage_tables(tiny_dir, catalog, tmp_path / "a"), renewal_model, as_of
    )
    past = score_renewals(
        rules_model, stage_tables(cut, catalog, tmp_path / "b"), renewal_model, as_of
    )
    full, past = (f.sort_values("term_id").reset_index(drop=True) for f in (full, past))
    np.testing.assert_allclose(full["risk"], past["risk"])
    assert full["reasons"].map(list).tolist() == past["reasons"].map(list).tolist()
