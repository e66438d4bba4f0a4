"""LCB's test bed: the bonus by hand, the policies on hand-made data, exact values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offrl import tabular


def test_bonus_against_a_hand_computation():
    counts = np.array([[4.0, 0.0], [1.0, 9.0]])
    got = tabular.bonus(counts, num_samples=14, delta=0.1, scale=0.5)
    log_term = math.log(2 * 4 * 14 / 0.1)
    assert got[0, 0] == pytest.approx(0.5 * math.sqrt(log_term / 8))
    assert got[1, 0] == pytest.approx(0.5 * math.sqrt(log_term / 2))
    assert got[1, 1] == pytest.approx(0.5 * math.sqrt(log_term / 18))
    assert got[0, 1] == np.inf


def test_lcb_resists_a_lucky_action_that_fools_greedy():
    """Context 0: the expert's action 0 tried 100 times with mean 0.8; action 1 tried
    once and paid 1. Greedy takes 1; LCB and BC keep 0. Context 1: action 2 tried
    60 times (mean 0.3), action 1 40 times (mean 0.7): BC copies the habit, LCB and
    greedy take the better-supported better action."""
    states = np.array([0] * 101 + [1] * 100)
    actions = np.array([0] * 100 + [1] + [2] * 60 + [1] * 40)
    rewards = np.concatenate(
        [np.r_[np.ones(80), np.zeros(20)], [1.0], np.r_[np.ones(18), np.zeros(42)]]
        + [np.r_[np.ones(28), np.zeros(12)]]
    )
    bandit = tabular.Bandit(np.array([[0.8, 0.5, 0.1], [0.1, 0.7, 0.3]]))
    chosen = bandit.policies(states, actions, rewards)
    assert chosen["greedy"].tolist() == [1, 1]
    assert chosen["bc"].tolist() == [0, 2]
    assert chosen["lcb"].tolist() == [0, 1]
    assert bandit.suboptimality(chosen["lcb"]) == 0.0
    assert bandit.suboptimality(chosen["greedy"]) == pytest.approx((0.3 + 0.0) / 2)
    assert bandit.suboptimality(chosen["bc"]) == pytest.approx((0.0 + 0.4) / 2)


def test_behavior_mixture_is_a_distribution_with_the_stated_mode():
    values = np.array([[0.1, 0.9, 0.5, 0.3], [0.4, 0.2, 0.8, 0.6]])
    for share in (0.0, 0.2, 0.5, 1.0):
        mu = tabular.mixture(values, share)
        np.testing.assert_allclose(mu.sum(axis=1), 1.0)
    # the median-value action (index A // 2 in sorted order) is the operator's habit
    mu = tabular.mixture(values, 0.2)
    assert mu.argmax(axis=1).tolist() == [2, 3]
    assert tabular.mixture(values, 0.5).argmax(axis=1).tolist() == [1, 2]


def test_mdp_evaluation_is_exact_and_the_optimal_policy_has_zero_gap():
    mdp = tabular.TabularMDP.random(6, 3, seed=0)
    policy = np.array([0, 1, 2, 0, 1, 2])
    value = mdp.evaluate(policy)
    rows = np.arange(6)
    backup = mdp.rewards[rows, policy] + mdp.gamma * mdp.transitions[rows, policy] @ value
    np.testing.assert_allclose(value, backup, atol=1e-10)
    assert mdp.suboptimality(mdp.optimal()) == pytest.approx(0.0, abs=1e-9)
    assert mdp.suboptimality(policy) >= 0.0
    d = mdp.occupancy(mdp.behavior(0.5))
    assert d.sum() == pytest.approx(1.0) and np.all(d >= 0)


def test_vi_lcb_recovers_the_optimal_policy_from_plenty_of_data():
    mdp = tabular.TabularMDP.random(8, 3, seed=1)
    data = mdp.sample(200_000, expert_share=0.5, seed=2)
    chosen = mdp.policies(*data, scale=0.3)
    assert mdp.suboptimality(chosen["vi_lcb"]) == pytest.approx(0.0, abs=1e-9)
    assert mdp.suboptimality(chosen["vi_greedy"]) == pytest.approx(0.0, abs=1e-9)


def test_suboptimality_curve_shape_and_direction():
    result = tabular.suboptimality_curve("bandit", [100, 10_000], [0.9], repetitions=5)
    curve = result["curves"]["0.9"]["policies"]
    assert set(curve) == {"lcb", "greedy", "bc"} and len(curve["lcb"]) == 2
    # near-expert data: LCB's gap shrinks with N and ends below greedy's
    assert curve["lcb"][1]["mean"] <= curve["lcb"][0]["mean"]
    assert curve["lcb"][1]["mean"] < curve["greedy"][1]["mean"]
