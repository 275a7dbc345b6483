"""The promotion rule (``bg-promote``'s decision), without a registry."""

import pytest

from buying_groups.qualify.promotion import decide

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
