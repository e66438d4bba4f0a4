"""The dynamics ensemble, its penalties, model rollouts, MOPO and MOBILE."""

import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_episodes

from offrl.algos import mobile, mopo
from offrl.core.trainer import fill_from_data
from offrl.data import DatasetInfo, from_episodes
from offrl.envs.termination import RULES, rule_name
from offrl.model import ensemble, planning, rollouts
from offrl.nn import sample_tanh_gaussian
from offrl.run.train import TrainConfig, train


def soft_clamp(logvar, low=-10.0, high=0.5):
    logvar = high - np.log1p(np.exp(high - logvar))
    return low + np.log1p(np.exp(logvar - low))


def handmade(spec, obs_dim, act_dim, means, logvars):
    """An ensemble that ignores its input: member i predicts ``means[i]`` (state change,
    reward) with log-variance ``logvars[i]`` (before the soft clamp)."""
    model = ensemble.init(spec, obs_dim, act_dim, jax.random.PRNGKey(0))
    members = dict(model.params["params"]["members"])
    last = f"Dense_{len(spec.hidden_dims)}"
    layer = dict(members[last])
    layer["kernel"] = jnp.zeros_like(layer["kernel"])
    layer["bias"] = jnp.asarray(np.concatenate([means, logvars], axis=-1), jnp.float32)
    members[last] = layer
    params = {"params": {**model.params["params"], "members": members}}
    return model.replace(params=params)


SPEC = ensemble.ModelSpec(num_models=3, num_elites=2, hidden_dims=(8,), weight_decays=(1e-3, 2e-3))


def test_gaussian_nll_loss_matches_numpy():
    rng = np.random.default_rng(0)
    dim = 2
    params = ensemble.init(SPEC, dim, 1, jax.random.PRNGKey(1)).params
    inputs = rng.normal(size=(3, 5, 3)).astype(np.float32)
    targets = rng.normal(size=(3, 5, dim + 1)).astype(np.float32)
    loss, _ = ensemble.gaussian_nll_loss(SPEC, params, inputs, targets, dim)

    # the forward pass in NumPy: swish hidden layer, then mean and soft-clamped logvar
    members = jax.tree_util.tree_map(np.asarray, params["params"]["members"])
    hidden = np.einsum("nbi,nio->nbo", inputs, members["Dense_0"]["kernel"])
    hidden = hidden + members["Dense_0"]["bias"][:, None]
    hidden = hidden / (1.0 + np.exp(-hidden))
    out = np.einsum("nbi,nio->nbo", hidden, members["Dense_1"]["kernel"])
    out = out + members["Dense_1"]["bias"][:, None]
    mean, logvar = out[..., : dim + 1], out[..., dim + 1 :]
    high = np.asarray(params["params"]["max_logvar"])
    low = np.asarray(params["params"]["min_logvar"])
    logvar = high - np.log1p(np.exp(high - logvar))
    logvar = low + np.log1p(np.exp(logvar - low))
    expected = (((mean - targets) ** 2) * np.exp(-logvar)).mean(axis=(1, 2)).sum()
    expected += logvar.mean(axis=(1, 2)).sum()
    expected += 1e-3 * 0.5 * (members["Dense_0"]["kernel"] ** 2).sum()
    expected += 2e-3 * 0.5 * (members["Dense_1"]["kernel"] ** 2).sum()
    expected += 0.01 * (high.sum() - low.sum())
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_penalties_match_numpy():
    rng = np.random.default_rng(3)
    mean = rng.normal(size=(4, 6, 3)).astype(np.float32)  # N models, B rows, D + 1
    std = rng.uniform(0.1, 2.0, size=(4, 6, 3)).astype(np.float32)
    draw = rng.normal(size=(6, 3)).astype(np.float32)
    states = mean[..., :-1]
    expected = {
        "aleatoric": np.linalg.norm(std, axis=-1).max(axis=0),
        "pairwise": np.array(
            [
                max(np.linalg.norm(states[i, b] - states[j, b]) for i in range(4) for j in range(4))
                for b in range(6)
            ]
        ),
        "ensemble_std": np.sqrt(states.var(axis=0).mean(axis=-1)),
        "ensemble_var": states.var(axis=0).mean(axis=-1),
        "ll_var": np.var(
            [
                [
                    sum(
                        -0.5 * ((draw[b, d] - mean[i, b, d]) / std[i, b, d]) ** 2
                        - np.log(std[i, b, d])
                        - 0.5 * np.log(2 * np.pi)
                        for d in range(3)
                    )
                    for b in range(6)
                ]
                for i in range(4)
            ],
            axis=0,
        ),
    }
    assert set(expected) == set(ensemble.PENALTIES)
    for kind, value in expected.items():
        np.testing.assert_allclose(
            ensemble.penalty(kind, mean, std, draw), value, rtol=1e-4, err_msg=kind
        )
    with pytest.raises(ValueError, match="unknown penalty 'nope'"):
        ensemble.penalty("nope", mean, std)


def test_ensemble_recovers_a_linear_system_and_picks_its_elites():
    rng = np.random.default_rng(0)
    n, dim = 4000, 3
    a_matrix = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [-0.1, 0.0, 0.95]], np.float32)
    b_matrix = np.array([[0.5], [-0.3], [0.2]], np.float32)
    observations = rng.normal(size=(n, dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    next_obs = observations @ a_matrix.T + actions @ b_matrix.T
    next_obs += 0.01 * rng.normal(size=next_obs.shape).astype(np.float32)
    rewards = observations[:, 0] - 0.5 * actions[:, 0]
    spec = ensemble.ModelSpec(
        num_models=4,
        num_elites=2,
        hidden_dims=(64, 64),
        weight_decays=(1e-5, 1e-5, 1e-5),
        batch_size=64,
        max_epochs=30,
    )
    keys = jnp.stack([jax.random.PRNGKey(0)])
    fitted, summary = ensemble.fit(spec, observations, actions, rewards, next_obs, keys)
    assert summary["holdout_rows"] == 800 and summary["train_rows"] == 3200
    one = jax.tree_util.tree_map(lambda x: x[0], fitted)

    # fresh states: the elites' mean predictions recover the system
    test_obs = rng.normal(size=(500, dim)).astype(np.float32)
    test_act = rng.uniform(-1, 1, size=(500, 1)).astype(np.float32)
    mean, std = ensemble.distribution(spec, one, test_obs, test_act)
    test_rewards = test_obs[:, 0] - 0.5 * test_act[:, 0]
    truth = np.concatenate(
        [test_obs @ a_matrix.T + test_act @ b_matrix.T, test_rewards[:, None]], axis=-1
    )
    errors = np.sqrt(((np.asarray(mean) - truth) ** 2).mean(axis=(1, 2)))  # per model
    scale = truth.std()
    assert errors[np.asarray(one.elites)].max() < 0.1 * scale, errors

    # the elites are the models of lowest error on the held-out rows (recomputed here)
    split_key = jax.random.split(keys[0], 3)[0]
    _, hold = ensemble._split(n, spec, split_key)
    hold_mean, _ = ensemble.distribution(spec, one, observations[hold], actions[hold])
    hold_truth = np.concatenate([next_obs[hold], rewards[hold, None]], axis=-1)
    hold_mse = ((np.asarray(hold_mean) - hold_truth) ** 2).mean(axis=(1, 2))
    np.testing.assert_array_equal(np.sort(one.elites), np.sort(np.argsort(hold_mse)[:2]))
    np.testing.assert_allclose(
        summary["holdout_mse_elites"][0], np.sort(hold_mse)[:2].mean(), rtol=1e-3
    )


def test_model_buffer_keeps_only_valid_rows():
    buffer = rollouts.empty(6, 1, 1)

    def rows(values):
        values = np.asarray(values, np.float32)
        return {
            "observations": values[:, None],
            "actions": values[:, None],
            "rewards": values,
            "next_observations": values[:, None],
            "terminations": np.zeros_like(values),
        }

    buffer = rollouts.add(buffer, rows([1, 2, 3]), jnp.array([True, False, True]))
    assert int(buffer.count) == 2
    np.testing.assert_array_equal(buffer.rewards[:2], [1, 3])
    drawn = rollouts.sample(buffer, jax.random.PRNGKey(0), 200, reserved=3)["rewards"]
    assert set(np.asarray(drawn).tolist()) == {1.0, 3.0}
    for start in (10, 20, 30):  # wrap around the ring several times
        buffer = rollouts.add(
            buffer, rows([start, start + 1, start + 2]), jnp.array([True, True, False])
        )
    # 8 valid rows into 6 slots: [30, 31, 32 (invalid), 11, 20, 21] with the head at
    # slot 2; the 3 reserved slots from the head (32, 11, 20) are never drawn
    assert int(buffer.count) == 8
    np.testing.assert_array_equal(buffer.rewards, [30, 31, 32, 11, 20, 21])
    drawn = rollouts.sample(buffer, jax.random.PRNGKey(1), 500, reserved=3)["rewards"]
    assert set(np.asarray(drawn).tolist()) == {21.0, 30.0, 31.0}


def test_rollout_stops_at_the_task_termination():
    # Hopper's rule: z falls by 0.12 a step from 1.0 (0.88, 0.76, 0.64): the third step
    # terminates, the fourth and fifth are not part of the rollout.
    obs_dim, act_dim = 11, 3
    spec = ensemble.ModelSpec(num_models=2, num_elites=2, hidden_dims=(4,), weight_decays=(0, 0))
    delta = np.zeros((2, obs_dim + 1), np.float32)
    delta[:, 0] = -0.12
    delta[:, -1] = 1.0
    model = handmade(spec, obs_dim, act_dim, delta, np.full((2, obs_dim + 1), -20.0, np.float32))
    starts = np.zeros((4, obs_dim), np.float32)
    starts[:, 0] = 1.0
    rows, valid, info = rollouts.rollout(
        spec,
        model,
        lambda obs, key: jnp.zeros((obs.shape[0], act_dim)),
        starts,
        5,
        jax.random.PRNGKey(0),
        RULES["hopper"],
    )
    valid = np.asarray(valid).reshape(5, 4)
    np.testing.assert_array_equal(valid, np.repeat([[1], [1], [1], [0], [0]], 4, axis=1))
    terminations = np.asarray(rows["terminations"]).reshape(5, 4)
    np.testing.assert_array_equal(terminations[:3], np.repeat([[0], [0], [1]], 4, axis=1))
    np.testing.assert_allclose(
        np.asarray(rows["next_observations"])[:12, 0].reshape(3, 4),
        np.repeat([[0.88], [0.76], [0.64]], 4, axis=1),
        atol=0.05,  # std exp(-10 / 2) = 0.0067 per step: the clamp's floor
    )
    assert float(info["rollout/termination_rate"]) == pytest.approx(1 / 3)


def test_mopo_penalizes_model_rewards_by_the_aleatoric_uncertainty():
    obs_dim, act_dim = 2, 1
    spec = ensemble.ModelSpec(num_models=3, num_elites=2, hidden_dims=(4,), weight_decays=(0, 0))
    logvars = np.array([[-2.0] * 3, [-1.0] * 3, [-3.0] * 3], np.float32)
    model = handmade(spec, obs_dim, act_dim, np.zeros((3, 3), np.float32), logvars)
    u = np.sqrt(3 * np.exp(soft_clamp(-1.0)))  # the widest member: ||sigma||_2 over 3 outputs
    starts = np.zeros((5, obs_dim), np.float32)

    def run(coef):
        return rollouts.rollout(
            spec,
            model,
            lambda obs, key: jnp.zeros((obs.shape[0], act_dim)),
            starts,
            2,
            jax.random.PRNGKey(4),
            RULES["never"],
            "aleatoric",
            coef,
        )

    plain, _, _ = run(0.0)
    penalized, _, info = run(2.5)
    np.testing.assert_allclose(plain["rewards"] - penalized["rewards"], 2.5 * u, rtol=1e-5)
    np.testing.assert_allclose(float(info["rollout/penalty"]), u, rtol=1e-5)


def test_mopo_termination_rule_reads_raw_observations():
    config = mopo.Config(termination="hopper")
    mean = np.zeros(11, np.float32)
    mean[0] = 1.0
    # the rule reads only the run's standardization from the state
    state = types.SimpleNamespace(observation_mean=mean, observation_std=np.full(11, 0.5))
    terminated = mopo.terminated_fn(state, config)
    standardized = np.zeros((2, 11), np.float32)
    standardized[0, 0] = -0.8  # raw z = 0.6: fallen
    standardized[1, 0] = 0.2  # raw z = 1.1: healthy
    np.testing.assert_array_equal(
        terminated(standardized, jnp.zeros((2, 3)), standardized), [True, False]
    )
    with pytest.raises(ValueError, match="not resolved"):
        mopo.terminated_fn(state, dataclasses.replace(config, termination="auto"))


def test_termination_is_resolved_from_the_task_or_the_data():
    assert rule_name("Hopper-v5") == "hopper"
    assert rule_name("Hopper-v5@gravity=2") == "hopper"
    assert rule_name("Pendulum-v1") == "never"
    assert rule_name("MyRobot-v0") is None
    config = mopo.Config()
    episodes = make_episodes(last="termination")
    hopper = from_episodes(episodes, DatasetInfo(name="h", env_id="Hopper-v5"))
    assert fill_from_data(config, hopper).termination == "hopper"
    unknown = from_episodes(episodes, DatasetInfo(name="u", env_id="MyRobot-v0"))
    with pytest.raises(ValueError, match="does not know where the task MyRobot-v0 terminates"):
        fill_from_data(config, unknown)
    endless = from_episodes(make_episodes(), DatasetInfo(name="e", env_id="MyRobot-v0"))
    assert fill_from_data(config, endless).termination == "never"


def test_mobile_penalty_is_the_spread_of_bellman_targets_across_elites():
    config = mobile.Config(
        hidden_dims=(8,),
        model_num_models=3,
        model_num_elites=2,
        model_hidden_dims=(8,),
        model_weight_decays=(0.0, 0.0),
        num_samples=4,
        termination="never",
    )
    rng = np.random.default_rng(0)
    batch = {"observations": jnp.zeros((1, 2)), "actions": jnp.zeros((1, 1))}
    state = mobile.init(config, batch, jax.random.PRNGKey(2))
    state = state.replace(model=state.model.replace(elites=jnp.array([2, 0], jnp.int32)))
    observations = rng.normal(size=(5, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(5, 1)).astype(np.float32)
    key = jax.random.PRNGKey(9)
    u = mobile.bellman_penalty(state, observations, actions, key, config)

    # reference: the same draws, the aggregation in NumPy
    draw_key, act_key = jax.random.split(key)
    spec = mopo.model_spec(config)
    mean, std = ensemble.distribution(spec, state.model, observations, actions)
    mean, std = np.asarray(mean)[[2, 0]], np.asarray(std)[[2, 0]]
    noise = np.asarray(jax.random.normal(draw_key, (4, *mean.shape)))
    next_obs = (mean + std * noise)[..., :-1].reshape(-1, 2)
    a_mean, a_log_std = state.actor.apply_fn(state.actor.params, next_obs)
    next_actions, _ = sample_tanh_gaussian(a_mean, a_log_std, act_key)
    q = np.asarray(state.critic.apply_fn(state.target_critic_params, next_obs, next_actions))
    q = q.min(axis=0).reshape(4, 2, 5)
    expected = q.mean(axis=0).std(axis=0, ddof=1)
    np.testing.assert_allclose(u, expected, rtol=1e-4, atol=1e-6)


def test_mopo_trains_through_the_run_loop_and_a_resume_keeps_its_model(tmp_path):
    """The fit runs once, before the first update (pretrain.json, the summary); the
    buffer starts full; a resume restores the fitted model instead of fitting again."""

    config = mopo.Config(
        hidden_dims=(16, 16),
        model_num_models=3,
        model_num_elites=2,
        model_hidden_dims=(16,),
        model_weight_decays=(1e-4, 1e-4),
        model_max_epochs=2,
        rollout_batch_size=200,
        rollout_freq=20,
        rollout_length=2,
    )
    settings = TrainConfig(steps=40, steps_per_call=20, eval_every=0, checkpoint_every=20,
                           heldout_episodes=0, seeds=(0,), progress=False)  # fmt: skip
    run_dir = tmp_path / "run"
    first = train("mopo", "suite:pendulum-mixed", run_dir, config, settings, stop_after=20)
    assert first["interrupted"] and first["pretrain"]["epochs"] == 2
    fitted = (run_dir / "pretrain.json").read_text()
    # 20 rollouts of 10 starts x 2 steps before the first update (Pendulum never ends)
    assert first["pretrain"]["buffer_rows"] == [400]
    resumed = train("mopo", "suite:pendulum-mixed", run_dir, config, settings, resume=True)
    assert resumed["steps"] == 40 and "pretrain" not in resumed
    assert (run_dir / "pretrain.json").read_text() == fitted
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # the chunk's mean over updates 21..40, each adding 10 starts x 2 steps
    assert metrics[-1]["train/model/buffer_rows"] == 400 + 20 * np.mean(np.arange(21, 41))
    assert (
        json.loads((run_dir / "config.json").read_text())["algorithm_config"]["termination"]
        == "never"
    )


def test_cem_finds_the_minimum_of_a_quadratic():
    target = jnp.asarray([[0.3, -0.6], [0.5, 0.1], [-0.2, 0.8]])  # H = 3, A = 2
    weights = jnp.asarray([1.0, 4.0])

    def cost(sequences):
        return (((sequences - target) ** 2) * weights).sum(axis=(1, 2))

    config = planning.CEMConfig(horizon=3, population=200, elites=20, iterations=12)
    plan = jax.jit(lambda key: planning.cem(cost, jnp.zeros((3, 2)), key, config))(
        jax.random.PRNGKey(0)
    )
    np.testing.assert_allclose(plan, target, atol=0.03)
    # the action box holds: a minimum outside it is met at the bound
    plan = planning.cem(lambda s: ((s - 2.0) ** 2).sum(axis=(1, 2)), jnp.zeros((3, 2)),
                        jax.random.PRNGKey(1), config)  # fmt: skip
    np.testing.assert_allclose(plan, 1.0, atol=0.03)


def test_goal_cost_follows_the_elites_mean_prediction():
    # every elite moves the state by the action (and two non-elites elsewhere)
    spec = ensemble.ModelSpec(num_models=3, num_elites=1, hidden_dims=(4,), weight_decays=(0, 0))
    model = handmade(spec, 2, 2, np.zeros((3, 3), np.float32), np.full((3, 3), -20.0, np.float32))
    # a hand-made model ignores its input: make the elite's change +0.5 in x
    members = dict(model.params["params"]["members"])
    layer = dict(members["Dense_1"])
    layer["bias"] = layer["bias"].at[0, 0].set(0.5).at[1, 0].set(-3.0).at[2, 0].set(-3.0)
    members["Dense_1"] = layer
    model = model.replace(params={"params": {**model.params["params"], "members": members}},
                          elites=jnp.asarray([0]))  # fmt: skip
    sequences = jnp.zeros((1, 4, 2))
    cost = planning.goal_cost(spec, model, jnp.zeros(2), sequences, jnp.asarray([2.0]), (0,))
    # x = 0.5, 1.0, 1.5, 2.0: distances 1.5 + 1.0 + 0.5 + 0.0
    np.testing.assert_allclose(cost, [3.0], atol=0.05)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"penalty": "nope"}, "penalty 'nope' is unknown; choose one of aleatoric"),
        ({"termination": "cheetah"}, "termination 'cheetah' is unknown"),
        ({"real_ratio": 1.5}, "real_ratio must be in"),
        ({"model_num_elites": 9}, "num_elites must be between 1 and num_models"),
        ({"model_weight_decays": (1e-4,)}, "weight_decays needs one value per layer"),
    ],
)
def test_model_based_settings_are_checked_before_any_fit(settings, message):
    for module in (mopo, mobile):
        with pytest.raises(ValueError, match=message):
            module.Config(**settings)


def test_fit_keeps_each_models_best_snapshot_and_stops_five_epochs_after_the_last_gain():
    rng = np.random.default_rng(1)
    observations = rng.normal(size=(600, 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(600, 1)).astype(np.float32)
    next_obs = np.tanh(observations + actions) + 0.3 * rng.normal(size=(600, 2))
    rewards = observations[:, 0]
    spec = ensemble.ModelSpec(num_models=3, num_elites=2, hidden_dims=(16,),
                              weight_decays=(0, 0), batch_size=32, max_epochs=400)  # fmt: skip
    history = []
    _, summary = ensemble.fit(spec, observations, actions, rewards, next_obs,
                              jnp.stack([jax.random.PRNGKey(3)]),
                              log=lambda epoch, v: history.append(v["holdout_mse"][0]))  # fmt: skip
    history = np.asarray(history, np.float64)  # [epochs, models]
    # the rule in NumPy: a model's snapshot moves on a held-out gain above 1%; stop
    # after 5 epochs in which no model gained
    best, since, stopped_at = np.full(3, 1e10), 0, None
    for epoch, losses in enumerate(history, start=1):
        gained = (best - losses) / best > 0.01
        best = np.where(gained, losses, best)
        since = 0 if gained.any() else since + 1
        if since >= 5:
            stopped_at = epoch
            break
    assert summary["epochs"] == stopped_at == len(history) < 400
    np.testing.assert_allclose(summary["holdout_mse_elites"][0], np.sort(best)[:2].mean(),
                               rtol=1e-5)  # fmt: skip


def test_mobile_target_is_penalized_and_floored_and_the_batch_mixes_data_first():
    config = mobile.Config(penalty_coef=2.0, discount=0.5, real_ratio=0.25)
    batch = {"rewards": jnp.asarray([1.0, -3.0, 2.0]), "terminations": jnp.asarray([0.0, 0.0, 1.0])}
    u, next_q = jnp.asarray([0.5, 0.1, 1.0]), jnp.asarray([4.0, 2.0, 8.0])
    np.testing.assert_allclose(
        mobile.penalized_target(batch, u, next_q, config, 0.0), [2.0, 0.0, 0.0]
    )
    np.testing.assert_allclose(
        mobile.penalized_target(batch, u, next_q, config, -jnp.inf), [2.0, -2.2, 0.0]
    )
    # 25% of an 8-row batch from the data (first), the rest from the model buffer
    buffer = rollouts.empty(20, 1, 1)
    wide = ("observations", "actions", "next_observations")
    rows = {k: jnp.full((10, 1) if k in wide else (10,), 7.0) for k in rollouts.FIELDS}
    buffer = rollouts.add(buffer, rows, jnp.ones(10, bool))
    state = types.SimpleNamespace(buffer=buffer)
    data = {k: jnp.zeros_like(v[:8]) for k, v in rows.items()} | {"rewards": jnp.zeros(8)}
    mixed, real = mopo.mixed_batch(state, data, jax.random.PRNGKey(0), config)
    assert real == 2
    np.testing.assert_array_equal(mixed["rewards"], [0, 0, 7, 7, 7, 7, 7, 7])


def test_termination_follows_the_env_id_given_and_bench_presets_resolve():
    from offrl.core.registry import preset_config

    unknown = from_episodes(make_episodes(last="termination"), DatasetInfo(name="u", env_id="X-v0"))
    assert fill_from_data(mopo.Config(), unknown, env_id="Walker2d-v5").termination == "walker2d"
    assert preset_config("mobile", "suite:hopper-medium").initial_temperature == 0.2
    assert preset_config("rebrac", "suite:hopper-medium-replay").critic_bc_coef == 0.5
    assert preset_config("iql", "suite:hopper-medium") is None  # no presets: its defaults
    assert preset_config("mopo", "suite:pendulum-mixed") is None  # no preset for the data


def test_policy_scores_count_alive_steps_until_termination_with_common_noise():
    """A model whose every member moves x by +1 and pays 1 per step: rollouts from x = 0
    end at the step that crosses x = 2.5, so 3 steps count; AM-Q is the critic's mean
    over them; two identical policies draw the same noise and score exactly alike."""
    means = np.tile(np.array([[1.0, 0.0, 1.0]], np.float32), (3, 1))
    logvars = np.full((3, 3), -10.0, np.float32)
    model = handmade(SPEC, 2, 1, means, logvars)
    gamma = 0.9
    scores = rollouts.score_policies(
        SPEC,
        model,
        lambda obs: jnp.zeros((*obs.shape[:2], 1)),
        lambda obs, act: jnp.full(obs.shape[:2], 2.0),
        jnp.zeros((2, 4, 2)),
        5,
        gamma,
        jax.random.PRNGKey(0),
        lambda obs, act, next_obs: next_obs[..., 0] > 2.5,
    )
    np.testing.assert_allclose(scores["alive_steps"], [3.0, 3.0])
    np.testing.assert_allclose(scores["amq"], [2.0, 2.0])
    np.testing.assert_allclose(scores["model_return"], 1 + gamma + gamma**2, atol=0.05)
    np.testing.assert_array_equal(scores["model_value"], scores["model_return"])  # no tail
    np.testing.assert_array_equal(scores["model_return"][0], scores["model_return"][1])
