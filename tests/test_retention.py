"""Renewal risk: labels and decision dates, no look-ahead, reasons in words, the model against
the two account-level baselines, and bg-train-retention end to end."""

import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.data.generate import GeneratorConfig, generate
from buying_groups.qualify import retention as R
from buying_groups.qualify.groups import predict_contact_roles

from .conftest import compose_config, run_cli


def _terms(**cols):
    base = {
        "term_id": ["T1", "T2", "T3"],
        "subscription_id": ["S1", "S1", "S2"],
        "account_id": ["A1", "A1", "A2"],
        "product": ["data_platform"] * 3,
        "term_start": pd.to_datetime(["2025-01-01", "2025-04-01", "2025-03-01"]),
        "term_end": pd.to_datetime(["2025-04-01", "2025-07-01", "2026-03-01"]),
        "outcome": ["renewed", "churned", None],
    }
    return pd.DataFrame(base | cols)


def test_renewals_are_judged_a_month_ahead_and_labelled_by_revenue_at_risk():
    terms = R.renewals(_terms(), lead_days=30, as_of=pd.Timestamp("2025-12-31"))
    assert list(terms["decision_date"].dt.strftime("%Y-%m-%d")) == [
        "2025-03-02",
        "2025-06-01",
        "2025-12-31",  # not decided yet: judged on what the export holds
    ]
    assert terms["label"].tolist()[:2] == [0.0, 1.0] and np.isnan(terms["label"].iloc[2])
    downgraded = R.renewals(_terms(outcome=["downgraded", "expanded", None]))
    assert downgraded["label"].tolist()[:2] == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown outcome"):
        R.renewals(_terms(outcome=["renewed", "cancelled", None]))


@pytest.fixture(scope="module")
def tiny_states(tiny_dataset, catalog):
    tables = tiny_dataset.tables
    roles = predict_contact_roles(RulesBaseline(catalog).predict, tables["contacts"], catalog)
    terms = R.renewals(tables["subscriptions"], as_of=tiny_dataset.config.end)
    return tables, roles, terms, R.renewal_states(tables, terms, roles, catalog)


def test_a_renewal_reads_nothing_after_its_decision_date(tiny_states, catalog):
    """Leakage: rewrite everything after a renewal's decision date (activities dropped and
    invented, contacts joining) and its features stay the same."""
    tables, roles, terms, states = tiny_states
    picked = terms[terms["label"].notna()].sort_values("decision_date")
    picked = picked.iloc[np.linspace(0, len(picked) - 1, 5).astype(int)]
    for _, term in picked.iterrows():
        t = term["decision_date"]
        acts = tables["activities"]
        later = acts[acts["timestamp"] > t].copy()
        later["contact_id"] = later["contact_id"].sample(frac=1, random_state=0).to_numpy()
        later["timestamp"] = later["timestamp"] + pd.Timedelta(hours=1)
        later["activity_id"] = "X" + later["activity_id"]
        newcomer = (
            tables["contacts"]
            .iloc[:1]
            .assign(
                contact_id="C9999999",
                account_id=term["account_id"],
                created_at=t + pd.Timedelta(days=1),
            )
        )
        changed = dict(tables)
        changed["activities"] = pd.concat([acts[acts["timestamp"] <= t], later.iloc[::2]])
        changed["contacts"] = pd.concat([tables["contacts"], newcomer], ignore_index=True)
        extra = roles[roles["contact_id"] == newcomer["contact_id"].iat[0]]
        again = R.renewal_states(changed, term.to_frame().T.astype(terms.dtypes), roles, catalog)
        before = states[states["term_id"] == term["term_id"]]
        cols = R.retention_features(states) + ["members", "engaged_members", "intent_90d"]
        assert extra.empty
        pd.testing.assert_frame_equal(
            again[cols].reset_index(drop=True).astype(float),
            before[cols].reset_index(drop=True).astype(float),
        )
    assert not {"label", "outcome", "renewal_number"} & set(R.retention_features(states))


def test_every_feature_reads_as_words(tiny_states):
    _, _, _, states = tiny_states
    for feature in R.retention_features(states):
        for value in (0.0, 1.0, 45.0, 365.0, -0.7):
            phrase = R.describe_retention_feature(feature, value)
            assert feature not in phrase and "=" not in phrase, (feature, phrase)
    assert R.describe_retention_feature("days_since_lead_user", 90) == (
        "lead user (champion) inactive for 90 days"
    )
    assert R.describe_retention_feature("dm_engaged_this_term", 0) == (
        "no decision maker engaged since the last renewal"
    )


@pytest.mark.slow
def test_renewal_risk_beats_recency_and_engagement_on_demo(catalog):
    """The quality floor on demo (seed 42, roles from the rules): in a month-by-month
    backtest the model ranks at-risk renewals above both baselines."""
    cfg = compose_config("train_retention", ["data=demo", "data_dir=unused"])
    gen = GeneratorConfig.from_config(OmegaConf.to_container(cfg.data, resolve=True))
    tables = generate(gen, catalog).tables
    roles = predict_contact_roles(RulesBaseline(catalog).predict, tables["contacts"], catalog)
    settings = OmegaConf.to_container(cfg.retention, resolve=True)
    result = R.train_retention(tables, roles, catalog, gen.start, gen.end, settings)
    table = result.comparison
    assert table.loc["renewal risk", "base_rate"] > 0.05 and len(result.backtest) > 200
    for baseline in ("recency", "engagement"):
        assert table.loc["renewal risk", "pr_auc"] > table.loc[baseline, "pr_auc"], table
        assert table.loc["renewal risk", "precision"] >= table.loc[baseline, "precision"], table
    # open renewals are ranked and explained
    assert result.at_risk["risk"].is_monotonic_decreasing
    assert result.at_risk["reasons"].map(len).gt(0).mean() > 0.9


@pytest.mark.slow
def test_bg_train_retention_end_to_end(tiny_dir, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_cli(
        "train_retention",
        tmp_path,
        "data=tiny",
        f"data_dir={tiny_dir}",
        "roles.source=rules",
        f"tracking.uri={uri}",
        f"output_dir={tmp_path / 'out'}",
        "retention.backtest_months=8",
        "retention.min_train_positives=3",
    )
    assert "renewal risk" in proc.stdout and "recency" in proc.stdout
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(experiment_names=["buying-groups-retention"]).iloc[0]
    assert 0 <= run["metrics.backtest/renewal_risk_pr_auc"] <= 1
    opened = pd.read_parquet(tmp_path / "out" / "open_renewals.parquet")
    assert len(opened) and opened["risk"].between(0, 1).all()
    model_uri = re.search(r"model (models:/\S+);", proc.stdout).group(1)
    model = mlflow.pyfunc.load_model(model_uri)
    out = model.predict(model.input_example)
    assert out["risk"].between(0, 1).all() and out["reasons"].map(len).gt(0).all()
    # Registered; the champion alias is the first version, whose run it came from.
    assert "registry: buying-groups-renewal-risk v1 is @champion" in proc.stdout
    client = mlflow.MlflowClient(uri)
    champion = client.get_model_version_by_alias("buying-groups-renewal-risk", "champion")
    assert str(champion.version) == "1" and champion.run_id == run["run_id"]


def test_bg_train_retention_needs_a_subscriptions_table(tiny_dir, tmp_path, catalog):
    from buying_groups.data.dataset import load_dataset

    tables, _ = load_dataset(tiny_dir, catalog)
    tables = {k: v for k, v in tables.items() if k != "subscriptions"}
    roles = predict_contact_roles(RulesBaseline(catalog).predict, tables["contacts"], catalog)
    ts = tables["activities"]["timestamp"]
    with pytest.raises(ValueError, match="no subscriptions table"):
        R.train_retention(tables, roles, catalog, ts.min(), ts.max(), {})
