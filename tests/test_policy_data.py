"""Datasets from a trained run: policy rollouts, the replay buffer, the medium checkpoint."""

import numpy as np
import pytest
from conftest import train_tiny_sac

from offrl.data import validate
from offrl.suites import array_digest
from offrl.suites.policies import (
    collect_from_run,
    evaluation_curve,
    medium_checkpoint,
    replay_from_run,
)


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("behavior") / "sac"
    return train_tiny_sac(run, "Pendulum-v1", steps=1200, start_steps=400, interval=400)


def test_replay_is_the_buffer_in_order(sac_run):
    replay = validate(replay_from_run(sac_run, 800))
    assert replay.size == 800 and replay.num_episodes == 4
    assert replay.truncations.sum() == 4 and replay.terminations.sum() == 0
    assert np.all(np.abs(replay.actions) <= 2.0) and replay.actions.std() > 0.5
    replays = sorted((sac_run / "checkpoints").glob("replay_*.npz"))
    with np.load(max(replays, key=lambda p: int(p.stem.split("_")[1]))) as data:
        np.testing.assert_array_equal(replay.observations, data["online_observations"][0, :800])
        np.testing.assert_array_equal(replay.rewards, data["online_rewards"][0, :800])
    with pytest.raises(ValueError, match="fewer than"):
        replay_from_run(sac_run, 5000)


def test_policy_rollouts_are_deterministic(sac_run):
    first = validate(collect_from_run(sac_run, 500, seed=3))
    second = collect_from_run(sac_run, 500, seed=3)
    other = collect_from_run(sac_run, 500, seed=4)
    assert first.size == 500 and list(first.episode_lengths) == [200, 200, 100]
    assert array_digest(first) == array_digest(second) != array_digest(other)
    assert first.info.env_id == "Pendulum-v1"


def test_medium_checkpoint_selection(sac_run):
    """The first checkpoint at or after the first evaluation that reaches the threshold,
    checked against the rule worked out by hand for every threshold the curve offers."""
    from offrl.run import checkpoint

    curve = evaluation_curve(sac_run)
    assert [step for step, _ in curve] == [0, 400, 800, 1200]  # 0: the untrained policy
    saved = checkpoint.steps(sac_run / "checkpoints")
    assert saved == [400, 800, 1200]
    for _, value in curve:
        first_reaching = next(step for step, v in curve if v >= value)
        expected = next((s for s in saved if s >= first_reaching), None)
        if expected is None:
            with pytest.raises(ValueError):
                medium_checkpoint(
                    sac_run, expert_return=value, random_return=value - 1.0, fraction=1.0
                )
            continue
        chosen = medium_checkpoint(
            sac_run, expert_return=value, random_return=value - 1.0, fraction=1.0
        )
        assert chosen == expected, (value, curve, saved)
    with pytest.raises(ValueError, match="no evaluation"):
        medium_checkpoint(sac_run, expert_return=1e6)
