"""Labeling: preferences from a scripted teacher and a Bradley-Terry reward model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_episodes

from offrl.curate import preferences as prefs
from offrl.data import DatasetError, DatasetInfo, from_episodes, load_dataset, validate
from offrl.data.formats import read_minari, write_minari


def test_bradley_terry_loss_matches_numpy():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(2, 3, 5))  # [E, Q] each
    labels = np.asarray([1.0, 0.0, 0.5, 1.0, 0.0])
    logits = second - first
    p = 1 / (1 + np.exp(-logits))
    expected = (-(labels * np.log(p) + (1 - labels) * np.log(1 - p))).mean(axis=1).sum()
    np.testing.assert_allclose(prefs.bradley_terry_loss(first, second, labels), expected, rtol=1e-5)


def test_scripted_teacher_on_segments_of_known_return():
    """Episode k pays k per step: the later episode's segment wins, equal episodes tie
    within the equivalence threshold, and flip = 1 inverts every label."""
    episodes = make_episodes(num_episodes=4, length=10)
    for k, episode in enumerate(episodes):
        episode["rewards"] = np.full(10, float(k), np.float32)
    dataset = validate(from_episodes(episodes, DatasetInfo()))
    first = np.asarray([0, 30, 12, 25])  # episodes 0, 3, 1, 2
    second = np.asarray([10, 20, 15, 21])  # episodes 1, 2, 1, 2
    returns = [prefs.segment_returns(dataset.rewards, rows, 4) for rows in (first, second)]
    np.testing.assert_array_equal(returns[0], [0, 12, 4, 8])
    np.testing.assert_array_equal(prefs.teacher_labels(*returns), [1.0, 0.0, 0.5, 0.5])
    np.testing.assert_array_equal(prefs.teacher_labels(*returns, equivalence=3.0), [1, 0, 0.5, 0.5])
    np.testing.assert_array_equal(prefs.teacher_labels(*returns, equivalence=5.0), [0.5] * 4)
    np.testing.assert_array_equal(prefs.teacher_labels(*returns, flip=1.0), [0.0, 1.0, 0.5, 0.5])
    assert 7 not in prefs.segment_starts(dataset, 4)  # rows 7-10 would cross episodes
    labeled = prefs.scripted_preferences(dataset, 200, 4, seed=1)
    decided = labeled["preference"] != 0.5
    truth = prefs.segment_returns(dataset.rewards, labeled["second"], 4) > prefs.segment_returns(
        dataset.rewards, labeled["first"], 4
    )
    np.testing.assert_array_equal(labeled["preference"][decided] == 1.0, truth[decided])
    noisy = prefs.scripted_preferences(dataset, 2000, 4, flip=0.2, seed=1)
    clean = prefs.scripted_preferences(dataset, 2000, 4, seed=1)
    flipped = np.mean(noisy["preference"] != clean["preference"])
    assert 0.1 < flipped < 0.2  # ties flip to themselves


def test_reward_model_learns_the_order_of_pendulum_segments(tmp_path):
    """From 300 scripted preferences on 25-step segments the learned reward orders
    held-out pairs as the true reward does; the relabeled dataset round-trips and a
    bad preference file is refused by name."""
    from offrl.cli import main

    dataset = load_dataset("suite:pendulum-mixed")
    train = prefs.scripted_preferences(dataset, 300, 25, seed=0)
    held_out = prefs.scripted_preferences(dataset, 300, 25, seed=1)
    config = prefs.Config(hidden_dims=(64, 64), members=2, steps=600, batch_size=32)
    reward, diagnostics = prefs.fit_reward_model(dataset, train, config)
    assert diagnostics["loss_last"] < 0.5 * diagnostics["loss_first"]
    assert prefs.preference_accuracy(reward, dataset, held_out) > 0.85

    path = prefs.write_preferences(tmp_path / "p", dataset, train)
    main(["label", "rewards", "suite:pendulum-mixed", "--preferences", str(path), "--output",
          str(tmp_path / "relabeled"), "--steps", "50", "--members", "1"])  # fmt: skip
    relabeled = read_minari(tmp_path / "relabeled")
    np.testing.assert_array_equal(relabeled.observations, dataset.observations)
    assert not np.array_equal(relabeled.rewards, dataset.rewards)
    bad = dict(train, first=np.asarray(train["first"]).copy())
    bad["first"][3] = dataset.size - 2  # a segment running past the last episode's end
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(DatasetError, match="query 3: its first segment"):
        prefs.read_preferences(tmp_path / "bad.npz", dataset)
    # The file indexes states and actions: it labels a reward-free copy of the data.
    prefs.read_preferences(path, dataset.replace(rewards=None))
    other = write_minari(dataset.select_episodes(range(5)), tmp_path / "other")
    with pytest.raises(DatasetError, match="other data"):
        prefs.read_preferences(path, read_minari(other))


def test_inverse_dynamics_recovers_the_actions_of_a_linear_system(tmp_path):
    """s' = 0.9 s + 0.5 B a with B invertible: the model trained on 6 of 24 trajectories
    (from the lower half by return) labels the others' actions to within a quarter of
    what guessing the mean would miss by (RMSE 0.58 for uniform actions in [-1, 1]);
    measured 0.10."""
    from offrl.cli import main
    from offrl.curate import inverse_dynamics

    rng = np.random.default_rng(0)
    b = np.asarray([[1.0, 0.3], [-0.2, 0.8]])
    episodes = []
    for k in range(24):
        s = rng.uniform(-1, 1, 2)
        observations, actions = [s], []
        for _ in range(50):
            a = rng.uniform(-1, 1, 2)
            s = 0.9 * s + 0.5 * b @ a
            observations.append(s)
            actions.append(a)
        episodes.append(
            {
                "observations": np.asarray(observations, np.float32),
                "actions": np.asarray(actions, np.float32),
                "rewards": np.full(50, float(k), np.float32),
                "terminations": np.zeros(50, bool),
                "truncations": np.r_[np.zeros(49, bool), True],
            }
        )
    info = DatasetInfo(action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    dataset = validate(from_episodes(episodes, info))
    labeled = inverse_dynamics.labeled_trajectories(dataset, 0.25, seed=0)
    assert len(labeled) == 6 and labeled.max() < 12  # the lower half by return: episodes 0-11
    config = inverse_dynamics.Config(
        hidden_dims=(64, 64), steps=3000, dropout_rate=0.0, learning_rate=3e-3
    )
    relabeled, diagnostics = inverse_dynamics.fit_and_label(dataset, labeled, config)
    assert diagnostics["rmse_against_recorded_actions"] < 0.58 / 4
    rows = np.repeat(np.arange(24), 50)
    kept = np.isin(rows, labeled)
    np.testing.assert_array_equal(relabeled.actions[kept], dataset.actions[kept])
    assert dict(relabeled.info.subsets)["labeled"] == tuple(labeled)

    root = write_minari(dataset, tmp_path / "linear")
    main(["label", "actions", str(root), "--output", str(tmp_path / "out"), "--fraction",
          "0.25", "--steps", "50"])  # fmt: skip
    assert len(dict(read_minari(tmp_path / "out").info.subsets)["inferred"]) == 18

    # The realistic case: a labeled log and a separate action-free one.
    unlabeled_ids = np.setdiff1d(np.arange(24), labeled)
    action_free = dataset.select_episodes(unlabeled_ids).replace(actions=None)
    main(["label", "actions", str(write_minari(dataset.select_episodes(labeled), tmp_path / "l")),
          "--unlabeled", str(write_minari(action_free, tmp_path / "u")), "--output",
          str(tmp_path / "joined"), "--steps", "3000"])  # fmt: skip
    joined = read_minari(tmp_path / "joined")
    inferred = joined.subset("inferred")
    truth = dataset.select_episodes(unlabeled_ids)
    np.testing.assert_array_equal(inferred.observations, truth.observations)
    rmse = np.sqrt(np.mean((inferred.actions - truth.actions) ** 2))
    assert rmse < 0.58 / 2, rmse  # the CLI's default network, dropout 0.1


def test_missing_actions_and_rewards_load_validate_and_refuse(tmp_path, capsys):
    """A log without actions or rewards loads from every format with the fields
    missing (never as numbers), validation names them, and training an algorithm that
    needs one refuses in one line naming the labeling command, writing nothing."""
    import h5py

    from offrl.cli import main
    from offrl.run.train import TrainConfig, train

    info = DatasetInfo(name="log", action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    full = validate(from_episodes(make_episodes(num_episodes=4, length=6), info))
    bare = full.replace(actions=None, rewards=None)
    assert validate(bare).missing_fields() == ("actions", "rewards")
    assert bare.size == full.size and bare.action_dim == 2
    with pytest.raises(DatasetError, match="field 'rewards': is missing, and an episode return"):
        bare.episode_returns()

    root = write_minari(bare, tmp_path / "minari")
    back = read_minari(root)
    assert back.actions is None and back.rewards is None
    np.testing.assert_array_equal(back.observations, full.observations)
    main(["data", "validate", str(root)])
    out = capsys.readouterr().out
    assert "no actions" in out and "no rewards" in out and "offrl label actions" in out

    with h5py.File(tmp_path / "d4rl.hdf5", "w") as f:
        f["observations"] = full.observations
        f["terminals"] = full.terminations
        f["timeouts"] = full.truncations
        f["next_observations"] = full.next_observations
        f["actions"] = full.actions
    d4rl = load_dataset(str(tmp_path / "d4rl.hdf5"))
    assert d4rl.rewards is None and d4rl.missing_fields() == ("rewards",)
    np.testing.assert_array_equal(d4rl.actions, full.actions)
    with h5py.File(tmp_path / "robomimic.hdf5", "w") as f:
        demo = f.create_group("data/demo_0")
        demo["obs/state"] = full.observations[:6]
        demo["next_obs/state"] = full.next_observations[:6]
        demo["actions"] = full.actions[:6]
    robomimic = load_dataset(str(tmp_path / "robomimic.hdf5"))
    assert robomimic.rewards is None  # not zeros: nothing says the steps paid 0

    for algorithm, dataset, field, command in (
        ("iql", bare, "actions", "offrl label actions"),
        ("bc", bare, "actions", "offrl label actions"),
        ("iql", d4rl, "rewards", "offrl label rewards"),
    ):
        with pytest.raises(DatasetError, match=f"field '{field}'.*training {algorithm}") as error:
            train(algorithm, dataset, tmp_path / f"run-{algorithm}")
        assert command in str(error.value) and "\n" not in str(error.value)
        assert not (tmp_path / f"run-{algorithm}").exists()
    config = TrainConfig(steps=20, eval_every=0, heldout_episodes=0, seeds=(0,))
    summary = train("bc", d4rl, tmp_path / "bc", train_config=config)  # BC needs no rewards
    assert summary["steps"] == 20


def test_progress_model_learns_progress_along_demonstrations(tmp_path):
    """Demonstrations walk a point from x = 0 to the goal x = 1 at different speeds,
    with a distracting second coordinate: the learned progress between two states is
    the distance walked (to within 0.08 RMSE), steps toward the goal earn positive
    reward and steps away negative, the done model fires at the goal only; the
    command relabels a reward-free dataset."""
    from offrl.cli import main
    from offrl.curate import progress

    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(40):
        length = int(rng.integers(20, 41))
        x = np.linspace(0.0, 1.0, length + 1)
        noise = rng.normal(0.0, 1.0, length + 1)
        episodes.append(
            {
                "observations": np.stack([x, noise], 1).astype(np.float32),
                "actions": np.full((length, 1), 1.0 / length, np.float32),
                "rewards": np.zeros(length, np.float32),
                "terminations": np.r_[np.zeros(length - 1, bool), True],
                "truncations": np.zeros(length, bool),
            }
        )
    info = DatasetInfo(action_low=(-1.0,), action_high=(1.0,))
    demos = validate(from_episodes(episodes, info))
    model = progress.fit_model(demos, progress.Config(hidden_dims=(64, 64), steps=3000))
    first = np.stack([rng.uniform(0, 1, 500), rng.normal(size=500)], 1)
    second = np.stack([rng.uniform(0, 1, 500), rng.normal(size=500)], 1)
    rmse = np.sqrt(np.mean((model.delta(first, second) - (second[:, 0] - first[:, 0])) ** 2))
    assert rmse < 0.08, rmse
    done = model.done_probability(np.asarray([[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]]))
    assert done[0] > 0.5 > done[1] and done[2] < 0.1
    backward = from_episodes(
        [{**e, "observations": e["observations"][::-1].copy()} for e in episodes[:5]], info
    )
    assert (model.rewards(backward) < 0).mean() > 0.9
    assert (model.rewards(demos) > 0).mean() > 0.9
    np.testing.assert_allclose(np.mean(model.rewards(demos)), 1.0, atol=0.25)

    bare = write_minari(demos.replace(rewards=None), tmp_path / "bare")
    demos_path = write_minari(demos, tmp_path / "d")
    main(["label", "progress", str(bare), "--demonstrations", str(demos_path),
          "--output", str(tmp_path / "out"), "--steps", "200"])  # fmt: skip
    assert read_minari(tmp_path / "out").rewards is not None


def chain_dataset(episodes=30, length=10, seed=0):
    """A chain: states t / length (plus a nuisance coordinate), reward 1 on the last
    step, terminated there: V(s_t) = gamma^(length - 1 - t)."""
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(episodes):
        t = np.arange(length + 1) / length
        made.append(
            {
                "observations": np.stack([t, rng.normal(size=length + 1)], 1).astype(np.float32),
                "rewards": np.r_[np.zeros(length - 1), 1.0].astype(np.float32),
                "terminations": np.r_[np.zeros(length - 1, bool), True],
                "truncations": np.zeros(length, bool),
            }
        )
    info = DatasetInfo(action_low=(-1.0,), action_high=(1.0,))
    return validate(from_episodes(made, info))


def test_value_pretraining_learns_the_chain_value_and_starts_iql(tmp_path):
    """TD on action-free trajectories recovers V = gamma^(steps to go) (expectile 0.5);
    IQL started from the file computes the same values under its own standardization
    (folded into the first layer) and its actor's and critics' hidden layers are the
    value network's; a file for other widths is refused by name."""
    import jax
    import jax.numpy as jnp

    from offrl.algos import iql
    from offrl.algos import value_pretraining as vptr
    from offrl.cli import main
    from offrl.core.trainer import init_states, seed_keys
    from offrl.data.preprocess import fit_preprocessor

    data = chain_dataset()
    assert data.actions is None
    config = vptr.Config(hidden_dims=(64, 64), discount=0.9, expectile=0.5, steps=4000)
    pretrained = vptr.pretrain(data, config)
    states = np.stack([np.arange(10) / 10, np.zeros(10)], 1)
    truth = 0.9 ** (9 - np.arange(10))
    np.testing.assert_allclose(pretrained.value(states), truth, atol=0.06)

    path = vptr.save(tmp_path / "v.npz", pretrained)
    back = vptr.load(path)
    np.testing.assert_array_equal(back.value(states), pretrained.value(states))

    # A run standardizing observations differently (another dataset's statistics).
    other = chain_dataset(seed=1).replace(
        observations=chain_dataset(seed=1).observations * 3.0 + 1.0
    )
    pre = fit_preprocessor(
        other.replace(actions=np.zeros((other.size, 1), np.float32)), True, "none"
    )
    iql_config = iql.Config(hidden_dims=(64, 64), value_init=str(path))
    keys, _ = seed_keys((0, 1))
    initial = iql.load_pretrained(init_states(iql, iql_config, 2, 1, keys), iql_config, pre)
    x = (states - np.asarray(pre.observation_mean)) / np.asarray(pre.observation_std)
    for seed in range(2):
        params = jax.tree_util.tree_map(lambda p, s=seed: p[s], initial.value.params)
        got = iql.VNetwork((64, 64)).apply(params, jnp.asarray(x, jnp.float32))
        np.testing.assert_allclose(np.asarray(got), pretrained.value(states), atol=1e-4)
    hidden = vptr.hidden_layers(vptr.value_params(pretrained, np.asarray(pre.observation_mean),
                                                  np.asarray(pre.observation_std)))  # fmt: skip
    actor_first = initial.actor.params["params"]["MLP_0"]["Dense_0"]["kernel"][1]
    np.testing.assert_allclose(actor_first, hidden["Dense_0"]["kernel"], rtol=1e-6)
    critic_first = initial.critic.params["params"]["VmapQNetwork_0"]["MLP_0"]["Dense_0"]["kernel"]
    np.testing.assert_allclose(critic_first[0, 1, :2], hidden["Dense_0"]["kernel"], rtol=1e-6)
    np.testing.assert_array_equal(
        initial.target_critic_params["params"]["VmapQNetwork_0"]["MLP_0"]["Dense_1"]["kernel"],
        initial.critic.params["params"]["VmapQNetwork_0"]["MLP_0"]["Dense_1"]["kernel"],
    )
    wrong = iql.Config(hidden_dims=(32, 32), value_init=str(path))
    with pytest.raises(DatasetError, match="widths"):
        iql.load_pretrained(init_states(iql, wrong, 2, 1, keys), wrong, pre)

    root = write_minari(data, tmp_path / "chain")
    main(["pretrain", "value", str(root), "--output", str(tmp_path / "cli.npz"), "--steps", "50",
          "--hidden-dims", "32", "32"])  # fmt: skip
    assert vptr.load(tmp_path / "cli.npz").config.hidden_dims == (32, 32)
    # The trainer hands the run's standardization to the hook (a mismatch is refused).
    from offrl.run.train import TrainConfig, train

    labeled = data.replace(actions=np.zeros((data.size, 1), np.float32))
    narrow = iql.Config(hidden_dims=(16, 16), value_init=str(path))
    short = TrainConfig(steps=2, eval_every=0, heldout_episodes=0)
    with pytest.raises(DatasetError, match="widths"):
        train("iql", labeled, tmp_path / "run", narrow, short)
