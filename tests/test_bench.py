"""Statistics against hand-computed values; offrl bench on a tiny grid."""

import csv

import numpy as np
import pytest
from scipy import stats

from offrl.evaluate.statistics import iqm, stratified_bootstrap_ci, summarize_scores


def test_iqm_hand_computed():
    # 8 values: cut 2 from each end, mean of the middle four.
    assert iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx((3 + 4 + 5 + 6) / 4)
    values = np.random.default_rng(0).normal(size=37)
    assert iqm(values) == pytest.approx(stats.trim_mean(values, 0.25))
    with pytest.raises(ValueError):
        iqm([])


def test_bootstrap_interval_brackets_and_degenerates():
    constant = np.full((5, 3), 7.0)
    assert stratified_bootstrap_ci(constant, reps=200) == (7.0, 7.0)
    scores = np.random.default_rng(1).normal(50, 10, size=(10, 4))
    low, high = stratified_bootstrap_ci(scores, reps=500)
    assert low < iqm(scores) < high
    # Same seed, same interval.
    assert stratified_bootstrap_ci(scores, reps=500) == (low, high)
    summary = summarize_scores(scores, reps=200)
    assert summary["runs"] == 10 and summary["tasks"] == 4
    assert summary["mean"] == pytest.approx(scores.mean())


def test_normalized_score_function():
    from offrl.envs import get_task, normalized_score

    task = get_task("Pendulum-v1")
    assert normalized_score(task.random_return, task) == pytest.approx(0.0)
    assert normalized_score(task.expert_return, "pendulum") == pytest.approx(100.0)
    np.testing.assert_allclose(
        normalized_score([task.random_return, (task.random_return + task.expert_return) / 2], task),
        [0.0, 50.0],
    )
    assert normalized_score(1.0, "Unknown-v0") is None


def test_bench_on_a_tiny_grid(tmp_path):
    from offrl.bench import BenchConfig, run_bench

    config = BenchConfig(
        algorithms=("bc", "iql"),
        datasets=("suite:pendulum-expert",),
        seeds=(0, 1),
        steps=200,
        eval_every=100,
        eval_episodes=2,
        checkpoint_every=200,
        heldout_episodes=10,
        output=str(tmp_path / "bench"),
    )
    result = run_bench(config)
    text = (tmp_path / "bench" / "results.md").read_text()
    assert "| suite:pendulum-expert | bc |" in text and "| iql |" in text
    with open(tmp_path / "bench" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["algorithm"] for r in rows] == ["bc", "iql"]
    assert all(r["seeds"] == "2" and r["steps"] == "200" for r in rows)
    for row in rows:
        assert float(row["best_mean"]) >= float(row["final_mean"]) - 1e-9
        assert float(row["updates_per_second_per_seed"]) > 0
    agg = result["aggregates"]["bc"]["final"]
    assert agg["iqm_ci_low"] <= agg["iqm"] <= agg["iqm_ci_high"]
    # The performance profile: a fraction of runs, falling as the threshold rises.
    profile = {k: np.asarray(v) for k, v in result["aggregates"]["bc"]["final_profile"].items()}
    assert np.all(np.diff(profile["fraction"]) <= 1e-12)
    assert np.all(
        (profile["low"] <= profile["fraction"]) & (profile["fraction"] <= profile["high"])
    )
    assert "Performance profile" in text
    assert (tmp_path / "bench" / "profiles.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second call reuses the finished cells.
    again = run_bench(config)
    assert again["rows"] == result["rows"]
