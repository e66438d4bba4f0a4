"""Offline-to-online fine-tuning: replay mixing, Cal-QL's floor, ResFiT's start, H2O's
ratio, the dynamics-gap simulators and short runs on Pendulum."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from offrl.algos import bc, calql, cql, h2o, resfit
from offrl.cli import main
from offrl.core.trainer import example_batch
from offrl.envs.registry import make_env
from offrl.finetune import FinetuneConfig, MixedReplay, finetune, online_metrics, returns_to_go
from offrl.finetune.buffer import UNKNOWN_RETURN
from offrl.finetune.loop import evaluation_steps, resolve_config
from offrl.nn import sample_tanh_gaussian
from offrl.run.train import RunError, TrainConfig, train


def _returns_reference(rewards, terminations, starts, lengths, gamma):
    out = np.zeros(len(rewards))
    for start, length in zip(starts, lengths, strict=True):
        for t in range(start, start + length):
            total, discount = 0.0, 1.0
            for k in range(t, start + length):
                total += discount * rewards[k]
                if terminations[k]:
                    break
                discount *= gamma
            out[t] = total
    return out


def test_returns_to_go_match_a_direct_sum():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=12)
    terminations = np.zeros(12)
    terminations[6] = 1.0  # the first episode ends in a termination, the second is cut
    got = returns_to_go(rewards, terminations, [0, 7], [7, 5], 0.9)
    np.testing.assert_allclose(
        got, _returns_reference(rewards, terminations, [0, 7], [7, 5], 0.9), rtol=1e-5
    )


def _offline(n=100, obs_dim=3, act_dim=2):
    rows = {
        "observations": 1000.0
        + np.arange(n, dtype=np.float32)[:, None] * np.ones((1, obs_dim), np.float32),
        "actions": np.zeros((n, act_dim), np.float32),
        "rewards": np.ones(n, np.float32),
        "next_observations": np.zeros((n, obs_dim), np.float32),
        "terminations": np.zeros(n, np.float32),
        "truncations": np.zeros(n, np.float32),
        "mc_returns": np.full(n, 7.0, np.float32),
    }
    return rows


def _add_online(replay, seed, count):
    for i in range(count):
        replay.add(
            seed,
            observations=-np.full(3, i + 1.0),
            actions=np.zeros(2),
            rewards=2.0,
            next_observations=np.zeros(3),
            terminations=0.0,
            truncations=float(i == count - 1),
        )


def test_symmetric_mixing_takes_exactly_the_ratio_from_each_source():
    replay = MixedReplay(_offline(), 2, 500, 3, 2, offline_ratio=0.5)
    rng = np.random.default_rng(0)
    batch = replay.sample(rng, 64, count=3)
    # Before any online step, every row is offline.
    assert batch["offline"].shape == (2, 3, 64) and batch["offline"].min() == 1.0
    _add_online(replay, 0, 40)
    _add_online(replay, 1, 10)
    batch = replay.sample(rng, 64, count=5)
    assert batch["observations"].shape == (2, 5, 64, 3)
    np.testing.assert_array_equal(batch["offline"].sum(axis=-1), np.full((2, 5), 32.0))
    from_offline = batch["observations"][..., 0] >= 1000.0
    np.testing.assert_array_equal(from_offline, batch["offline"] == 1.0)
    # Online rows of seed 1 come from its own 10 steps only.
    online_values = -batch["observations"][1][batch["offline"][1] == 0][:, 0]
    assert online_values.min() >= 1.0 and online_values.max() <= 10.0
    np.testing.assert_array_equal(batch["rewards"], np.where(from_offline, 1.0, 2.0))


def test_union_mixing_samples_the_offline_share_of_the_union():
    replay = MixedReplay(_offline(100), 1, 500, 3, 2, offline_ratio=None)
    _add_online(replay, 0, 300)
    batch = replay.sample(np.random.default_rng(1), 256, count=40)
    share = batch["offline"].mean()
    assert abs(share - 100 / 400) < 0.02, share


def test_online_only_mixing_and_bad_ratios():
    replay = MixedReplay(None, 1, 10, 3, 2, offline_ratio=0.0)
    with pytest.raises(ValueError, match="no offline data"):
        replay.sample(np.random.default_rng(0), 4)
    _add_online(replay, 0, 3)
    assert replay.sample(np.random.default_rng(0), 8)["offline"].max() == 0.0
    with pytest.raises(ValueError, match="offline_ratio"):
        MixedReplay(_offline(), 1, 10, 3, 2, offline_ratio=1.5)


def test_online_returns_are_unknown_until_the_episode_ends():
    replay = MixedReplay(None, 1, 10, 3, 2, offline_ratio=0.0)
    _add_online(replay, 0, 4)
    np.testing.assert_array_equal(replay.online["mc_returns"][0, :4], UNKNOWN_RETURN)
    replay.end_episode(0, 0.5)
    np.testing.assert_allclose(replay.online["mc_returns"][0, :4], [3.75, 3.5, 3.0, 2.0])


def test_calql_floor_matches_numpy():
    config = calql.Config(hidden_dims=(8, 8), critic_hidden_dims=(8, 8), num_sampled_actions=3)
    state = calql.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    b, n = 6, config.num_sampled_actions
    batch = {
        "observations": jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, size=(b, 2)), jnp.float32),
        "rewards": jnp.asarray(rng.normal(size=b), jnp.float32),
        "next_observations": jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
        "terminations": jnp.zeros(b, jnp.float32),
    }
    floor = np.array([5.0, -1e9, 0.01, 3.0, -1e9, 0.0], np.float32)
    key = jax.random.PRNGKey(3)
    critic_loss = jax.jit(cql.critic_loss, static_argnums=(3,))
    _, (metrics, penalty) = critic_loss(
        state.critic.params, state, batch, config, key, jnp.asarray(floor)
    )
    # NumPy reference with the same sampled actions.
    _, random_key, pi_key, next_pi_key = jax.random.split(key, 4)
    obs = batch["observations"]
    repeated = jnp.broadcast_to(obs, (n, *obs.shape))
    random_actions = jax.random.uniform(random_key, (n, b, 2), minval=-1.0, maxval=1.0)
    pi_actions, pi_logp = cql._sample_repeated(state, obs, pi_key, n)
    next_actions, next_logp = cql._sample_repeated(
        state, batch["next_observations"], next_pi_key, n
    )

    def q(o, a):
        return np.asarray(state.critic.apply_fn(state.critic.params, o, a), np.float64)

    q_data = q(obs, batch["actions"])  # [E, B]
    q_rand = q(repeated, random_actions)  # [E, N, B]
    q_pi = np.maximum(q(repeated, pi_actions), floor[None, None])
    q_next = np.maximum(q(repeated, next_actions), floor[None, None])
    stacked = np.concatenate(
        [
            q_rand - 2 * np.log(0.5),
            q_pi - np.asarray(pi_logp)[None],
            q_next - np.asarray(next_logp)[None],
        ],
        axis=1,
    )
    expected = (logsumexp(stacked, axis=1) - q_data).mean(axis=1)
    np.testing.assert_allclose(np.asarray(penalty), expected, rtol=1e-4, atol=1e-4)
    # The floor of 5 lifts every sampled value of row 0, so the penalty rose.
    _, (_, plain) = critic_loss(state.critic.params, state, batch, config, key, None)
    assert np.all(np.asarray(penalty) > np.asarray(plain))
    assert 0.0 < float(metrics["critic/bound_rate"]) <= 1.0


def test_resfit_starts_as_the_base_policy():
    batch = example_batch(3, 2)
    bc_config = bc.Config(hidden_dims=(16, 16))
    base = bc.init(bc_config, batch, jax.random.PRNGKey(1))
    config = resfit.Config(hidden_dims=(16, 16), num_critics=3, noise_std=0.0, warmup_steps=0)
    state = resfit.init_from(config, batch, jax.random.PRNGKey(2), base, bc.Config())
    observations = jnp.asarray(np.random.default_rng(0).normal(size=(20, 3)) * 3, jnp.float32)
    expected = bc.act(base, observations, None, True, bc_config)
    np.testing.assert_array_equal(resfit.act(state, observations, None, True, config), expected)
    explored = resfit.explore(state, observations, jax.random.PRNGKey(0), jnp.int32(5), config)
    np.testing.assert_array_equal(explored, expected)
    # The residual is bounded by its scale however large the features get.
    params = jax.tree_util.tree_map(lambda x: x + 10.0, state.actor.params)
    residual = state.actor.apply_fn(params, observations, expected)
    assert float(jnp.abs(residual).max()) <= config.residual_scale + 1e-6


def test_h2o_dynamics_ratio_recovers_a_known_gap():
    """Real s' = s + 0.5 a + e, sim s' = s + a + e (e ~ N(0, 0.2^2)): the learned
    log P_real/P_sim tracks the true one."""
    sigma = 0.2
    rng = np.random.default_rng(0)

    def transitions(n, gain):
        s = rng.normal(size=(n, 1)).astype(np.float32)
        a = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
        s_next = (s + gain * a + sigma * rng.normal(size=(n, 1))).astype(np.float32)
        return s, a, s_next

    def true_log_ratio(s, a, s_next):
        real = -((s_next - s - 0.5 * a) ** 2) / (2 * sigma**2)
        sim = -((s_next - s - 1.0 * a) ** 2) / (2 * sigma**2)
        return (real - sim)[:, 0]

    config = h2o.Config(hidden_dims=(32, 32), gap_samples=2, discriminator_noise=0.02)
    state = h2o.init(config, example_batch(1, 1), jax.random.PRNGKey(0))
    steps, half = 1500, 128
    real = transitions(steps * half, 0.5)
    sim = transitions(steps * half, 1.0)
    stacked = {
        name: np.concatenate(
            [real[i].reshape(steps, half, 1), sim[i].reshape(steps, half, 1)], axis=1
        )
        for i, name in enumerate(("observations", "actions", "next_observations"))
    }
    stacked["rewards"] = np.zeros((steps, 2 * half), np.float32)
    stacked["terminations"] = np.zeros((steps, 2 * half), np.float32)
    stacked["offline"] = np.concatenate(
        [np.ones((steps, half)), np.zeros((steps, half))], axis=1
    ).astype(np.float32)

    @jax.jit
    def run(state, data):
        return jax.lax.scan(lambda s, b: h2o.update(s, b, config), state, data)

    state, metrics = run(state, stacked)
    assert np.all(np.isfinite(np.asarray(metrics["critic/loss"])))
    test_real = transitions(2000, 0.5)
    test_sim = transitions(2000, 1.0)
    for s, a, s_next in (test_real, test_sim):
        learned = np.asarray(h2o.log_dynamics_ratio(state, s, a, s_next))
        truth = true_log_ratio(s, a, s_next)
        assert np.corrcoef(learned, truth)[0, 1] > 0.8
    real_mean = np.asarray(h2o.log_dynamics_ratio(state, *test_real)).mean()
    sim_mean = np.asarray(h2o.log_dynamics_ratio(state, *test_sim)).mean()
    assert real_mean > 0.3 and sim_mean < -0.3, (real_mean, sim_mean)


def test_dynamics_gap_environments():
    env = make_env("Pendulum-v1@gravity=2")
    assert env.unwrapped.g == pytest.approx(20.0)
    env.close()
    env = make_env("Hopper-v5@gravity=2,friction=0.5")
    base = make_env("Hopper-v5")
    np.testing.assert_allclose(
        env.unwrapped.model.opt.gravity, 2 * base.unwrapped.model.opt.gravity
    )
    np.testing.assert_allclose(
        env.unwrapped.model.geom_friction[:, 0], 0.5 * base.unwrapped.model.geom_friction[:, 0]
    )
    assert env.spec.max_episode_steps == 1000
    with pytest.raises(ValueError, match="name=value"):
        make_env("Hopper-v5@mass=2")
    with pytest.raises(ValueError, match="no friction"):
        make_env("Pendulum-v1@friction=2")


def test_online_metrics_drop_and_regret():
    steps = [0, 10, 20, 100, 200]
    scores = np.array([[50.0, 40.0], [30.0, 45.0], [45.0, 38.0], [70.0, 60.0], [90.0, 80.0]])
    out = online_metrics(steps, scores, 200, episode_scores=[[50.0, 150.0], [0.0, -10.0]])
    assert out["offline_per_seed"] == [50.0, 40.0]
    assert "final_per_seed" not in out  # final and best: rundir.score_summary, held out
    assert out["initial_drop_per_seed"] == [20.0, 2.0]  # min over steps 10 and 20 only
    assert out["regret_per_seed"] == [0.25, 1.0] and out["regret_kind"] == "normalized_return"
    success = online_metrics(steps, scores, 200, episode_successes=[[1, 0, 0, 1], [0, 0]])
    assert success["regret_per_seed"] == [0.5, 1.0] and success["regret_kind"] == "success"
    assert "return_regret_per_seed" not in success
    both = online_metrics(
        steps,
        scores,
        200,
        episode_scores=[[50.0, 150.0], [0.0, -10.0]],
        episode_successes=[[1, 1], [1, 1]],
    )
    # Every episode succeeded: success regret 0; the return regret still tells them apart.
    assert both["regret_per_seed"] == [0.0, 0.0] and both["regret_kind"] == "success"
    assert both["return_regret_per_seed"] == [0.25, 1.0]


def test_evaluation_schedule_is_dense_early():
    config = resolve_config(calql, FinetuneConfig(online_steps=1000, eval_every=500))
    assert evaluation_steps(config) == [0, 25, 50, 75, 100, 500, 1000]
    assert config.utd == 1 and config.learning_starts == 0
    assert resolve_config(resfit, FinetuneConfig()).utd == 4


@pytest.fixture(scope="module")
def pendulum_iql(tmp_path_factory):
    from offrl.algos import iql

    run = tmp_path_factory.mktemp("ft") / "iql"
    train(
        "iql",
        "suite:pendulum-mixed",
        run,
        iql.Config(hidden_dims=(64, 64)),
        TrainConfig(
            heldout_episodes=10,
            seeds=(0, 1),
            steps=1000,
            eval_every=1000,
            eval_episodes=5,
            checkpoint_every=1000,
            progress=False,
        ),
    )
    return run


def test_iql_finetuning_on_pendulum_improves_on_its_offline_start(pendulum_iql, tmp_path):
    config = FinetuneConfig(
        heldout_episodes=10,
        online_steps=2000,
        eval_every=1000,
        eval_episodes=5,
        checkpoint_every=1000,
        batch_size=64,
        progress=False,
    )
    summary = finetune("iql", tmp_path / "ft", config, from_run=pendulum_iql)
    assert summary["mixing"] == "union" and summary["online_steps"] == 2000
    assert summary["final_mean"] > summary["offline_mean"] + 30.0, summary
    assert summary["final_mean"] > 50.0
    metrics = [
        json.loads(line) for line in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()
    ]
    assert metrics[0]["step"] == 0 and "train/critic/loss" in metrics[-1]
    assert len(summary["initial_drop_per_seed"]) == 2


def test_finetune_resume_and_errors(pendulum_iql, tmp_path):
    config = FinetuneConfig(
        heldout_episodes=10,
        online_steps=400,
        eval_every=200,
        eval_episodes=2,
        checkpoint_every=200,
        batch_size=32,
        early_evaluations=1,
        progress=False,
    )
    first = finetune("iql", tmp_path / "ft", config, from_run=pendulum_iql, stop_after=200)
    assert first["interrupted"] and first["online_steps"] == 200
    with pytest.raises(RunError, match="already exists"):
        finetune("iql", tmp_path / "ft", config, from_run=pendulum_iql)
    other = dataclasses.replace(config, utd=2)
    with pytest.raises(RunError, match="differs"):
        finetune("iql", tmp_path / "ft", other, from_run=pendulum_iql, resume=True)
    done = finetune("iql", tmp_path / "ft", config, from_run=pendulum_iql, resume=True)
    assert not done["interrupted"] and done["online_steps"] == 400
    assert [e["step"] for e in done["evaluations"]] == [0, 40, 200, 400]
    # The wall time adds the first process's (up to its checkpoint) to the resumed one's.
    assert first["resumed_at_step"] == 0 and done["resumed_at_step"] == 200
    assert first["wall_seconds"] == pytest.approx(first["wall_seconds_this_process"], abs=1.0)
    assert done["wall_seconds"] > done["wall_seconds_this_process"] + 0.5 * first["wall_seconds"]
    with pytest.raises(RunError, match="starts from a run of resfit or bc"):
        finetune("resfit", tmp_path / "res", config, from_run=pendulum_iql)
    with pytest.raises(RunError, match="--from RUN_DIR"):
        finetune("rlpd", tmp_path / "rlpd", config)


def test_cli_finetune_from_a_bc_run_with_resfit(tmp_path, capsys):
    main(
        [
            "train",
            "bc",
            "--dataset",
            "suite:pendulum-mixed",
            "--run-dir",
            str(tmp_path / "bc"),
            "--seeds",
            "0",
            "--steps",
            "300",
            "--eval-every",
            "300",
            "--eval-episodes",
            "2",
            "--checkpoint-every",
            "300",
            "--hidden-dims",
            "32",
            "32",
            "--no-progress",
        ]
    )
    capsys.readouterr()
    main(
        [
            "finetune",
            "resfit",
            "--from",
            str(tmp_path / "bc"),
            "--run-dir",
            str(tmp_path / "res"),
            "--online-steps",
            "300",
            "--eval-every",
            "300",
            "--eval-episodes",
            "2",
            "--early-evaluations",
            "1",
            "--batch-size",
            "32",
            "--learning-starts",
            "100",
            "--hidden-dims",
            "32",
            "32",
            "--num-critics",
            "2",
            "--critic-warmup",
            "50",
            "--warmup-steps",
            "100",
            "--no-progress",
        ]
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["run_dir"] == str(tmp_path / "res")
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["from_algorithm"] == "bc" and summary["utd"] == 4
    # The fine-tuned run is a run like any other: it loads and acts.
    from offrl.evaluate.policy import load_policy

    policy, _ = load_policy(tmp_path / "res")
    actions = policy(np.zeros((1, 4, 3), np.float32), jax.random.PRNGKey(0))
    assert np.asarray(actions).shape == (1, 4, 1)
    with pytest.raises(SystemExit):
        main(["finetune", "bc", "--from", str(tmp_path / "bc")])
    with pytest.raises(SystemExit):
        main(["finetune", "iql", "--from", str(tmp_path / "bc"), "--run-dir", str(tmp_path / "x")])


def _h2o_batch(rng, b_real=5, b_sim=4):
    b = b_real + b_sim
    return {
        "observations": jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, size=(b, 2)), jnp.float32),
        "rewards": jnp.asarray(rng.normal(size=b), jnp.float32),
        "next_observations": jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
        "terminations": jnp.asarray([0, 1, 0, 0, 0, 0, 1, 0, 0][:b], jnp.float32),
        "offline": jnp.asarray([1.0] * b_real + [0.0] * b_sim, jnp.float32),
    }


def test_h2o_critic_loss_and_dynamics_gap_match_numpy():
    """H2O's critic loss written out in NumPy from the networks' outputs: the real TD
    error, the sim TD error weighted by sqrt(clip(ratio)), and the penalty
    0.01 * (logsumexp_sim(Q + log omega) - E_real Q) with omega from the dynamics
    gap u over perturbed next states. Discriminators far from chance (scaled
    weights) make the sim weights differ from 1, so dropping them is caught."""
    config = h2o.Config(hidden_dims=(8, 8), gap_samples=3)
    state = h2o.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
    scale = lambda p: jax.tree_util.tree_map(lambda x: -2.0 * x, p)  # noqa: E731
    state = state.replace(
        d_sa=state.d_sa.replace(params=scale(state.d_sa.params)),
        d_sas=state.d_sas.replace(params=scale(state.d_sas.params)),
    )
    batch = _h2o_batch(np.random.default_rng(1))
    key = jax.random.PRNGKey(7)
    loss, metrics = jax.jit(h2o.critic_loss, static_argnums=(3,))(
        state.critic.params, state, batch, config, key
    )

    target_key, gap_key = jax.random.split(key)
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["next_observations"])
    next_actions, _ = sample_tanh_gaussian(mean, log_std, target_key)
    q_next = np.asarray(
        state.critic.apply_fn(state.target_critic_params, batch["next_observations"], next_actions),
        np.float64,
    ).min(axis=0)
    r, d = np.asarray(batch["rewards"], np.float64), np.asarray(batch["terminations"])
    y = r + 0.99 * (1 - d) * q_next
    q = np.asarray(
        state.critic.apply_fn(state.critic.params, batch["observations"], batch["actions"]),
        np.float64,
    )  # [E, B]
    real = np.asarray(batch["offline"]) > 0
    sim = ~real
    s, a, s_next = (np.asarray(batch[k]) for k in ("observations", "actions", "next_observations"))
    ratio = np.exp(np.asarray(h2o.log_dynamics_ratio(state, s, a, s_next), np.float64))
    w = np.sqrt(np.clip(ratio, config.ratio_min, config.ratio_max))
    assert np.abs(w[sim] - 1.0).max() > 0.1  # the weights matter in this batch
    real_td = ((q - y) ** 2)[:, real].mean(axis=1)
    sim_td = ((w * q - w * y) ** 2)[:, sim].mean(axis=1)
    noise = config.gap_noise * np.asarray(jax.random.normal(gap_key, (3, *s_next.shape)))
    perturbed = [
        np.asarray(h2o.log_dynamics_ratio(state, s, a, s_next + noise[j]), np.float64)
        for j in range(3)
    ]
    u = np.clip(-np.mean(perturbed, axis=0), config.gap_min, config.gap_max)
    omega = u[sim] / u[sim].sum()
    gap = logsumexp(q[:, sim] + np.log(omega)[None], axis=1)
    penalty = np.clip(gap - q[:, real].mean(axis=1), -1000, 1000)
    expected = (real_td + sim_td + 0.01 * penalty).sum()
    np.testing.assert_allclose(float(metrics["critic/real_td"]), real_td.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["critic/sim_td"]), sim_td.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["critic/penalty"]), penalty.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["critic/gap_sim"]), u[sim].mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert abs(0.01 * penalty.sum()) > 1e-4 * abs(expected)  # the penalty is visible


def test_calql_update_takes_its_floor_from_the_batch():
    """Cal-QL's update floors CQL's penalty at the batch's returns-to-go: it equals
    CQL's update given that floor, and differs from CQL's update without one (and
    from Cal-QL with calibrated=False, which is CQL)."""
    config = calql.Config(hidden_dims=(8, 8), critic_hidden_dims=(8, 8), num_sampled_actions=3)
    state = calql.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
    rng = np.random.default_rng(2)
    b = 6
    batch = {
        "observations": jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, size=(b, 2)), jnp.float32),
        "rewards": jnp.asarray(rng.normal(size=b), jnp.float32),
        "next_observations": jnp.asarray(rng.normal(size=(b, 3)), jnp.float32),
        "terminations": jnp.zeros(b, jnp.float32),
        "truncations": jnp.zeros(b, jnp.float32),
        "mc_returns": jnp.asarray([5.0, 4.0, -1e9, 3.0, 6.0, 2.0], jnp.float32),
    }
    update = jax.jit(calql.update, static_argnums=(2,))
    cql_update = jax.jit(cql.update, static_argnums=(2,))
    floored, metrics = update(state, batch, config)
    explicit, explicit_metrics = cql_update(state, batch, config, batch["mc_returns"])
    plain, plain_metrics = cql_update(state, batch, config, None)
    off, off_metrics = update(state, batch, dataclasses.replace(config, calibrated=False))
    assert float(metrics["critic/bound_rate"]) > 0.5
    assert float(metrics["critic/cql_penalty"]) == float(explicit_metrics["critic/cql_penalty"])
    assert float(metrics["critic/cql_penalty"]) > float(plain_metrics["critic/cql_penalty"])
    assert float(off_metrics["critic/cql_penalty"]) == float(plain_metrics["critic/cql_penalty"])
    for x, y in zip(
        jax.tree_util.tree_leaves(floored.critic.params),
        jax.tree_util.tree_leaves(explicit.critic.params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert any(
        not np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(
            jax.tree_util.tree_leaves(floored.critic.params),
            jax.tree_util.tree_leaves(plain.critic.params),
            strict=True,
        )
    )
