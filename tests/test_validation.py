"""Malformed datasets: each raises DatasetError naming the field (and row, episode)."""

import dataclasses
import json

import gymnasium as gym
import h5py
import numpy as np
import pytest
from conftest import make_episodes

from offrl.data import DatasetError, DatasetInfo, from_episodes, validate
from offrl.data.formats import read_d4rl_hdf5, read_minari, read_robomimic_hdf5, write_minari

INFO = DatasetInfo(name="bad", action_low=(-1.0, -1.0), action_high=(1.0, 1.0))


def build(mutate=None, **kwargs):
    episodes = make_episodes(**kwargs)
    if mutate:
        mutate(episodes)
    return from_episodes(episodes, INFO)


def expect(dataset, field, index=None, episode=None, **kwargs):
    with pytest.raises(DatasetError) as info:
        validate(dataset, **kwargs)
    error = info.value
    assert error.field == field, str(error)
    assert f"field '{field}'" in str(error)
    assert "Fix:" in str(error)
    if index is not None:
        assert error.index == index and f"row {index}" in str(error)
    if episode is not None:
        assert error.episode == episode and f"episode {episode}" in str(error)
    return error


def test_nan_observation_names_row_and_episode():
    def mutate(eps):
        eps[1]["observations"][2, 1] = np.nan

    expect(build(mutate), "observations", index=7, episode=1)


def test_inf_reward():
    def mutate(eps):
        eps[2]["rewards"][4] = np.inf

    expect(build(mutate), "rewards", index=14, episode=2)


def test_misaligned_lengths():
    dataset = build()
    expect(dataclasses.replace(dataset, actions=dataset.actions[:-1]), "actions")


def test_non_numeric_dtype():
    dataset = build()
    expect(dataclasses.replace(dataset, actions=dataset.actions.astype(str)), "actions")


def test_observation_shape_against_space():
    space = gym.spaces.Box(-np.inf, np.inf, (4,))
    expect(build(), "observations", observation_space=space)


def test_action_shape_against_space():
    space = gym.spaces.Box(-1, 1, (3,))
    expect(build(), "actions", action_space=space)


def test_action_out_of_bounds():
    def mutate(eps):
        eps[0]["actions"][3, 1] = 1.5

    error = expect(build(mutate), "actions", index=3, episode=0)
    assert "outside the bounds" in str(error)


def test_episode_not_closed():
    def mutate(eps):
        eps[1]["truncations"][-1] = False

    expect(build(mutate), "terminations", index=9, episode=1)


def test_termination_inside_episode():
    def mutate(eps):
        eps[2]["terminations"][1] = True

    expect(build(mutate), "terminations", index=11, episode=2)


def test_flags_not_binary():
    dataset = build()
    flags = dataset.truncations.astype(np.int64)
    flags[4] = 2
    expect(dataclasses.replace(dataset, truncations=flags), "truncations", index=4)


def test_empty_dataset():
    dataset = build()
    empty = dataclasses.replace(dataset, **{k: v[:0] for k, v in dataset.step_fields().items()})
    expect(empty, "observations")


def test_next_observation_discontinuity():
    dataset = build()
    next_obs = dataset.next_observations.copy()
    next_obs[6] += 1.0
    expect(
        dataclasses.replace(dataset, next_observations=next_obs),
        "next_observations",
        index=6,
        episode=1,
    )


def test_rewards_must_be_one_dimensional():
    dataset = build()
    expect(dataclasses.replace(dataset, rewards=dataset.rewards[:, None]), "rewards")


def test_missing_field():
    dataset = build()
    expect(dataclasses.replace(dataset, next_observations=None), "next_observations")


# ------------------------------------------------------------------ file-level errors
def _write_d4rl(path, n=20, drop=None, next_obs=True):
    rng = np.random.default_rng(0)
    obs = np.cumsum(rng.normal(size=(n + 1, 3)), axis=0).astype(np.float32)
    arrays = {
        "observations": obs[:-1],
        "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    arrays["terminals"][9] = True
    arrays["timeouts"][n - 1] = True
    if next_obs:
        nxt = obs[1:].copy()
        arrays["next_observations"] = nxt
        arrays["observations"][10] = rng.normal(size=3)  # new episode starts elsewhere
        arrays["observations"][11:] = nxt[10:-1]
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if k != drop:
                f[k] = v
    return arrays


def test_d4rl_missing_key(tmp_path):
    path = tmp_path / "d.hdf5"
    _write_d4rl(path, drop="timeouts")
    with pytest.raises(DatasetError) as info:
        read_d4rl_hdf5(path)
    assert info.value.field == "timeouts" and "present:" in str(info.value)


def test_truncated_hdf5_file(tmp_path):
    path = tmp_path / "d.hdf5"
    _write_d4rl(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError) as info:
        read_d4rl_hdf5(path)
    assert info.value.field in ("file", "observations", "actions", "rewards")
    assert "corrupt" in str(info.value)


def test_minari_without_metadata(tmp_path):
    with pytest.raises(DatasetError) as info:
        read_minari(tmp_path / "nothing-here")
    assert info.value.field == "metadata.json"


def test_minari_corrupt_episode_file(tmp_path, small_dataset):
    path = write_minari(small_dataset, tmp_path / "ds", dataset_id="ds")
    data_file = path / "data" / "main_data.hdf5"
    data_file.write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError) as info:
        read_minari(path)
    assert info.value.field == "data" and "corrupt" in str(info.value)


def test_minari_unreadable_metadata(tmp_path, small_dataset):
    path = write_minari(small_dataset, tmp_path / "ds", dataset_id="ds")
    (path / "data" / "metadata.json").write_text("{ not json")
    with pytest.raises(DatasetError) as info:
        read_minari(path)
    assert info.value.field == "metadata.json"


def test_robomimic_missing_observation_key(tmp_path):
    path = tmp_path / "r.hdf5"
    with h5py.File(path, "w") as f:
        demo = f.create_group("data/demo_0")
        demo["obs/joint"] = np.zeros((5, 3), np.float32)
        demo["actions"] = np.zeros((5, 2), np.float32)
        demo["rewards"] = np.zeros(5, np.float32)
        demo["dones"] = np.zeros(5, np.int64)
        f["data"].attrs["env_args"] = json.dumps({"env_name": "Lift"})
    with pytest.raises(DatasetError) as info:
        read_robomimic_hdf5(path, observation_keys=["joint", "gripper"])
    assert info.value.field == "obs/gripper"
