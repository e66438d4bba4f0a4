"""Continual offline RL (OER's setting): MBES keeps the transitions the learned policy
would reproduce, and a sequence runs through its learners, clones and buffer."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import linear_system

from offrl.continual import (
    ContinualConfig,
    replay_rows,
    run_sequence,
    select_replay,
)
from offrl.model.ensemble import ModelSpec
from offrl.run.settings import RunError


def linear_task(goal: float, episodes=40, seed=0, on_policy=0.5):
    """The 1-D known system; half its episodes act ``a = -s`` (the scored policy)."""
    return linear_system(dim=1, episodes=episodes, seed=seed, goal=goal, on_policy=on_policy)


def test_mbes_keeps_the_transitions_the_policy_would_reproduce():
    data = linear_task(0.0, episodes=60)
    policy = np.clip(-np.asarray(data.observations), -1, 1)  # pi(s) = -s
    spec = ModelSpec(num_models=3, num_elites=2, hidden_dims=(32, 32),
                     weight_decays=(0.0, 0.0, 0.0), learning_rate=1e-2, max_epochs=40)  # fmt: skip
    on_policy = np.arange(data.size) < 30 * 20  # the first 30 episodes act a = -s
    # The buffer keeps the lowest scores: the policy's own steps; random replay does not.
    config = ContinualConfig(replay="mbes", replay_size=int(on_policy.sum()), model=spec)
    chosen, info = select_replay(data, policy, config, seed=0)
    obs = np.asarray(data.observations)[:, 0]
    kept_on_policy = np.isin(np.asarray(chosen.observations)[:, 0], obs[on_policy])
    assert kept_on_policy.mean() > 0.95
    assert info["score_kept_mean"] < 0.2 * info["score_all_mean"]
    config = dataclasses.replace(config, replay="random")
    chosen, _ = select_replay(data, None, config, seed=0)
    assert np.isin(np.asarray(chosen.observations)[:, 0], obs[on_policy]).mean() < 0.7
    # Kept rows form a dataset of one-step episodes, each ending as it did.
    rows = np.array([700, 5, 19, 300])
    buffer = replay_rows(data, rows)
    assert buffer.num_episodes == 4 and buffer.size == 4
    assert np.all(np.asarray(buffer.truncations)) and not np.any(np.asarray(buffer.terminations))
    np.testing.assert_array_equal(buffer.observations, np.asarray(data.observations)[np.sort(rows)])


def test_a_sequence_runs_its_learners_clones_and_buffer(tmp_path):
    from offrl.algos import td3_bc

    tasks = [linear_task(-1.0, episodes=10, seed=1), linear_task(1.0, episodes=10, seed=2)]
    calls = []

    def evaluator(run_dir, task):
        calls.append((run_dir.parent.name, run_dir.name, task))
        return float(task)  # what is scored is the protocol's business; here the calls

    config = ContinualConfig(
        algo_config=td3_bc.Config(hidden_dims=(16, 16)),
        replay="random",
        replay_size=30,
        steps=20,
        clone_steps=20,
        clone_hidden_dims=(16, 16),
        batch_size=32,
    )
    result = run_sequence(tasks, tmp_path / "seq", config, evaluator)
    # after task 0: task 0; after task 1: tasks 0 and 1; always the clone (dual BC)
    assert calls == [("task-0", "clone", 0), ("task-1", "clone", 0), ("task-1", "clone", 1)]
    run = result["per_seed"][0]
    assert run["scores"] == [[0.0], [0.0, 1.0]] and run["final_average"] == 0.5
    assert [s["kept"] for s in run["replay"]] == [30, 30]
    # Task 1's learner and clone continue from task 0's, with task 0's scaling.
    seq = tmp_path / "seq" / "seed-0"
    for part in ("learner", "clone"):
        saved = json.loads((seq / "task-1" / part / "config.json").read_text())
        assert saved["train_config"]["init_from"] == str(seq / "task-0" / part)
    # The clone of task 1 learned from task 1's 200 steps plus the buffer's 30.
    from offrl.run.rundir import load_run

    first = load_run(seq / "task-0" / "learner").preprocessor
    second = load_run(seq / "task-1" / "learner").preprocessor
    np.testing.assert_array_equal(first.observation_mean, second.observation_mean)
    assert (tmp_path / "seq" / "continual.json").exists()

    # A run that cannot continue another is refused before anything is written.
    from offrl.run.train import TrainConfig, train

    with pytest.raises(RunError, match="its networks differ from this run's"):
        train("td3_bc", tasks[1], tmp_path / "other", td3_bc.Config(hidden_dims=(8, 8)),
              TrainConfig(steps=5, init_from=str(seq / "task-0" / "learner")))  # fmt: skip
    with pytest.raises(RunError, match="it trained td3_bc, not bc"):
        train("bc", tasks[1], tmp_path / "other", None,
              TrainConfig(steps=5, init_from=str(seq / "task-0" / "learner")))  # fmt: skip
    assert not (tmp_path / "other").exists()
    with pytest.raises(RunError, match="replay must be one of"):
        run_sequence(tasks, tmp_path / "bad", ContinualConfig(replay="all"), evaluator)
