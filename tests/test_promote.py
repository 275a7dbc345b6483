"""The promotion rule (``bg-promote``'s decision), without a registry."""

import pytest

from buying_groups.cli.promote import decide

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
