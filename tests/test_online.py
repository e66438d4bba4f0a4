"""Online SAC: it learns Pendulum, checkpoints and resumes deterministically."""

import jax
import numpy as np

from offrl.algos import sac
from offrl.run.online import OnlineConfig, ReplayBuffer, train_online
from offrl.run.train import load_run


def test_replay_buffer_ring_and_sampling():
    buffer = ReplayBuffer(4, 2, 1)
    for i in range(6):
        buffer.add(
            observations=[i, i],
            actions=[i],
            rewards=i,
            next_observations=[i, i],
            terminations=0.0,
            truncations=0.0,
        )
    assert buffer.size == 4 and buffer.position == 2
    assert sorted(buffer.arrays["rewards"].tolist()) == [2, 3, 4, 5]
    batch = buffer.sample(np.random.default_rng(0), 8)
    assert batch["observations"].shape == (8, 2)
    assert set(batch["rewards"].tolist()) <= {2, 3, 4, 5}


def test_sac_resume_is_deterministic(tmp_path):
    small = sac.Config(hidden_dims=(32, 32))
    config = OnlineConfig(
        env_id="Pendulum-v1",
        steps=600,
        start_steps=300,
        eval_every=600,
        eval_episodes=1,
        checkpoint_every=200,
        progress=False,
        batch_size=32,
    )
    train_online("sac", tmp_path / "whole", config, small)
    # A run killed after its first checkpoints, then resumed.
    train_online("sac", tmp_path / "part", config, small, stop_after=400)
    train_online("sac", tmp_path / "part", config, small, resume=True)
    whole, part = load_run(tmp_path / "whole"), load_run(tmp_path / "part")
    assert whole.step == part.step == 600
    for a, b in zip(
        jax.tree_util.tree_leaves(whole.states), jax.tree_util.tree_leaves(part.states), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sac_learns_pendulum(tmp_path):
    """SAC swings Pendulum up within 4k steps (random policy: about -1,200; measured
    while writing this test: -180 after 4k steps, -123 after 6k)."""
    config = OnlineConfig(
        env_id="Pendulum-v1",
        steps=4000,
        start_steps=1000,
        eval_every=4000,
        eval_episodes=5,
        checkpoint_every=4000,
        progress=False,
    )
    summary = train_online("sac", tmp_path / "sac", config)
    assert summary["evaluations"][-1]["return"] > -400, summary["evaluations"]
    # The saved policy evaluates through the same path as offline runs.
    from offrl.run.evaluation import load_policy

    policy, context = load_policy(tmp_path / "sac")
    assert context.env_id == "Pendulum-v1"
    actions = policy(np.zeros((1, 2, 3), np.float32), jax.random.PRNGKey(0))
    assert actions.shape == (1, 2, 1) and np.all(np.abs(actions) <= 2.0)


def test_load_run_of_online_run(tmp_path):
    config = OnlineConfig(
        env_id="Pendulum-v1",
        steps=400,
        start_steps=200,
        eval_every=400,
        eval_episodes=1,
        checkpoint_every=400,
        progress=False,
        batch_size=32,
    )
    train_online("sac", tmp_path / "sac", config, sac.Config(hidden_dims=(16, 16)))
    assert load_run(tmp_path / "sac").step == 400
