"""Minari (HDF5 and Arrow), D4RL-style and robomimic-style files."""

import json

import gymnasium as gym
import h5py
import numpy as np
import pytest
from test_validation import _write_d4rl

from offrl.data import DatasetInfo, from_episodes, validate
from offrl.data.formats import read_d4rl_hdf5, read_minari, read_robomimic_hdf5, write_minari
from offrl.data.loading import load_dataset


def test_minari_data_collector_round_trip(tmp_path, monkeypatch):
    """A dataset written by minari's own DataCollector loads with identical arrays."""
    import minari
    from minari import DataCollector

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = DataCollector(gym.make("Pendulum-v1", max_episode_steps=30))
    recorded = []
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        steps = {"obs": [obs], "act": [], "rew": [], "term": [], "trunc": []}
        env.action_space.seed(episode)
        while True:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            for k, v in zip(steps, (obs, action, reward, terminated, truncated), strict=True):
                steps[k].append(v)
            if terminated or truncated:
                break
        recorded.append(steps)
    env.create_dataset(
        "pendulum/collected-v0",
        algorithm_name="random",
        author="offrl tests",
        author_email="tests@offrl.invalid",
        code_permalink="none",
        description="test",
    )
    ours = read_minari("pendulum/collected-v0")
    theirs = minari.load_dataset("pendulum/collected-v0")
    assert ours.num_episodes == 3 and ours.size == 90
    assert ours.info.env_id == "Pendulum-v1"
    for i, episode in enumerate(theirs.iterate_episodes()):
        rows = slice(int(ours.episode_starts[i]), int(ours.episode_starts[i] + 30))
        np.testing.assert_array_equal(ours.observations[rows], episode.observations[:-1])
        np.testing.assert_array_equal(ours.next_observations[rows], episode.observations[1:])
        np.testing.assert_array_equal(ours.actions[rows], episode.actions)
        np.testing.assert_array_equal(ours.rewards[rows], episode.rewards.astype(np.float32))
        np.testing.assert_array_equal(ours.truncations[rows], episode.truncations)
        np.testing.assert_array_equal(ours.terminations[rows], episode.terminations)
        np.testing.assert_array_equal(ours.actions[rows], np.asarray(recorded[i]["act"]))


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])
def test_write_read_minari_both_back_ends(tmp_path, small_dataset, data_format):
    with_costs = small_dataset.replace(costs=np.arange(small_dataset.size, dtype=np.float32))
    path = write_minari(with_costs, tmp_path / "ds", dataset_id="ds", data_format=data_format)
    again = read_minari(path)
    for name, value in with_costs.step_fields().items():
        np.testing.assert_array_equal(getattr(again, name), value, err_msg=name)
    np.testing.assert_array_equal(again.episode_starts, small_dataset.episode_starts)
    # And minari itself reads what we wrote.
    import minari

    theirs = minari.MinariDataset(path / "data")
    assert theirs.total_episodes == 3 and theirs.total_steps == 15


def test_write_minari_never_clobbers(tmp_path, small_dataset):
    path = write_minari(small_dataset, tmp_path / "ds", dataset_id="ds")
    with pytest.raises(FileExistsError):
        write_minari(small_dataset, path)
    assert read_minari(path).size == small_dataset.size
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers


def test_d4rl_import_with_next_observations(tmp_path):
    path = tmp_path / "d.hdf5"
    arrays = _write_d4rl(path)
    dataset = read_d4rl_hdf5(path)
    assert dataset.num_episodes == 2 and dataset.size == 20
    assert dataset.terminations[9] and dataset.truncations[19]
    np.testing.assert_array_equal(dataset.actions, arrays["actions"])
    np.testing.assert_array_equal(dataset.next_observations, arrays["next_observations"])


def test_d4rl_import_without_next_observations_drops_timeout_rows(tmp_path):
    path = tmp_path / "d.hdf5"
    rng = np.random.default_rng(1)
    n = 12
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[5] = True
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        f["rewards"] = np.arange(n, dtype=np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = timeouts
    dataset = read_d4rl_hdf5(path)
    # Row 5 (timeout) and row 11 (no successor) are dropped; rows 4 and 10 end episodes.
    assert dataset.size == 10
    np.testing.assert_array_equal(dataset.rewards, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10])
    assert dataset.truncations[4] and dataset.truncations[9]
    np.testing.assert_array_equal(dataset.next_observations[3], obs[4])


def test_d4rl_import_through_load_dataset_checks_env_space(tmp_path):
    path = tmp_path / "d.hdf5"
    _write_d4rl(path)
    from offrl.data import DatasetError

    with pytest.raises(DatasetError) as info:
        load_dataset(path, env_id="Pendulum-v1")  # Pendulum has 1-D actions
    assert info.value.field == "actions"


def test_robomimic_import_with_observation_keys(tmp_path):
    path = tmp_path / "r.hdf5"
    rng = np.random.default_rng(0)
    demos = []
    with h5py.File(path, "w") as f:
        for i, length in enumerate((6, 4)):
            demo = f.create_group(f"data/demo_{i}")
            joint = rng.normal(size=(length, 3)).astype(np.float32)
            grip = rng.normal(size=(length, 1)).astype(np.float32)
            demo["obs/joint"], demo["obs/gripper"] = joint, grip
            demo["next_obs/joint"] = np.roll(joint, -1, 0)
            demo["next_obs/gripper"] = np.roll(grip, -1, 0)
            demo["actions"] = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
            demo["rewards"] = np.zeros(length, np.float32)
            dones = np.zeros(length, np.int64)
            dones[-1] = i == 0
            demo["dones"] = dones
            demos.append((joint, grip))
        f["data"].attrs["env_args"] = json.dumps({"env_name": "Lift"})
    dataset = read_robomimic_hdf5(path, ["gripper", "joint"])
    assert dataset.info.env_id == "Lift" and dataset.observation_dim == 4
    np.testing.assert_array_equal(dataset.observations[:6, 0:1], demos[0][1])
    np.testing.assert_array_equal(dataset.observations[:6, 1:], demos[0][0])
    assert dataset.terminations[5] and dataset.truncations[9]


def test_load_dataset_unknown_spec():
    from offrl.data import DatasetError

    with pytest.raises(DatasetError, match="suite:NAME"):
        load_dataset("no/such/dataset-v0")


def test_suite_build_is_deterministic(tmp_path):
    from offrl.suites import pendulum

    first, second = pendulum.build("pendulum-mixed"), pendulum.build("pendulum-mixed")
    for name, value in first.step_fields().items():
        np.testing.assert_array_equal(getattr(second, name), value)
    validate(first)
    assert first.num_episodes == 100 and first.size == 20_000


def test_suite_dataset_loads_through_cache():
    dataset = load_dataset("suite:pendulum-expert")
    assert dataset.info.env_id == "Pendulum-v1" and dataset.size == 20_000
    expert_return = dataset.episode_returns().mean()
    assert -200 < expert_return < -100


def test_from_episodes_requires_optional_fields_everywhere():
    from conftest import make_episodes

    episodes = make_episodes()
    episodes[0]["costs"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="costs"):
        from_episodes(episodes, DatasetInfo())


def test_suite_dataset_card(tmp_path, monkeypatch, capsys):
    import json

    from offrl import suites
    from offrl.cli import main

    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path))
    path = suites.build_suite_dataset("pendulum-random")
    card = json.loads((path / "card.json").read_text())
    dataset = load_dataset("suite:pendulum-random")
    assert card["transitions"] == dataset.size == 20_000 and card["episodes"] == 100
    np.testing.assert_allclose(card["return"]["mean"], dataset.episode_returns().mean(), rtol=1e-6)
    assert card["array_sha256"] == suites.array_digest(dataset)
    assert card["recipe"] == [{"behavior": "random", "num_episodes": 100, "seed": 2}]
    assert set(card["versions"]) >= {"offrl", "gymnasium", "minari", "numpy"}
    assert card["command"] == "offrl suite build pendulum-random"
    # A forced rebuild gives identical arrays.
    suites.build_suite_dataset("pendulum-random", force=True)
    again = json.loads((path / "card.json").read_text())
    assert again["array_sha256"] == card["array_sha256"]
    main(["suite", "card", "pendulum-random"])
    assert "Dataset card: pendulum-random" in capsys.readouterr().out
