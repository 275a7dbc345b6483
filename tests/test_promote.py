"""Promotion: the rule (``bg-promote``'s decision) without a registry, then bg-train-qualifier
and bg-promote on the store of the session's tiny role model."""

import mlflow
import pytest

from buying_groups.qualify.promotion import decide

from .conftest import logged_model_uri, run_cli

SIX, THREE = 6 * 64, 3 * 64  # role-model cost: encoder layers x input tokens


@pytest.mark.parametrize(
    ("candidate", "champion", "cost", "promoted", "why"),
    [
        (0.30, None, (SIX, None), True, "no champion yet"),
        (0.231, 0.230, (SIX, THREE), True, "better PR-AUC"),  # better, even if dearer
        (0.2257, 0.2258, (THREE, SIX), True, "cheaper role model"),  # a tie, cheaper
        (0.2257, 0.2258, (SIX, SIX), False, "not promoted"),  # a tie, no cheaper
        (0.2257, 0.2258, (SIX, THREE), False, "not promoted"),  # a tie, dearer
        (0.210, 0.2258, (THREE, SIX), False, "not promoted"),  # cheaper but clearly worse
    ],
)
def test_a_candidate_wins_on_pr_auc_or_on_cost_when_tied(candidate, champion, cost, promoted, why):
    champ = None if champion is None else {"pr_auc": champion}
    cost = {"candidate": cost[0], "champion": cost[1]}
    decision = decide({"pr_auc": candidate}, champ, cost, tie_tolerance=0.005)
    assert decision[0] is promoted and why in decision[1]


def test_force_and_a_broken_champion_override_the_rule():
    cost = {"candidate": SIX, "champion": SIX}
    worse, champ = {"pr_auc": 0.1}, {"pr_auc": 0.3}
    assert decide(worse, champ, cost, 0.005, force=True) == (True, "promoted (forced)")
    assert decide(worse, None, cost, 0.005, broken=True)[1].endswith("cannot score a request)")


def _scores(pr_auc: float, precision: float, role: float) -> dict[str, float]:
    heads = {"ood_function_macro_f1": 0.91, "ood_seniority_macro_f1": 0.84}
    return {"pr_auc": pr_auc, "precision_at_capacity": precision, "ood_role_macro_f1": role} | heads


@pytest.mark.parametrize(
    ("candidate", "cost", "tolerance", "promoted", "why"),
    [
        # Cheaper, as accurate on every OOD head and as precise where sales looks: promoted
        # although its PR-AUC is lower (and the decision says by how much).
        (_scores(0.227, 0.340, 0.835), (THREE, SIX), 0.005, True, "PR-AUC 0.2270 vs 0.2510"),
        (_scores(0.227, 0.340, 0.810), (THREE, SIX), 0.005, True, "OOD macro-F1 within"),
        (_scores(0.227, 0.340, 0.804), (THREE, SIX), 0.005, False, "not promoted"),  # role
        (_scores(0.227, 0.330, 0.835), (THREE, SIX), 0.005, False, "not promoted"),  # precision
        (_scores(0.227, 0.340, 0.835), (SIX, SIX), 0.005, False, "not promoted"),  # not cheaper
        (_scores(0.227, 0.340, 0.835), (THREE, SIX), None, False, "not promoted"),  # rule off
    ],
)
def test_a_cheaper_candidate_as_accurate_on_roles_and_as_precise_wins(
    candidate, cost, tolerance, promoted, why
):
    champion = _scores(0.251, 0.340, 0.814)
    cost = {"candidate": cost[0], "champion": cost[1]}
    decision = decide(candidate, champion, cost, 0.005, role_tolerance=tolerance)
    assert decision[0] is promoted and why in decision[1], decision


@pytest.mark.slow
def test_qualifier_after_roles_uses_and_links_the_role_model(trained, tiny_dir):
    """bg-train-qualifier with no role arguments finds the newest role model and links it."""
    tmp, uri, _ = trained
    run_cli(
        "train_qualifier",
        tmp,
        "data=tiny",
        f"data_dir={tiny_dir}",
        f"tracking.uri={uri}",
        f"hydra.run.dir={tmp / 'qualifier'}",
    )
    mlflow.set_tracking_uri(uri)
    roles_run = mlflow.search_runs(
        experiment_names=["buying-groups-roles"], filter_string="tags.`bg.model` = 'transformer'"
    ).iloc[0]
    q = mlflow.search_runs(experiment_names=["buying-groups-qualifier"]).iloc[0]
    assert q["tags.bg.role_source"] == "model"
    assert q["tags.bg.role_model_run_id"] == roles_run["run_id"]
    assert q["tags.bg.role_model_uri"] == logged_model_uri(uri)


@pytest.mark.slow
def test_promote_registers_both_models_with_champion_aliases(promoted):
    tmp, uri, common, proc = promoted
    client = mlflow.MlflowClient(uri)
    v = client.get_model_version_by_alias("buying-groups", "champion")
    roles = client.get_model_version_by_alias("buying-group-roles", "champion")
    assert v.tags["decision"].startswith("promoted") and "candidate" in v.description
    assert float(v.tags["candidate_pr_auc"]) > 0
    assert roles.source and "@champion" in proc.stdout
    # The same candidate again is not better than the champion: registered, not promoted.
    again = run_cli("promote", tmp, *common, f"hydra.run.dir={tmp / 'promote2'}")
    assert "not promoted" in again.stdout
    assert client.get_model_version_by_alias("buying-groups", "champion").version == v.version
    forced = run_cli("promote", tmp, *common, "force=true", f"hydra.run.dir={tmp / 'promote3'}")
    assert "promoted (forced)" in forced.stdout
    assert client.get_model_version_by_alias("buying-groups", "champion").version != v.version


@pytest.mark.slow
def test_promote_refuses_a_worse_candidate_and_moves_for_a_better_one(promoted):
    tmp, uri, common, _ = promoted
    client = mlflow.MlflowClient(uri)
    # A qualifier that cannot split (every leaf would need more groups than exist): one
    # score for every group, so its PR-AUC is the base rate.
    weak = ["qualifier.params.max_iter=1", "qualifier.params.min_samples_leaf=100000000"]
    run_cli("train_qualifier", tmp, *common, *weak, f"hydra.run.dir={tmp / 'weak'}")
    experiment = client.get_experiment_by_name("buying-groups-qualifier")
    weak_run = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`bg.kind` = 'qualifier'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    strong = client.get_model_version_by_alias("buying-groups", "champion")
    worse = run_cli(
        "promote", tmp, *common, f"run_id={weak_run.info.run_id}", f"hydra.run.dir={tmp / 'p4'}"
    )
    assert "not promoted" in worse.stdout
    assert client.get_model_version_by_alias("buying-groups", "champion").version == strong.version
    run_cli(
        "promote",
        tmp,
        *common,
        f"run_id={weak_run.info.run_id}",
        "force=true",
        f"hydra.run.dir={tmp / 'p5'}",
    )
    weak_champion = client.get_model_version_by_alias("buying-groups", "champion")
    assert weak_champion.tags["qualifier_run_id"] == weak_run.info.run_id
    better = run_cli("promote", tmp, *common, f"hydra.run.dir={tmp / 'p6'}")  # the best run
    champion = client.get_model_version_by_alias("buying-groups", "champion")
    assert champion.version != weak_champion.version and "better PR-AUC" in better.stdout
    assert float(champion.tags["candidate_pr_auc"]) > float(weak_champion.tags["candidate_pr_auc"])
