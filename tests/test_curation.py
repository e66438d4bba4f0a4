"""Data curation: named subsets (filter keys), per-sample weights, quality scores."""

from __future__ import annotations

import dataclasses
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
    from offrl.data import concatenate

    joined = concatenate([converted, both])
    assert dict(joined.info.subsets) == {"odd": (1, 3, 4)}
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


# ------------------------------------------------------------------ quality scores
def test_ksg_mutual_information_matches_the_gaussian_closed_form():
    """I(X; Y) = -d/2 log(1 - rho^2) for d independent pairs with correlation rho."""
    from offrl.curate.quality import kozachenko_leonenko_entropy, ksg_mutual_information

    rng = np.random.default_rng(0)
    for rho in (0.0, 0.6, 0.9):
        x = rng.normal(size=(1500, 2))
        y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(1500, 2))
        exact = -np.log(1 - rho**2)  # two pairs: 2 * (-1/2 log(1 - rho^2))
        assert abs(ksg_mutual_information(x, y, k=3) - exact) < 0.06, rho
    x = rng.normal(size=(3000, 3))
    assert abs(kozachenko_leonenko_entropy(x) - 1.5 * np.log(2 * np.pi * np.e)) < 0.05


def test_ksg_point_scores_count_strictly_inside_the_joint_radius():
    """By hand, k = 1, x = (0, 1, 2, 4), y = (0, 2, 1, 4): the joint (max-norm) radius of
    each point is 2, 1, 1, 3; strictly inside it lie, in x and in y alike, 2, 1, 1, 2
    points (the point itself included), so the scores are -(psi(n_x) + psi(n_y))."""
    from scipy.special import digamma

    from offrl.curate.quality import ksg_point_scores

    x = np.asarray([[0.0], [1.0], [2.0], [4.0]])
    y = np.asarray([[0.0], [2.0], [1.0], [4.0]])
    counts = np.asarray([2, 1, 1, 2])
    np.testing.assert_allclose(ksg_point_scores(x, y, (1,)), -2 * digamma(counts))


def _scripted_episodes():
    """Eight demonstrations of one smooth policy on a circle (state (cos q, sin q), action
    a = sin(3 q), q' = q + 0.15 + 0.1 a) from random starts, a duplicate of the first, and
    one whose actions are pure noise."""
    rng = np.random.default_rng(1)

    def rollout(noise: bool, angle: float):
        angles, actions = [angle], []
        for _ in range(40):
            a = rng.uniform(-1, 1) if noise else np.sin(3 * angles[-1])
            actions.append([a])
            angles.append(angles[-1] + 0.15 + 0.1 * a)
        angles = np.asarray(angles)
        observations = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
        return {
            "observations": observations,
            "actions": np.asarray(actions, np.float32),
            "rewards": np.asarray(actions, np.float32)[:, 0],
            "terminations": np.zeros(40, bool),
            "truncations": np.r_[np.zeros(39, bool), True],
        }

    starts = rng.uniform(0, 2 * np.pi, 9)
    episodes = [rollout(False, s) for s in starts[:8]]
    episodes.append({k: v.copy() for k, v in episodes[0].items()})  # 8: duplicate of 0
    episodes.append(rollout(True, starts[8]))  # 9: noise
    info = DatasetInfo(name="scripted", action_low=(-1.0,), action_high=(1.0,))
    return validate(from_episodes(episodes, info))


def test_quality_scores_single_out_noise_and_see_duplicates(tmp_path):
    from offrl.curate.quality import QualityConfig, assess, read_scores, write_scores

    dataset = _scripted_episodes()
    scores = assess(dataset, QualityConfig(batch_size=128, encoder="none"))
    episodes = {k: np.asarray(v) for k, v in scores["episodes"].items()}
    assert np.argmin(episodes["deminf"]) == 9  # noise: actions do not follow the states
    assert np.argmax(episodes["action_divergence"]) == 9
    # In one batch of all 400 steps, a duplicate and its original are each other's nearest
    # other-episode states (novelty 0) and, by symmetry, score the same.
    whole = assess(dataset, QualityConfig(batch_size=512, repeats=1, encoder="none"))
    twins = {k: np.asarray(v)[[0, 8]] for k, v in whole["episodes"].items()}
    np.testing.assert_allclose(twins["novelty"], [0.0, 0.0], atol=1e-6)
    assert np.all(np.delete(np.asarray(whole["episodes"]["novelty"]), [0, 8]) > 1e-3)
    np.testing.assert_allclose(twins["deminf"][0], twins["deminf"][1], rtol=1e-9)
    # novelty: the mean over an episode's steps of the distance to the nearest step of
    # *another* episode (standardized states), as NumPy computes it
    states = np.asarray(dataset.observations, np.float64)
    states = (states - states.mean(0)) / states.std(0)
    episode_of = np.repeat(np.arange(10), 40)
    distances = np.linalg.norm(states[:, None] - states[None], axis=-1)
    distances[episode_of[:, None] == episode_of[None, :]] = np.inf
    expected = [distances.min(1)[episode_of == e].mean() for e in range(10)]
    np.testing.assert_allclose(whole["episodes"]["novelty"], expected, rtol=1e-5, atol=1e-6)
    clean = assess(dataset.select_episodes(range(9)), QualityConfig(batch_size=128, encoder="none"))
    assert (
        clean["dataset_metrics"]["action_divergence"]
        < scores["dataset_metrics"]["action_divergence"]
    )
    reference = assess(
        dataset, QualityConfig(batch_size=128, encoder="none"), dataset.select_episodes([0])
    )
    assert reference["episodes"]["overlap"][0] == 1.0 and reference["episodes"]["overlap"][8] == 1
    path = write_scores(tmp_path / "s.json", scores)
    assert read_scores(path, dataset)["episodes"]["deminf"] == scores["episodes"]["deminf"]
    with pytest.raises(DatasetError, match="computed for other data"):
        read_scores(path, dataset.select_episodes(range(9)))


def test_deminf_with_vae_latents_still_finds_the_noise():
    from offrl.curate.quality import QualityConfig, assess

    config = QualityConfig(
        batch_size=128, encoder="vae", state_latent_dim=2, action_latent_dim=1, vae_steps=300
    )
    scores = assess(_scripted_episodes(), config)
    assert np.argmin(scores["episodes"]["deminf"]) == 9


def test_curate_keeps_by_score_threshold_and_per_group():
    from offrl.curate.select import episode_weights, keep

    scores = {
        "episodes": {
            "deminf": [0.5, -1.0, 2.0, 0.0, float("nan"), 1.0],
            "action_divergence": [0.1, 0.9, 0.2, 0.5, 0.3, 0.4],
            "novelty": [1, 2, 3, 4, 5, 6],
        }
    }
    np.testing.assert_array_equal(keep(scores, "deminf", top=0.5), [0, 2, 5])
    np.testing.assert_array_equal(keep(scores, "deminf", threshold=0.5), [0, 2, 5])
    np.testing.assert_array_equal(keep(scores, "action_divergence", top=1 / 3), [0, 2])
    np.testing.assert_array_equal(keep(scores, "action_divergence", threshold=0.3), [0, 2, 4])
    # per operator: the better half of each group, whatever the other group scores
    np.testing.assert_array_equal(
        keep(scores, "deminf", top=0.5, groups=[[1, 3], [0, 2, 4, 5]]), [2, 3, 5]
    )
    with pytest.raises(ValueError, match="no better direction"):
        keep(scores, "novelty", top=0.5)
    np.testing.assert_array_equal(
        keep(scores, "novelty", top=0.5, higher_is_better=False), [0, 1, 2]
    )
    weights = episode_weights(scores, "deminf", temperature=1.0)
    assert weights[4] == 0 and np.isclose(weights[[0, 1, 2, 3, 5]].mean(), 1.0)
    assert np.all(np.diff(weights[[1, 3, 0, 5, 2]]) > 0)


def test_cli_quality_then_curate_then_train_on_the_subset(tmp_path, capsys):
    from offrl.cli import main

    root = write_minari(_scripted_episodes(), tmp_path / "demos")
    main(["data", "quality", str(root), "--output", str(tmp_path / "q.json"), "--encoder", "none"])
    main(
        [
            "data", "curate", str(root), "--scores", str(tmp_path / "q.json"), "--by", "deminf",
            "--top", "0.5", "--key", "best", "--weights-output", str(tmp_path / "w.npz"),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "kept 5 of 10 episodes by deminf" in out
    best = load_dataset(root, filter_key="best")
    assert best.num_episodes == 5 and 9 not in dict(read_minari(root).info.subsets)["best"]
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "curate", str(root), "--scores", str(tmp_path / "q.json"), "--key", "x"])
    assert exit_info.value.code == 2
    assert "exactly one of --top" in capsys.readouterr().err


def test_operator_test_bed_carries_its_filter_keys_and_the_scores_rank_the_levels():
    """robomimic's multi-human layout: six operators, two per level, filter keys per
    operator, level and pair; per-level means of the scores come out in the true order."""
    from offrl.curate.quality import QualityConfig, assess

    dataset = load_dataset("suite:pendulum-operators")
    subsets = dict(dataset.info.subsets)
    assert dataset.num_episodes == 120 and len(subsets["better_1"]) == 20
    assert set(subsets["okay_better"]) == set(subsets["okay"]) | set(subsets["better"])
    returns = dataset.episode_returns()
    level_return = {lvl: returns[list(subsets[lvl])].mean() for lvl in ("worse", "okay", "better")}
    assert level_return["worse"] < level_return["okay"] < level_return["better"]
    scores = assess(dataset, QualityConfig(encoder="none", repeats=2))["episodes"]
    for name, sign in (("deminf", 1.0), ("action_divergence", -1.0)):
        values = sign * np.asarray(scores[name])
        means = [values[list(subsets[lvl])].mean() for lvl in ("worse", "okay", "better")]
        assert means[0] < means[1] < means[2], (name, means)
    noisy = load_dataset("suite:pendulum-noisy-mix", filter_key="corrupted")
    assert noisy.num_episodes == 30
    # a suite dataset keeps new subsets in its cache directory
    write_subsets(load_dataset("suite:pendulum-noisy-mix"), {"first": [0, 1]})
    assert load_dataset("suite:pendulum-noisy-mix", filter_key="first").num_episodes == 2


# --------------------------------------------------------------------- PTR, OOD-IL
def _linear_episodes(gain: float, policy: str, count: int, seed: int):
    """s' = s + gain * a in 2-D; ``policy``: a = -s + uniform noise (a demonstrator that
    keeps moving), uniform noise, or a corrupted log whose states are i.i.d. noise."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(count):
        s = rng.uniform(-1, 1, 2)
        observations, actions = [s], []
        for _ in range(30):
            a = rng.uniform(-1, 1, 2) if policy == "noise" else -s + 0.8 * rng.uniform(-1, 1, 2)
            s = rng.uniform(-1, 1, 2) if policy == "corrupted" else s + gain * a
            observations.append(s)
            actions.append(np.clip(a, -1, 1))
        episodes.append(
            {
                "observations": np.asarray(observations, np.float32),
                "actions": np.asarray(actions, np.float32),
                "rewards": np.zeros(30, np.float32),
                "terminations": np.zeros(30, bool),
                "truncations": np.r_[np.zeros(29, bool), True],
            }
        )
    return episodes


def _linear_dataset(parts):
    info = DatasetInfo(name="linear", action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    return validate(from_episodes([ep for part in parts for ep in part], info))


def test_ptr_weighs_down_steps_whose_outcome_is_noise():
    """A corrupted log (next states unrelated to state and action) cannot be picked out
    of a pool: its score is near chance, the consistent demonstrations' far above; the
    weights are clip-and-mix of the score."""
    from offrl.curate import ptr

    dataset = _linear_dataset(
        [_linear_episodes(0.3, "consistent", 9, 0), _linear_episodes(0.3, "corrupted", 3, 1)]
    )
    config = ptr.Config(horizon=1, steps=600, hidden_dims=(64, 64))
    scores = ptr.scores(dataset, config)
    clean, corrupted = scores[: 9 * 30].mean(), scores[9 * 30 :].mean()
    assert corrupted < 2.5 and clean > 2 * corrupted, (clean, corrupted)
    weights = ptr.weights_from_scores(np.asarray([0.0, 1.0, 10.0]), config)
    np.testing.assert_allclose(weights, [0.5 * 0.1 + 0.5, 1.0, 0.5 * 3.0 + 0.5])
    np.testing.assert_array_equal(ptr.outcome_rows(dataset, 3)[[0, 28, 29, 30]], [2, 29, 29, 32])


def test_oodil_weighs_down_demonstrations_from_other_dynamics():
    """Demonstrations of s' = s + 0.6 a among ones of the imitator's s' = s + 0.2 a: the
    discriminator against the imitator's producible transitions gives them lower weights."""
    from offrl.curate import oodil

    demos = _linear_dataset(
        [_linear_episodes(0.2, "consistent", 8, 0), _linear_episodes(0.6, "consistent", 4, 1)]
    )
    feasible = _linear_dataset([_linear_episodes(0.2, "noise", 20, 2)])
    config = oodil.Config(model_steps=800, discriminator_steps=800)
    weights, diagnostics = oodil.episode_weights(demos, feasible, config)
    assert weights.shape == (12,) and np.all((weights >= 0) & (weights <= 1))
    assert weights[8:].max() < weights[:8].min(), weights
    assert diagnostics["model_heldout_rmse"] < 0.1
    with pytest.raises(DatasetError, match="same task"):
        oodil.episode_weights(demos, validate(from_episodes(make_episodes(), DatasetInfo())))


def test_behavior_retrieval_finds_copies_of_the_task_in_the_prior(tmp_path, capsys):
    """Prior data holding exact copies of the task's transitions among unrelated ones:
    the copies are retrieved first, as one-step episodes that validate."""
    from offrl.cli import main
    from offrl.curate import retrieval

    task = _linear_dataset([_linear_episodes(0.3, "consistent", 2, 0)])
    prior = _linear_dataset(
        [_linear_episodes(0.3, "noise", 3, 5), _linear_episodes(0.3, "consistent", 2, 0)]
    )
    config = retrieval.Config(fraction=0.4, steps=300, hidden_dims=(32, 32))
    joined, rows = retrieval.retrieve(prior, task, config)
    np.testing.assert_array_equal(rows, np.arange(90, 150))  # the copies: episodes 3 and 4
    joined = validate(joined)
    assert joined.num_episodes == 2 + 60 and dict(joined.info.subsets)["task"] == (0, 1)
    np.testing.assert_array_equal(joined.actions[60:], prior.actions[90:150])
    assert joined.truncations[60:].all()

    write_minari(task, tmp_path / "task")
    write_minari(prior, tmp_path / "prior")
    main(
        [
            "data", "retrieve", "--prior", str(tmp_path / "prior"), "--task",
            str(tmp_path / "task"), "--output", str(tmp_path / "out"), "--fraction", "0.4",
            "--steps", "300",
        ]
    )  # fmt: skip
    assert "retrieved 60 of 150 prior transitions" in capsys.readouterr().out
    assert load_dataset(tmp_path / "out", filter_key="retrieved").num_episodes == 60


def test_apo_weights_from_intervention_flags_and_their_formats(tmp_path):
    """Corrections get the correction weight, the policy's steps just before each takeover
    (within the episode, never the episode before) the undesirable weight; the flags
    survive Minari, D4RL-style and robomimic (action_modes) files."""
    from offrl.curate import apo

    episodes = make_episodes(num_episodes=2, length=10)
    episodes[0]["interventions"] = np.asarray([0, 0, 0, 0, 1, 1, 0, 0, 1, 0], np.float32)
    episodes[1]["interventions"] = np.asarray([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], np.float32)
    info = DatasetInfo(name="hitl", action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    dataset = validate(from_episodes(episodes, info))
    # the second takeover's window (steps 5-7) keeps step 5, itself a correction
    np.testing.assert_array_equal(
        apo.labels(dataset, pre_window=3),
        [0, -1, -1, -1, 1, 1, -1, -1, 1, 0] + [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    weights = apo.weights(dataset, apo.Config(pre_window=3, correction_weight=3.0))
    np.testing.assert_array_equal(weights[:10], [1, 0, 0, 0, 3, 3, 0, 0, 3, 1])
    with pytest.raises(DatasetError, match="no intervention flags"):
        apo.weights(validate(from_episodes(make_episodes(), info)))
    bad = [dict(e) for e in episodes]
    bad[0]["interventions"] = np.full(10, 0.5, np.float32)
    with pytest.raises(DatasetError, match="intervention flags must be 0"):
        validate(from_episodes(bad, info))

    root = write_minari(dataset, tmp_path / "m")
    np.testing.assert_array_equal(read_minari(root).interventions, dataset.interventions)
    with h5py.File(tmp_path / "r.hdf5", "w") as f:
        for i, episode in enumerate(episodes):
            demo = f.create_group(f"data/demo_{i}")
            demo["obs/x"] = episode["observations"][:-1]
            demo["next_obs/x"] = episode["observations"][1:]
            demo["actions"] = episode["actions"]
            # robomimic's modes: 1 human, 0 robot, -1 the robot's steps before a takeover
            modes = np.where(episode["interventions"] > 0, 1, 0)
            modes[np.flatnonzero(episode["interventions"] > 0)[:1] - 1] = -1
            demo["action_modes"] = modes
    np.testing.assert_array_equal(
        load_dataset(tmp_path / "r.hdf5").interventions, dataset.interventions
    )


def test_uncertainty_corrections_label_the_most_disputed_states(tmp_path):
    """One round: the expert labels the visited states of the highest ensemble
    disagreement (one-step episodes holding the expert's action); random selection at
    the same budget labels states of lower average disagreement."""
    from offrl import corrections
    from offrl.suites.pendulum import SwingUpController

    start = load_dataset("suite:pendulum-expert").select_episodes(range(1))
    expert = SwingUpController()
    config = corrections.Config(
        rounds=1, budget=20, rollouts=1, members=3, steps=40, hidden_dims=(16,)
    )
    data, records = corrections.collect(start, "Pendulum-v1", expert, config, tmp_path)
    labels = data.select_episodes(range(1, data.num_episodes))
    assert labels.num_episodes == 20 and validate(data).size == 220
    expected = np.stack([expert(s) for s in np.asarray(labels.observations)])
    np.testing.assert_allclose(labels.actions, expected, rtol=1e-6)
    assert records[0]["visited"] == 200
    assert records[0]["labeled_disagreement"] > records[0]["mean_disagreement"]
    _, random_records = corrections.collect(
        start, "Pendulum-v1", expert, dataclasses.replace(config, select="random"), tmp_path
    )
    assert random_records[0]["labeled_disagreement"] < records[0]["labeled_disagreement"]
    extra = corrections.extra_demonstrations("Pendulum-v1", expert, 250, 600_000, start.info)
    assert extra.size == 250 and extra.num_episodes == 2 and extra.truncations[-1]


def test_maze_operators_drive_the_planner_with_their_noise():
    """An operator episode on PointMaze UMaze is the planner's with the operator's noise:
    the noise-free operator reaches the goal and earns more dense reward than a noisy one."""
    from offrl.suites.curation import OPERATORS, RECIPES, collect_maze

    assert RECIPES["pointmaze-operators"]["maze"] == "umaze" and len(OPERATORS) == 6
    clean = collect_maze("umaze", 1, 0, 0.0, 0.0, 0)[0]
    noisy = collect_maze("umaze", 1, 0, 1.2, 0.4, 0)[0]
    assert len(clean["rewards"]) == 300 and clean["rewards"].max() > 0.6
    assert clean["rewards"].sum() > noisy["rewards"].sum()


def test_eil_flags_a_detour_no_other_demonstration_makes():
    """Six demonstrations of the circle policy; in one, steps 15-22 act a = -1 instead
    (a consistent motion along the same circle, at states the others visit with other
    actions). Their cycle errors stand out and the outlier rule flags most of them."""
    from offrl.curate import eil

    rng = np.random.default_rng(3)
    episodes = []
    for index in range(6):
        angles, actions = [rng.uniform(0, 2 * np.pi)], []
        for t in range(40):
            a = -1.0 if index == 0 and 15 <= t < 23 else np.sin(3 * angles[-1])
            actions.append([a])
            angles.append(angles[-1] + 0.15 + 0.1 * a)
        angles = np.asarray(angles)
        episodes.append(
            {
                "observations": np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32),
                "actions": np.asarray(actions, np.float32),
                "rewards": np.zeros(40, np.float32),
                "terminations": np.zeros(40, bool),
                "truncations": np.r_[np.zeros(39, bool), True],
            }
        )
    dataset = validate(from_episodes(episodes, DatasetInfo(action_low=(-1.0,), action_high=(1.0,))))
    detour = np.zeros(dataset.size, bool)
    detour[15:23] = True
    config = eil.Config(steps=600, length=32, pairs=8, hidden_dims=(64, 64))
    scores, diagnostics = eil.cycle_errors(dataset, config)
    assert diagnostics["tcc_loss_last"] < diagnostics["tcc_loss_first"]
    assert scores[detour].mean() > 3 * np.median(scores[~detour])
    weights, _ = eil.weights(dataset, config)
    assert weights[detour].mean() <= 0.5 and weights[~detour].mean() > 0.8
    with pytest.raises(DatasetError, match="at least 2"):
        eil.weights(dataset.select_episodes([0]), config)


def test_resume_treats_a_new_setting_left_at_none_as_absent(tmp_path):
    """A run saved before --filter-key existed resumes with it unset, and is refused
    when it is set."""
    from offrl.run import rundir
    from offrl.run.settings import RunError

    saved = {
        "kind": "offline",
        "algorithm": "bc",
        "algorithm_config": {},
        "seeds": [0],
        "observation_dim": 3,
        "action_dim": 1,
        "train_config": {"steps": 10},
    }
    rundir.open_run(tmp_path / "run", saved, resume=False)
    now = {**saved, "train_config": {"steps": 10, "filter_key": None}}
    rundir.open_run(tmp_path / "run", now, resume=True)
    with pytest.raises(RunError, match="filter_key"):
        rundir.open_run(
            tmp_path / "run", {**saved, "train_config": {"steps": 10, "filter_key": "a"}}, True
        )


def test_offline_selection_reads_the_runs_own_subset(tmp_path):
    """offrl select / report estimate on the episodes the run trained on (its
    --filter-key), checked against the digest of the dataset as named."""
    from offrl.evaluate.selection import load_run_dataset

    root = write_minari(_scripted_episodes(), tmp_path / "demos")
    dataset = write_subsets(read_minari(root), {"first": [0, 1, 2]})
    run = tmp_path / "run"
    run.mkdir()
    config = {"dataset": str(root), "dataset_sha256": dataset.digest(),
              "train_config": {"filter_key": "first"}}  # fmt: skip
    (run / "config.json").write_text(json.dumps(config))
    assert load_run_dataset(run).num_episodes == 3


def test_novelty_looks_only_at_other_episodes():
    """Two episodes of slowly moving states far apart: each step's nearest state of
    *another* episode is the other cluster (its own neighbours do not count)."""
    from offrl.curate.quality import QualityConfig, assess

    episodes = []
    for centre in (0.0, 10.0):
        path = centre + 0.01 * np.arange(21, dtype=np.float32)
        episodes.append(
            {
                "observations": np.stack([path, path], 1),
                "actions": np.full((20, 1), 0.5 if centre else -0.5, np.float32),
                "rewards": np.zeros(20, np.float32),
                "terminations": np.zeros(20, bool),
                "truncations": np.r_[np.zeros(19, bool), True],
            }
        )
    dataset = validate(from_episodes(episodes, DatasetInfo(action_low=(-1.0,), action_high=(1.0,))))
    scores = assess(dataset, QualityConfig(batch_size=64, repeats=1, encoder="none"))
    # standardized, the clusters sit about 2 apart on each axis: far beyond 0.01 steps
    assert min(scores["episodes"]["novelty"]) > 2.0
