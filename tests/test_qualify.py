"""Buying groups and qualification on the tiny dataset: group state without look-ahead,
labels, lead-scoring baselines, threshold rules, explanations, stages, and bg-train-qualifier
end to end (groups from the rules baseline here; from a trained role model in
test_train_roles.py)."""

import pickle
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from buying_groups.baselines.rules import RulesBaseline
from buying_groups.data.splits import snapshot_dates
from buying_groups.qualify.compare import (
    comparison_table,
    journey_stages,
    segment_comparison,
    stage_transitions,
)
from buying_groups.qualify.groups import (
    MEMBER_ROLES,
    add_labels,
    feature_columns,
    group_states,
    predict_contact_roles,
    segments,
)
from buying_groups.qualify.model import (
    choose_threshold,
    describe_feature,
    engage_next,
    fit_qualifier,
    missing_roles,
    reasons,
)
from buying_groups.qualify.scoring_baselines import lead_scores

from .conftest import compose_config, run_cli


@pytest.fixture(scope="module")
def tables(tiny_tables):
    return tiny_tables[0]


@pytest.fixture(scope="module")
def roles(tables, catalog):
    return predict_contact_roles(RulesBaseline(catalog).predict, tables["contacts"], catalog)


@pytest.fixture(scope="module")
def snaps(tables):
    ts = tables["activities"]["timestamp"]
    return snapshot_dates(ts.min().normalize(), ts.max())


@pytest.fixture(scope="module")
def groups(tables, roles, catalog, snaps):
    g = group_states(tables, roles, catalog, snaps)
    g = add_labels(g, tables["opportunities"])
    return g.merge(lead_scores(tables, catalog, snaps), on=["snapshot", "account_id", "product"])


def test_one_row_per_group_and_snapshot(groups, tables, catalog, snaps):
    assert len(groups) == len(snaps) * len(tables["accounts"]) * len(catalog.names)
    assert not groups.duplicated(["snapshot", "account_id", "product"]).any()
    assert groups[feature_columns(groups)].notna().all().all()


def test_features_ignore_the_future(tables, roles, catalog, snaps):
    """Appending activities and opportunities after t leaves the state at t unchanged."""
    t = snaps[len(snaps) // 2]
    before = group_states(tables, roles, catalog, [t])
    future = dict(tables)
    acts = tables["activities"]
    late = acts.sample(500, random_state=0).copy()
    late["activity_id"] = "F" + late["activity_id"].astype(str)
    late["timestamp"] = t + pd.to_timedelta(np.arange(1, 501), unit="h")
    late["action"] = "requested_demo"
    future["activities"] = pd.concat([acts, late], ignore_index=True)
    opp = tables["opportunities"]
    new = pd.DataFrame(
        {
            "opportunity_id": [f"FO{i}" for i in range(10)],
            "account_id": tables["accounts"]["account_id"].iloc[:10].to_numpy(),
            "product": catalog.names[0],
            "created_at": t + pd.Timedelta(days=3),
            "closed_at": t + pd.Timedelta(days=40),
            "stage": "closed_won",
            "won": True,
        }
    )
    # An opportunity open at t that closes later: only "open" may be known at t.
    open_at_t = (opp["created_at"] <= t) & ~(opp["closed_at"] <= t)
    assert open_at_t.any()
    closes_later = opp[open_at_t].copy()
    closes_later["closed_at"] = t + pd.Timedelta(days=5)
    closes_later["won"] = True
    rest = opp.drop(closes_later.index)
    future["opportunities"] = pd.concat([rest, closes_later, new], ignore_index=True)
    # Contacts created after t (with a member role) are not members at t yet.
    joined = tables["contacts"].sample(20, random_state=1).copy()
    joined["contact_id"] = "FC" + joined["contact_id"].astype(str)
    joined["created_at"] = t + pd.Timedelta(days=2)
    future["contacts"] = pd.concat([tables["contacts"], joined], ignore_index=True)
    their_roles = pd.DataFrame(
        {
            "contact_id": np.repeat(joined["contact_id"].to_numpy(), len(catalog.names)),
            "account_id": np.repeat(joined["account_id"].to_numpy(), len(catalog.names)),
            "product": np.tile(catalog.names, len(joined)),
            "role": "champion",
        }
    )
    future_roles = pd.concat([roles, their_roles], ignore_index=True)
    # Subscription terms that start after t: not owned at t.
    subs = tables["subscriptions"]
    starts = subs.sample(10, random_state=2).copy()
    starts["term_id"] = "FT" + starts["term_id"].astype(str)
    starts["term_start"] = t + pd.Timedelta(days=1)
    starts["term_end"] = t + pd.Timedelta(days=366)
    future["subscriptions"] = pd.concat([subs, starts], ignore_index=True)
    after = group_states(future, future_roles, catalog, [t])
    pd.testing.assert_frame_equal(before, after)
    # ... and they are, once created (the check can fail).
    later = group_states(future, future_roles, catalog, [t + pd.Timedelta(days=3)])
    assert (later["members_champion"] > 0).sum() > (before["members_champion"] > 0).sum()


def test_customer_features_count_the_other_products_running_at_the_snapshot(
    groups, tables, roles, catalog, snaps
):
    """Only a customer has them: the other products it runs a term of at the snapshot, and
    their users and sponsors; every other group (and an export without subscriptions) has
    zeros."""
    from buying_groups.qualify.groups import CUSTOMER_FEATURES

    t = snaps[len(snaps) // 2]
    at_t = groups[groups["snapshot"] == t].set_index(["account_id", "product"])
    subs = tables["subscriptions"]
    run = subs[(subs["term_start"] <= t) & (t < subs["term_end"])]
    owned = run.groupby("account_id")["product"].apply(set)
    expected = [len(owned.get(a, set()) - {p}) for a, p in at_t.index]
    assert (at_t["owned_other_products"].to_numpy() == expected).all()
    assert (at_t["owned_other_products"] > 0).any()
    none = at_t["owned_other_products"] == 0
    assert (at_t.loc[none, list(CUSTOMER_FEATURES)] == 0).all().all()
    assert at_t.loc[~none, "owned_users_90d"].gt(0).any()
    without = {k: v for k, v in tables.items() if k != "subscriptions"}
    bare = group_states(without, roles, catalog, [t])
    assert (bare[list(CUSTOMER_FEATURES)] == 0).all().all()


def test_members_and_engagement_match_a_direct_count(groups, roles, tables, snaps):
    t = snaps[-1]
    row = groups[(groups["snapshot"] == t) & (groups["members"] > 2)].iloc[0]
    mine = roles[(roles["account_id"] == row["account_id"]) & (roles["product"] == row["product"])]
    acts = tables["activities"]
    window = acts[(acts["timestamp"] <= t) & (acts["timestamp"] > t - pd.Timedelta(days=30))]
    for role in MEMBER_ROLES:
        ids = mine.loc[mine["role"] == role, "contact_id"]
        assert row[f"members_{role}"] == len(ids)
        assert row[f"engaged_{role}"] == ids.isin(window["contact_id"]).sum()
    on_topic = window[
        window["contact_id"].isin(
            tables["contacts"].loc[
                tables["contacts"]["account_id"] == row["account_id"], "contact_id"
            ]
        )
        & (window["topic"] == row["product"])
    ]
    assert row["topic_events_30d"] == len(on_topic)


def test_labels_are_opportunities_created_in_the_next_90_days(groups, tables):
    opp = tables["opportunities"]
    sample = groups.sample(300, random_state=1)
    for _, g in sample.iterrows():
        created = opp.loc[
            (opp["account_id"] == g["account_id"]) & (opp["product"] == g["product"]),
            "created_at",
        ]
        hit = ((created > g["snapshot"]) & (created <= g["snapshot"] + pd.Timedelta(days=90))).any()
        assert g["label"] == int(hit)
    assert groups["label"].sum() > 0


def test_lead_scores_decay_and_aggregate(groups, tables, catalog, snaps):
    assert (groups["mql_score"] <= groups["mqa_score"] + 1e-9).all()
    # One contact, one event: points halve after one half-life.
    contact = tables["contacts"].iloc[:1]
    t = pd.Timestamp("2025-06-01")
    one = {
        "accounts": tables["accounts"][
            tables["accounts"]["account_id"] == contact["account_id"].iloc[0]
        ],
        "contacts": contact,
        "activities": pd.DataFrame(
            {
                "activity_id": ["a"],
                "contact_id": contact["contact_id"],
                "timestamp": [t - pd.Timedelta(days=30)],
                "channel": ["sales"],
                "action": ["requested_demo"],
                "asset": ["Demo request"],
                "topic": [catalog.names[0]],
            }
        ),
    }
    s = lead_scores(one, catalog, [t], half_life_days=30)
    assert s.loc[s["product"] == catalog.names[0], "mql_score"].item() == pytest.approx(12.5)
    assert s.loc[s["product"] == catalog.names[1], "mql_score"].item() == 0


def test_segments_new_logo_expansion_installed():
    snaps = pd.to_datetime(["2025-03-01", "2025-08-01"])
    groups = pd.DataFrame(
        [(t, a, p) for t in snaps for a in ("A", "B") for p in ("p1", "p2")],
        columns=["snapshot", "account_id", "product"],
    )
    accounts = pd.DataFrame({"account_id": ["A", "B"], "is_customer": [True, False]})
    subs = pd.DataFrame(
        {
            "account_id": ["A"],
            "product": ["p1"],
            "term_start": pd.to_datetime(["2025-01-01"]),
            "term_end": pd.to_datetime(["2025-07-01"]),
        }
    )
    got = pd.Series(segments(groups, {"accounts": accounts, "subscriptions": subs}))
    # A owns p1 in March (its other product is expansion); its term ended before August.
    assert got.tolist() == ["installed", "expansion", "new_logo", "new_logo"] + ["new_logo"] * 4
    # Without subscriptions the customer flag decides, and no group counts as installed.
    got = segments(groups, {"accounts": accounts})
    assert got.tolist() == ["expansion", "expansion", "new_logo", "new_logo"] * 2


def test_segment_comparison_at_equal_volume_within_each_segment():
    frame = pd.DataFrame(
        {
            "segment": ["new_logo"] * 6 + ["expansion"] * 4 + ["installed"] * 2,
            "label": [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0],
            "score": [0.9, 0.8, 0.1, 0.7, 0.2, 0.1, 0.6, 0.5, 0.1, 0.1, 0.9, 0.1],
            "mqa_score": [0.1, 0.9, 0.8, 0.2, 0.1, 0.1, 0.1, 0.9, 0.2, 0.3, 0.1, 0.1],
        }
    )
    frame["qualified"] = frame["score"] >= 0.5
    table = segment_comparison(frame, {"QBG": "score", "MQA": "mqa_score"})
    # A segment without positives has nothing to compare; each flags QBG's volume there.
    assert set(table.index.get_level_values("segment")) == {"new_logo", "expansion"}
    assert table.loc[("new_logo", "QBG"), "flagged"] == 3
    assert table.loc[("new_logo", "MQA"), "flagged"] == 3
    assert table.loc[("expansion", "QBG"), "flagged"] == 2
    assert table.loc[("new_logo", "QBG"), "precision"] == pytest.approx(2 / 3)
    assert table.loc[("expansion", "QBG"), "precision"] == pytest.approx(1 / 2)
    assert table.loc[("expansion", "MQA"), "precision"] == 0


def test_threshold_rules():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    labels = (rng.random(1000) < scores**3).astype(int)
    snaps = pd.Series(np.repeat(pd.date_range("2025-01-01", periods=10, freq="MS"), 100))
    t = choose_threshold(scores, labels, snaps, "capacity", capacity_per_snapshot=20)
    assert (scores >= t).sum() == 200
    t = choose_threshold(scores, labels, snaps, "precision", target_precision=0.6)
    assert labels[scores >= t].mean() >= 0.6
    assert labels[scores >= np.sort(scores)[0]].mean() < 0.6  # and not everything
    with pytest.raises(ValueError, match="threshold mode"):
        choose_threshold(scores, labels, snaps, "bogus")


def test_qualifier_beats_lead_and_account_scoring_and_explains(groups):
    g = groups[~groups["open_opportunity"]]
    train = g[g["snapshot"] < "2025-09-01"]
    test = g[g["snapshot"] >= "2025-10-01"]
    features = feature_columns(g)
    assert not {"mql_score", "mqa_score", "label"} & set(features)
    params = {
        "kind": "hist_gradient_boosting",
        "max_iter": 100,
        "max_leaf_nodes": 8,
        "min_samples_leaf": 20,
        "class_weight": "balanced",
    }
    q = fit_qualifier(train, train, features, params)
    test = test.assign(score=q.score(test))
    test["qualified"] = test["score"] >= np.quantile(test["score"], 0.9)
    test["mql_flag"] = test["mql_score"] >= 40
    test["mqa_flag"] = test["mqa_score"] >= 120
    table = comparison_table(
        test,
        {"QBG": "score", "MQL": "mql_score", "MQA": "mqa_score"},
        int(test["qualified"].sum()),
        {"QBG": "qualified", "MQL": "mql_flag", "MQA": "mqa_flag"},
    )
    # Quality floor on tiny data: better ranking than both baselines and the base rate.
    assert table.loc["QBG", "pr_auc"] > table.loc["MQL", "pr_auc"]
    assert table.loc["QBG", "pr_auc"] > table.loc["MQA", "pr_auc"]
    assert table.loc["QBG", "pr_auc"] > 2 * test["label"].mean()
    assert len(set(table["flagged"])) == 1  # equal volume
    # SHAP values add up to the boosted model's log-odds.
    contrib = q.contributions(test.head(20))
    clf = q.pipeline.named_steps["classifier"]
    raw = clf.decision_function(test.head(20)[features].astype(float))
    base = raw - contrib.sum(axis=1).to_numpy()
    np.testing.assert_allclose(base, base[0], atol=1e-6)
    # The explainer is built once per qualifier and left out of its pickle (as logged).
    again = pickle.loads(pickle.dumps(q))
    assert "_explainer" in q.__dict__ and "_explainer" not in again.__dict__
    pd.testing.assert_frame_equal(again.contributions(test.head(20)), contrib)


def test_reasons_are_plain_words():
    assert describe_feature("members_gatekeeper", 0) == "no gatekeeper yet"
    assert describe_feature("engaged_decision_maker", 1) == (
        "decision maker engaged in the last 30 days"
    )
    assert describe_feature("intent_30d", 3) == "3 high-intent actions in 30 days"
    assert describe_feature("log_employees", float("nan")) == "company size unknown"
    assert (
        describe_feature("topic_requested_demo_30d", 2)
        == "2 demo requests for the product in 30 days"
    )
    assert (
        describe_feature("topic_email_30d", 1) == "1 email interaction with the product in 30 days"
    )
    row = pd.DataFrame([{f"members_{r}": 1 for r in MEMBER_ROLES} | {"members_champion": 0}])
    for r in MEMBER_ROLES:
        row[f"engaged_{r}"] = 1
    row["engaged_gatekeeper"] = 0
    assert missing_roles(row).iloc[0] == ["champion", "gatekeeper (not engaged)"]
    row["member_advocates_90d"] = 1  # an advocating member acts as champion
    assert missing_roles(row).iloc[0] == ["gatekeeper (not engaged)"]


def test_engage_next_picks_the_likeliest_contacts_for_open_roles():
    groups = pd.DataFrame(
        {"account_id": ["A", "B"], "product": ["p1", "p1"]}
        | {f"engaged_{r}": [1, 1] for r in MEMBER_ROLES}
    )
    groups.loc[0, "engaged_champion"] = 0  # A lacks an engaged champion; B lacks nothing
    members = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "A", "B"],
            "product": ["p1"] * 5,
            "contact_id": ["c3", "c1", "c2", "c4", "c9"],
            "engaged_30d": [0, 0, 1, 0, 0],
        }
        | {f"p_{r}": [0.0] * 5 for r in MEMBER_ROLES}
    )
    # c1 and c2 tie on probability: the engaged one (c2) first; c4 is below the 0.2 floor.
    members["p_champion"] = [0.5, 0.7, 0.7, 0.1, 0.9]
    out = engage_next(groups, members, per_role=2)
    assert out.iloc[0] == [
        {"role": "champion", "contact_id": "c2", "probability": 0.7},
        {"role": "champion", "contact_id": "c1", "probability": 0.7},
    ]
    assert out.iloc[1] == []


def test_journey_stages_and_transitions(groups):
    qualified = groups["mqa_score"] > groups["mqa_score"].quantile(0.95)
    g = groups.assign(stage=journey_stages(groups, qualified).to_numpy())
    assert (g.loc[g["open_opportunity"], "stage"] == "opportunity").all()
    assert (g.loc[g["members"] == 0, "stage"].isin(["none", "opportunity", "won", "lost"])).all()
    t = stage_transitions(g)
    n_pairs = g.groupby(["account_id", "product"]).ngroups
    assert t.to_numpy().sum() == len(g) - n_pairs
    assert "opportunity" in t.index


def test_bg_train_qualifier_end_to_end(tmp_path, tiny_dir):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_cli(
        "train_qualifier",
        tmp_path,
        "data=tiny",
        f"data_dir={tiny_dir}",
        "roles.source=rules",
        f"tracking.uri={uri}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert "QBG vs MQL vs MQA" in proc.stdout
    mlflow.set_tracking_uri(uri)
    run = mlflow.search_runs(experiment_names=["buying-groups-qualifier"]).iloc[0]
    assert run["tags.bg.role_source"] == "rules"
    for m in ("qbg", "mql", "mqa"):
        assert pd.notna(run[f"metrics.test/{m}_pr_auc"])
    client = mlflow.MlflowClient(uri)
    arts = {a.path for a in client.list_artifacts(run["run_id"], "plots")}
    assert {"plots/pr_curves_test.png", "plots/lift_test.png"} <= arts
    tables = {a.path for a in client.list_artifacts(run["run_id"], "tables")}
    assert "tables/comparison_test.json" in tables and "tables/stage_transitions.json" in tables
    # The logged qualifier scores group-state rows and explains them.
    model = mlflow.pyfunc.load_model(
        mlflow.search_logged_models(experiment_ids=[run["experiment_id"]], output_format="list")[
            0
        ].model_uri
    )
    states = pd.read_parquet(tmp_path / "run" / "group_states.parquet")
    out = model.predict(states.head(50))
    assert list(out.columns[:2]) == ["score", "qualified"]
    assert out["score"].between(0, 1).all() and len(out) == 50
    assert all(isinstance(r, list | np.ndarray) for r in out["reasons_for"])
    with pytest.raises(mlflow.exceptions.MlflowException, match="intent_30d"):
        model.predict(states.head(5).drop(columns=["intent_30d"]))


def test_configs_compose_for_the_qualifier():
    cfg = compose_config("train_qualifier", ["qualifier=lightgbm"])
    assert cfg.qualifier.kind == "lightgbm"
    assert cfg.tracking.experiment_name == "buying-groups-qualifier"
    assert compose_config("train_qualifier").qualifier.threshold.mode == "capacity"


def test_lightgbm_option_without_lightgbm_says_how_to_install(monkeypatch):
    from buying_groups.qualify.model import build_pipeline

    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import fails as if not installed
    with pytest.raises(SystemExit, match=r"buying-groups\[lightgbm\]"):
        build_pipeline({"kind": "lightgbm"})


def test_a_count_of_nothing_is_never_a_reason_for():
    """A silent account's groups were told "0 interactions with the product in 90 days" and
    "0% of the account's attention" as reasons *for* qualification (tree contributions)."""
    groups = pd.DataFrame(
        {
            "topic_events_90d": [0, 4],
            "topic_share_90d": [0.0, 0.5],
            "days_since_topic_event": [0, 0],
        }
    )
    contributions = pd.DataFrame(
        {
            "topic_events_90d": [0.3, 0.3],
            "topic_share_90d": [0.2, 0.2],
            "days_since_topic_event": [0.1, 0.1],
        }
    )
    got = reasons(groups, contributions)
    assert got["reasons_for"].iloc[0] == ["last product interaction 0 days ago"]
    assert got["reasons_for"].iloc[1] == [
        "4 interactions with the product in 90 days",
        "50% of the account's attention on this product",
        "last product interaction 0 days ago",
    ]
