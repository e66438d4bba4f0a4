"""The dataset pytree: construction, sampling, splitting, normalization."""

import jax
import numpy as np
import pytest
from conftest import make_episodes

from offrl.data import DatasetInfo, from_episodes, sample, split_by_episode, to_episodes
from offrl.data.normalization import Normalizer, reward_scale


def test_from_episodes_aligns_next_observations(small_dataset):
    episodes = make_episodes()
    assert small_dataset.size == 15
    assert small_dataset.num_episodes == 3
    np.testing.assert_array_equal(small_dataset.episode_starts, [0, 5, 10])
    np.testing.assert_array_equal(
        small_dataset.next_observations[5:10], episodes[1]["observations"][1:]
    )
    np.testing.assert_array_equal(small_dataset.observations[5:10], episodes[1]["observations"][:5])
    assert small_dataset.truncations.sum() == 3 and small_dataset.terminations.sum() == 0


def test_to_episodes_round_trip(small_dataset):
    again = from_episodes(to_episodes(small_dataset), small_dataset.info)
    for name, value in small_dataset.step_fields().items():
        np.testing.assert_array_equal(getattr(again, name), value)


def test_episode_returns(small_dataset):
    expected = [small_dataset.rewards[i : i + 5].astype(np.float64).sum() for i in (0, 5, 10)]
    np.testing.assert_allclose(small_dataset.episode_returns(), expected, rtol=1e-6)


def test_sample_is_pure_and_jittable(small_dataset):
    device = small_dataset.to_device()
    key = jax.random.PRNGKey(3)
    batch = jax.jit(sample, static_argnums=2)(device, key, 8)
    again = sample(device, key, 8)
    assert batch["observations"].shape == (8, 3) and batch["rewards"].shape == (8,)
    for name in batch:
        np.testing.assert_array_equal(batch[name], again[name])
    # Rows stay aligned: every sampled row exists in the dataset as a whole transition.
    for i in range(8):
        row = np.flatnonzero(
            (small_dataset.observations == np.asarray(batch["observations"][i])).all(axis=1)
        )[0]
        np.testing.assert_array_equal(small_dataset.actions[row], batch["actions"][i])


def test_split_by_episode_is_disjoint_and_complete():
    info = DatasetInfo(name="d")
    dataset = from_episodes(make_episodes(num_episodes=10), info)
    train, valid = split_by_episode(dataset, 0.2, seed=1)
    assert train.num_episodes == 8 and valid.num_episodes == 2
    assert train.size + valid.size == dataset.size
    train_rows = {tuple(r) for r in np.asarray(train.observations)}
    valid_rows = {tuple(r) for r in np.asarray(valid.observations)}
    assert not train_rows & valid_rows
    with pytest.raises(ValueError, match="at least 2"):
        split_by_episode(dataset.select_episodes([0]), 0.5)


def test_normalizer_matches_numpy():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4)).astype(np.float32)
    normalizer = Normalizer.fit(x)
    np.testing.assert_allclose(normalizer.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(normalizer.std, x.std(0) + 1e-3, rtol=1e-5)
    np.testing.assert_allclose(normalizer(x).mean(0), 0.0, atol=1e-4)


def test_reward_scalings(small_dataset):
    returns = small_dataset.episode_returns()
    scale, shift = reward_scale(small_dataset, "locomotion")
    assert shift == 0.0
    np.testing.assert_allclose(scale, 1000.0 / (returns.max() - returns.min()), rtol=1e-9)
    assert reward_scale(small_dataset, "antmaze") == (1.0, -1.0)
    scale, shift = reward_scale(small_dataset, "standardize")
    scaled = small_dataset.rewards * scale + shift
    np.testing.assert_allclose([scaled.mean(), scaled.std()], [0.0, 1.0], atol=1e-5)
    with pytest.raises(ValueError, match="unknown reward scaling"):
        reward_scale(small_dataset, "bogus")


def test_auto_reward_scaling_follows_the_task():
    """IQL's locomotion scaling applies to locomotion datasets only (paper, CORL)."""
    from offrl.algos import cql, iql
    from offrl.core.trainer import resolve_reward_scaling

    for env_id in (
        "Hopper-v5",
        "HalfCheetah-v5",
        "Walker2d-v4",
        "Hopper-v5@gravity=2",
        "hopper-medium-v2",
        "mujoco/halfcheetah/medium-v0",
    ):
        assert resolve_reward_scaling(iql, "auto", env_id) == "locomotion"
    for env_id in ("PointMaze_UMaze-v3", "antmaze-umaze-v2", "Pendulum-v1", None, "MyRobot-v0"):
        assert resolve_reward_scaling(iql, "auto", env_id) == "none"
    # an explicit choice is kept, and other algorithms' defaults are unchanged
    assert resolve_reward_scaling(iql, "locomotion", "PointMaze_UMaze-v3") == "locomotion"
    assert resolve_reward_scaling(iql, "none", "Hopper-v5") == "none"
    assert resolve_reward_scaling(cql, "auto", "Hopper-v5") == "none"
