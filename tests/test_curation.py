"""Data curation: named subsets (filter keys), per-sample weights, quality scores."""

from __future__ import annotations

import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_episodes

from offrl.data import DatasetError, DatasetInfo, from_episodes, load_dataset, validate
from offrl.data.formats import read_minari, write_minari
from offrl.data.subsets import write_subsets
from offrl.data.weights import read_weights, write_weights


def _robomimic_file(path, lengths=(6, 1, 4, 5)):
    """Demos demo_0.. with next_obs; demo_1 has one step and no next_obs, so it holds no
    transition and the reader skips it."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i, length in enumerate(lengths):
            demo = f.create_group(f"data/demo_{i}")
            observations = rng.normal(size=(length, 3)).astype(np.float32)
            demo["obs/x"] = observations
            if length > 1:
                demo["next_obs/x"] = np.roll(observations, -1, axis=0)
            demo["actions"] = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
            demo["rewards"] = np.full(length, float(i), np.float32)
            demo["dones"] = np.zeros(length, np.int64)
        f["mask/better"] = np.asarray([b"demo_2", b"demo_1"])  # demo_1 has no transition
        f["mask/worse"] = np.asarray([b"demo_0"])


def test_robomimic_filter_keys_are_read_written_and_selected(tmp_path):
    path = tmp_path / "r.hdf5"
    _robomimic_file(path)
    dataset = load_dataset(path)
    assert dataset.num_episodes == 3  # demo_0, demo_2, demo_3
    assert dict(dataset.info.subsets) == {"better": (1,), "worse": (0,)}
    better = load_dataset(path, filter_key="better")
    np.testing.assert_array_equal(better.rewards, np.full(4, 2.0))
    assert better.info.filter_key == "better"

    write_subsets(dataset, {"top": [2, 0]})
    # robomimic's own layout: demo names, readable by robomimic's get_demos_for_filter_key
    with h5py.File(path, "r") as f:
        assert sorted(v.decode() for v in f["mask/top"][()]) == ["demo_0", "demo_3"]
        assert [v.decode() for v in f["mask/worse"][()]] == ["demo_0"]
        assert "data/demo_3/actions" in f
    again = load_dataset(path)
    assert dict(again.info.subsets)["top"] == (0, 2)
    np.testing.assert_array_equal(again.observations, dataset.observations)
    np.testing.assert_array_equal(
        load_dataset(path, filter_key="top").rewards, np.r_[np.zeros(6), np.full(5, 3.0)]
    )
    with pytest.raises(DatasetError, match="no subset 'nope'.*better, top, worse"):
        load_dataset(path, filter_key="nope")
    with pytest.raises(DatasetError, match="whole dataset"):
        write_subsets(better, {"x": [0]})
    with pytest.raises(DatasetError, match="names episode 7"):
        write_subsets(dataset, {"x": [7]})


def test_d4rl_masks_and_minari_side_file_round_trip(tmp_path):
    info = DatasetInfo(name="small", action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    source = validate(from_episodes(make_episodes(num_episodes=4), info))
    path = tmp_path / "d.hdf5"
    with h5py.File(path, "w") as f:
        for name in ("observations", "next_observations", "actions", "rewards"):
            f[name] = np.asarray(getattr(source, name))
        f["terminals"] = np.asarray(source.terminations)
        f["timeouts"] = np.asarray(source.truncations)
    dataset = write_subsets(load_dataset(path), {"odd": [3, 1]})
    assert dict(load_dataset(path).info.subsets) == {"odd": (1, 3)}
    odd = load_dataset(path, filter_key="odd")
    np.testing.assert_array_equal(odd.observations, source.select_episodes([1, 3]).observations)

    # Minari: conversion carries the subsets, a new one is written beside metadata.json
    root = write_minari(dataset, tmp_path / "m")
    converted = read_minari(root)
    assert dict(converted.info.subsets) == {"odd": (1, 3)}
    write_subsets(converted, {"first": [0]})
    assert json.loads((root / "data" / "offrl_subsets.json").read_text())["subsets"] == {
        "first": [0],
        "odd": [1, 3],
    }
    assert dict(load_dataset(root).info.subsets) == {"first": (0,), "odd": (1, 3)}
    # Selections renumber their subsets; concatenation joins them.
    both = converted.select_episodes([3, 0])
    assert dict(both.info.subsets) == {"odd": (0,)}
    # A side file written for other data is refused with the fix.
    side = root / "data" / "offrl_subsets.json"
    side.write_text(json.dumps({"subsets": {"a": [0]}, "num_episodes": 9}))
    with pytest.raises(DatasetError, match="written for 9 episodes.*delete"):
        read_minari(root)


def test_subset_write_is_atomic_when_it_fails(tmp_path, monkeypatch):
    """An error while the new file is written leaves the dataset file as it was."""
    path = tmp_path / "r.hdf5"
    _robomimic_file(path)
    before = path.read_bytes()
    dataset = load_dataset(path)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)  # mid-write, after the copy
    with pytest.raises(OSError, match="disk full"):
        write_subsets(dataset, {"x": [0]})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.hdf5"]


# ------------------------------------------------------------------------- weights
def test_weights_change_the_bc_loss_as_numpy_does():
    """BC's and TD3+BC's regression terms take sum(w l) / sum(w): zero weights drop
    rows, and uniform weights give the plain mean."""
    from offrl.algos import bc, td3_bc
    from offrl.core.trainer import example_batch

    rng = np.random.default_rng(0)
    batch = {
        "observations": jnp.asarray(rng.normal(size=(8, 3)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, (8, 2)), jnp.float32),
    }
    weights = np.asarray([0, 1, 2, 0.5, 0, 3, 1, 1], np.float32)
    config = bc.Config(hidden_dims=(8,))
    state = bc.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
    predicted = np.asarray(state.actor.apply_fn(state.actor.params, batch["observations"]))
    per_row = ((predicted - np.asarray(batch["actions"])) ** 2).mean(axis=1)
    key = jax.random.PRNGKey(1)
    loss, _ = bc.mse_loss(state.actor.params, state, {**batch, "weights": weights}, config, key)
    np.testing.assert_allclose(loss, (weights * per_row).sum() / weights.sum(), rtol=1e-6)
    plain, _ = bc.mse_loss(state.actor.params, state, batch, config, key)
    uniform, _ = bc.mse_loss(
        state.actor.params, state, {**batch, "weights": np.full(8, 3.0, np.float32)}, config, key
    )
    np.testing.assert_allclose(plain, per_row.mean(), rtol=1e-6)
    np.testing.assert_allclose(uniform, plain, rtol=1e-6)

    gaussian = bc.Config(hidden_dims=(8,), policy="gaussian")
    gstate = bc.init(gaussian, example_batch(3, 2), jax.random.PRNGKey(0))
    mean, log_std = gstate.actor.apply_fn(gstate.actor.params, batch["observations"])
    from offrl.nn import tanh_gaussian_log_prob

    log_prob = np.asarray(tanh_gaussian_log_prob(mean, log_std, batch["actions"], eps=1e-5))
    nll, _ = bc.nll_loss(gstate.actor.params, gstate, {**batch, "weights": weights}, gaussian, key)
    np.testing.assert_allclose(nll, -(weights * log_prob).sum() / weights.sum(), rtol=1e-5)

    tconfig = td3_bc.Config(hidden_dims=(8,))
    tstate = td3_bc.init(tconfig, example_batch(3, 2), jax.random.PRNGKey(0))
    actions = np.asarray(tstate.actor.apply_fn(tstate.actor.params, batch["observations"]))
    _, metrics = td3_bc.actor_loss(
        tstate.actor.params, tstate, {**batch, "weights": weights}, tconfig
    )
    rows = ((actions - np.asarray(batch["actions"])) ** 2).mean(axis=1)
    np.testing.assert_allclose(
        metrics["actor/bc_mse"], (weights * rows).sum() / weights.sum(), rtol=1e-6
    )


def test_weights_files_are_checked_against_the_dataset(tmp_path, small_dataset):
    path = write_weights(tmp_path / "w", small_dataset, [1.0, 0.0, 2.0])  # per episode
    weighted = read_weights(path, small_dataset)
    np.testing.assert_array_equal(weighted.weights, np.repeat([1.0, 0.0, 2.0], 5))
    other = small_dataset.replace(rewards=np.asarray(small_dataset.rewards) + 1)
    with pytest.raises(DatasetError, match="computed for other data"):
        read_weights(path, other)
    np.save(tmp_path / "bad.npy", np.ones(7))
    with pytest.raises(DatasetError, match="holds 7 weights; the dataset has 15 steps"):
        read_weights(tmp_path / "bad.npy", small_dataset)
    np.save(tmp_path / "neg.npy", -np.ones(15))
    with pytest.raises(DatasetError, match="row 0.*negative"):
        read_weights(tmp_path / "neg.npy", small_dataset)
    with pytest.raises(DatasetError, match="every weight is 0"):
        write_weights(tmp_path / "zero", small_dataset, np.zeros(3))


def test_train_with_a_filter_key_weights_and_a_validation_key(tmp_path):
    """--filter-key trains on the subset, --validation-key holds its episodes out,
    --weights reaches the batches; a weights file for an algorithm without a data
    regression term is refused before anything is written."""
    from offrl.algos import bc
    from offrl.run.settings import RunError, TrainConfig
    from offrl.run.train import train, training_data

    source = load_dataset("suite:pendulum-expert").select_episodes(range(6))
    root = write_minari(source, tmp_path / "data")
    dataset = write_subsets(read_minari(root), {"train": [0, 1, 2, 3], "valid": [4, 5]})
    weights = write_weights(tmp_path / "w.npz", dataset, [1, 1, 0, 0, 1, 1])
    config = TrainConfig(
        steps=20,
        steps_per_call=10,
        eval_every=0,
        eval_episodes=1,
        heldout_episodes=0,
        filter_key="train",
        validation_key="valid",
        weights=str(weights),
        progress=False,
    )
    train_part, valid_part = training_data(dataset, config)
    assert train_part.num_episodes == 4 and valid_part.num_episodes == 2
    np.testing.assert_array_equal(np.unique(train_part.weights), [0.0, 1.0])
    summary = train("bc", str(root), tmp_path / "run", bc.Config(hidden_dims=(8,)), config)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train_config"]["filter_key"] == "train" and "training_data_sha256" in saved
    assert summary["steps"] == 20
    with pytest.raises(RunError, match="shares 4 episode"):
        training_data(dataset, TrainConfig(filter_key="train", validation_key="train"))
    with pytest.raises(RunError, match="cql takes no per-sample weights.*bc"):
        train("cql", str(root), tmp_path / "cql", train_config=config)
    assert not (tmp_path / "cql").exists()
