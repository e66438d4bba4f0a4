"""Each loss against a NumPy reference on a hand-made batch."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from conftest import make_episodes

from offrl.algos import bc, cql, iql, sac, td3_bc
from offrl.core.state import scalar_state, update_if
from offrl.data import DatasetInfo, from_episodes
from offrl.nn import gaussian_log_prob, tanh_gaussian_log_prob


def batch(seed=0, size=6, obs_dim=3, act_dim=2):
    rng = np.random.default_rng(seed)
    return {
        "observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-0.9, 0.9, size=(size, act_dim)), jnp.float32),
        "rewards": jnp.asarray(rng.normal(size=size), jnp.float32),
        "next_observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
        "terminations": jnp.asarray([0, 1, 0, 0, 1, 0][:size], jnp.float32),
        "truncations": jnp.zeros(size, jnp.float32),
    }


def np64(x):
    return np.asarray(x, np.float64)


# ---------------------------------------------------------------------------- shared
def test_update_if_skips_with_zero_metrics_and_state_unchanged():
    def step(x):
        return x + 1.0, {"loss": x * 2.0, "count": jnp.ones(3, jnp.int32)}

    run = jax.jit(lambda do, x: update_if(do, step, x))
    x, metrics = run(jnp.asarray(True), jnp.float32(2.0))
    assert float(x) == 3.0 and float(metrics["loss"]) == 4.0
    x, metrics = run(jnp.asarray(False), jnp.float32(2.0))
    assert float(x) == 2.0 and float(metrics["loss"]) == 0.0
    assert metrics["count"].dtype == jnp.int32 and metrics["count"].shape == (3,)
    assert not metrics["count"].any()


def test_td3_bc_updates_the_actor_every_policy_frequency_updates():
    config = td3_bc.Config(hidden_dims=(8, 8), policy_frequency=2)
    data = batch()
    state = td3_bc.init(config, data, jax.random.PRNGKey(0))
    valid = []
    for _ in range(4):
        before = state.actor.params
        state, metrics = td3_bc.update(state, data, config)
        leaves = zip(
            jax.tree_util.tree_leaves(before),
            jax.tree_util.tree_leaves(state.actor.params),
            strict=True,
        )
        changed = any(not np.array_equal(a, b) for a, b in leaves)
        valid.append(float(metrics["_valid/actor"]))
        assert changed == bool(valid[-1])
        if not valid[-1]:
            assert float(metrics["actor/loss"]) == 0.0
    assert valid == [1.0, 0.0, 1.0, 0.0]


def test_scalar_state_learns_its_value():
    state = scalar_state(np.log(0.5), 0.1)
    assert math.isclose(float(state.params["value"]), math.log(0.5), rel_tol=1e-6)
    grads = jax.grad(lambda p: (p["value"] - 1.0) ** 2)(state.params)
    moved = state.apply_gradients(grads=grads)
    # Adam's first step moves by the learning rate towards the minimum.
    assert math.isclose(float(moved.params["value"]), math.log(0.5) + 0.1, rel_tol=1e-4)


# ---------------------------------------------------------------------------- TD3+BC
def test_td3_bc_actor_loss_is_normalized():
    config = td3_bc.Config(hidden_dims=(8, 8))
    b = batch()
    state = td3_bc.init(config, b, jax.random.PRNGKey(0))
    loss, metrics = td3_bc.actor_loss(state.actor.params, state, b, config)
    pi = np64(state.actor.apply_fn(state.actor.params, b["observations"]))
    q = np64(
        state.critic.apply_fn(state.critic.params, b["observations"], jnp.asarray(pi, jnp.float32))[
            0
        ]
    )
    lam = 2.5 / np.abs(q).mean()
    expected = -lam * q.mean() + ((pi - np64(b["actions"])) ** 2).mean()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["actor/lambda"]), lam, rtol=1e-5)


def test_td3_bc_critic_target_without_noise():
    config = td3_bc.Config(hidden_dims=(8, 8), policy_noise=0.0)
    b = batch()
    state = td3_bc.init(config, b, jax.random.PRNGKey(1))
    loss, _ = td3_bc.critic_loss(state.critic.params, state, b, config, jax.random.PRNGKey(2))
    next_a = state.actor.apply_fn(state.target_actor_params, b["next_observations"])
    next_q = np64(
        state.critic.apply_fn(state.target_critic_params, b["next_observations"], next_a)
    ).min(0)
    y = np64(b["rewards"]) + 0.99 * (1 - np64(b["terminations"])) * next_q
    q = np64(state.critic.apply_fn(state.critic.params, b["observations"], b["actions"]))
    np.testing.assert_allclose(float(loss), ((q - y) ** 2).mean(1).sum(), rtol=1e-5)


# ------------------------------------------------------------------------------- IQL
def test_iql_expectile_loss_reference():
    diff = np.array([-2.0, -0.5, 0.0, 0.3, 1.5])
    tau = 0.7
    expected = np.where(diff < 0, 1 - tau, tau) * diff**2
    np.testing.assert_allclose(iql.expectile_loss(jnp.asarray(diff), tau), expected, rtol=1e-6)


def test_iql_advantage_weights_reference():
    q = np.array([1.0, 2.0, 10.0, -1.0])
    v = np.array([0.5, 2.5, 0.0, 0.0])
    expected = np.minimum(np.exp(3.0 * (q - v)), 100.0)
    np.testing.assert_allclose(
        iql.advantage_weights(jnp.asarray(q), jnp.asarray(v), 3.0, 100.0), expected, rtol=1e-5
    )


def test_iql_losses_against_networks():
    config = iql.Config(hidden_dims=(8, 8))
    b = batch()
    state = iql.init(config, b, jax.random.PRNGKey(0))
    q = np64(
        state.critic.apply_fn(state.target_critic_params, b["observations"], b["actions"])
    ).min(0)
    v = np64(state.value.apply_fn(state.value.params, b["observations"]))
    loss, _ = iql.value_loss(state.value.params, state, b, config)
    diff = q - v
    np.testing.assert_allclose(
        float(loss), (np.where(diff < 0, 0.3, 0.7) * diff**2).mean(), rtol=1e-5
    )
    loss, _ = iql.actor_loss(state.actor.params, state, b, config, jax.random.PRNGKey(0))
    mean, log_std = (np64(x) for x in state.actor.apply_fn(state.actor.params, b["observations"]))
    a = np64(b["actions"])
    log_prob = (
        -0.5 * ((a - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    ).sum(1)
    weights = np.minimum(np.exp(3.0 * diff), 100.0)
    np.testing.assert_allclose(float(loss), -(weights * log_prob).mean(), rtol=1e-5)
    loss, _ = iql.critic_loss(state.critic.params, state, b, config)
    next_v = np64(state.value.apply_fn(state.value.params, b["next_observations"]))
    y = np64(b["rewards"]) + 0.99 * (1 - np64(b["terminations"])) * next_v
    q_all = np64(state.critic.apply_fn(state.critic.params, b["observations"], b["actions"]))
    np.testing.assert_allclose(float(loss), ((q_all - y) ** 2).mean(1).sum(), rtol=1e-5)


# ------------------------------------------------------------------------------- CQL
def test_cql_logsumexp_penalty_reference():
    rng = np.random.default_rng(0)
    e, n, b_, a_dim, temp = 2, 4, 5, 3, 0.7
    q_rand, q_pi, q_next = (rng.normal(size=(e, n, b_)) for _ in range(3))
    lp_pi, lp_next = rng.normal(size=(n, b_)), rng.normal(size=(n, b_))
    q_data = rng.normal(size=(e, b_))
    got = cql.logsumexp_penalty(
        *(jnp.asarray(x) for x in (q_rand, q_pi, lp_pi, q_next, lp_next, q_data)), a_dim, temp
    )
    cat = (
        np.concatenate(
            [q_rand - a_dim * np.log(0.5), q_pi - lp_pi[None], q_next - lp_next[None]], axis=1
        )
        / temp
    )
    m = cat.max(axis=1, keepdims=True)
    lse = temp * (np.log(np.exp(cat - m).sum(axis=1)) + m[:, 0])
    np.testing.assert_allclose(np.asarray(got), (lse - q_data).mean(axis=1), rtol=1e-5)


def test_cql_penalty_pushes_down_out_of_distribution_q():
    """The gradient of the penalty lowers Q on sampled actions and raises it on data."""
    config = cql.Config(hidden_dims=(16, 16), cql_alpha=1.0)
    b = batch()
    state = cql.init(config, b, jax.random.PRNGKey(0))
    (_, (metrics, penalty)) = cql.critic_loss(
        state.critic.params, state, b, config, jax.random.PRNGKey(1)
    )
    assert penalty.shape == (2,) and np.all(np.isfinite(penalty))
    # With equal Q everywhere the penalty is T*log(3N) - log-density terms: positive.
    assert float(metrics["critic/cql_penalty"]) > 0

    # Training with the penalty opens a gap between the data's actions and actions
    # the data does not hold, against the same training without it (TD loss only):
    # Q(s, a_data) - Q(s, a_uniform) must end far higher.
    import dataclasses

    import optax

    rng = np.random.default_rng(3)
    b = dict(batch(seed=3, size=64), terminations=jnp.zeros(64, jnp.float32))
    ood = jnp.asarray(rng.uniform(-1, 1, size=b["actions"].shape), jnp.float32)
    optimizer = optax.adam(1e-2)

    def trained_gap(alpha: float) -> float:
        cfg = dataclasses.replace(config, cql_alpha=alpha)

        @jax.jit
        def step(params, opt_state, key):
            grads = jax.grad(lambda p: cql.critic_loss(p, state, b, cfg, key)[0])(params)
            updates, opt_state = optimizer.update(grads, opt_state)
            return optax.apply_updates(params, updates), opt_state

        params = state.critic.params
        opt_state = optimizer.init(params)
        for key in jax.random.split(jax.random.PRNGKey(2), 200):
            params, opt_state = step(params, opt_state, key)
        q_data = state.critic.apply_fn(params, b["observations"], b["actions"]).mean()
        q_ood = state.critic.apply_fn(params, b["observations"], ood).mean()
        return float(q_data - q_ood)

    with_penalty, without = trained_gap(5.0), trained_gap(0.0)
    assert with_penalty > without + 1.0, (with_penalty, without)


# ------------------------------------------------------------------------------- SAC
def test_sac_temperature_loss_reference():
    log_prob = np.array([-1.0, 0.5, -2.0, 0.1])
    log_alpha, target = 0.3, -2.0
    expected = -log_alpha * (log_prob + target).mean()
    got = sac.temperature_loss(jnp.asarray(log_alpha), jnp.asarray(log_prob), target)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)
    grad = jax.grad(sac.temperature_loss)(jnp.asarray(log_alpha), jnp.asarray(log_prob), target)
    np.testing.assert_allclose(float(grad), -(log_prob + target).mean(), rtol=1e-6)


def test_sac_critic_target_reference():
    config = sac.Config(hidden_dims=(8, 8))
    b = batch()
    state = sac.init(config, b, jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(5)
    loss, _ = sac.critic_loss(state.critic.params, state, b, config, key)
    mean, log_std = state.actor.apply_fn(state.actor.params, b["next_observations"])
    pre = np64(mean) + np.exp(np64(log_std)) * np64(jax.random.normal(key, mean.shape))
    a = np.tanh(pre)
    log_prob = (
        -0.5 * ((pre - np64(mean)) / np.exp(np64(log_std))) ** 2
        - np64(log_std)
        - 0.5 * math.log(2 * math.pi)
    ).sum(1) - np.log(1 - a**2 + 1e-12).sum(1)
    next_q = np64(
        state.critic.apply_fn(
            state.target_critic_params, b["next_observations"], jnp.asarray(a, jnp.float32)
        )
    ).min(0)
    y = np64(b["rewards"]) + 0.99 * (1 - np64(b["terminations"])) * (next_q - 1.0 * log_prob)
    q = np64(state.critic.apply_fn(state.critic.params, b["observations"], b["actions"]))
    np.testing.assert_allclose(float(loss), ((q - y) ** 2).mean(1).sum(), rtol=1e-4)


# -------------------------------------------------------------------------------- BC
def test_bc_losses_reference():
    b = batch()
    config = bc.Config(hidden_dims=(8,))
    state = bc.init(config, b, jax.random.PRNGKey(0))
    loss, _ = bc.mse_loss(state.actor.params, state, b, config, jax.random.PRNGKey(0))
    pi = np64(state.actor.apply_fn(state.actor.params, b["observations"]))
    np.testing.assert_allclose(float(loss), ((pi - np64(b["actions"])) ** 2).mean(), rtol=1e-5)
    config = bc.Config(hidden_dims=(8,), policy="gaussian")
    state = bc.init(config, b, jax.random.PRNGKey(0))
    loss, _ = bc.nll_loss(state.actor.params, state, b, config, jax.random.PRNGKey(0))
    mean, log_std = (np64(x) for x in state.actor.apply_fn(state.actor.params, b["observations"]))
    a = np64(b["actions"])
    u = np.arctanh(a)
    log_prob = (
        -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    ).sum(1) - np.log(1 - a**2).sum(1)
    np.testing.assert_allclose(float(loss), -log_prob.mean(), rtol=1e-4)


def test_gaussian_log_probs_reference():
    rng = np.random.default_rng(0)
    mean, log_std = rng.normal(size=(4, 2)), rng.normal(size=(4, 2)) * 0.3
    x = rng.normal(size=(4, 2))
    expected = (
        -0.5 * ((x - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    ).sum(1)
    np.testing.assert_allclose(gaussian_log_prob(mean, log_std, x), expected, rtol=1e-5)
    a = np.tanh(x)
    np.testing.assert_allclose(
        tanh_gaussian_log_prob(mean, log_std, a), expected - np.log(1 - a**2).sum(1), rtol=1e-4
    )


# ---------------------------------------------------------------------------- RLPD
def test_rlpd_critic_target_is_the_min_over_a_random_pair_of_ten():
    """RLPD's target: r + gamma (1 - d) (min over 2 random critics of 10 - alpha log pi).
    The NumPy loss is computed for each of the 45 pairs; the update's loss is exactly
    one of them, and over many keys every pair is drawn (the subset is random)."""
    import itertools

    from offrl.algos import rlpd
    from offrl.core.trainer import example_batch
    from offrl.nn import sample_tanh_gaussian

    config = rlpd.Config(hidden_dims=(8, 8))
    assert config.num_critics == 10 and config.num_min_critics == 2
    state = rlpd.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
    data = batch(1)
    key = jax.random.PRNGKey(4)
    loss, _ = jax.jit(rlpd.critic_loss, static_argnums=(3,))(
        state.critic.params, state, data, config, key
    )
    sample_key, _ = jax.random.split(key)
    mean, log_std = state.actor.apply_fn(state.actor.params, data["next_observations"])
    next_actions, next_log_prob = sample_tanh_gaussian(mean, log_std, sample_key)
    next_q = np64(
        state.critic.apply_fn(state.target_critic_params, data["next_observations"], next_actions)
    )
    alpha = math.exp(float(state.log_alpha.params["value"]))
    q = np64(state.critic.apply_fn(state.critic.params, data["observations"], data["actions"]))
    r, d = np64(data["rewards"]), np64(data["terminations"])
    losses = {}
    for pair in itertools.combinations(range(10), 2):
        soft = next_q[list(pair)].min(axis=0)
        if config.backup_entropy:
            soft = soft - alpha * np64(next_log_prob)
        target = r + config.discount * (1 - d) * soft
        losses[pair] = ((q - target) ** 2).mean(axis=1).sum()
    matches = [p for p, v in losses.items() if abs(v - float(loss)) <= 1e-5 * abs(v)]
    assert len(matches) == 1, (float(loss), sorted(losses.values())[:3])
    drawn = set()
    values = jnp.asarray(np.arange(10.0)[:, None] + np.zeros((10, 1)))  # member i has value i
    for i in range(300):
        low = float(rlpd.subset_min(values, jax.random.PRNGKey(i), 2)[0])
        drawn.add(low)
    assert drawn == set(range(9))  # min of a pair: every member but the largest
    np.testing.assert_array_equal(rlpd.subset_min(values, jax.random.PRNGKey(0), 10), [0.0])


# ---------------------------------------------------------------------------- ResFiT
def _resfit_state(config):
    from offrl.algos import resfit
    from offrl.core.trainer import example_batch

    example = example_batch(3, 2)
    base_config = bc.Config(hidden_dims=(8,))
    base = bc.init(base_config, example, jax.random.PRNGKey(1))
    config = resfit.config_for_base(config, base_config)
    return config, resfit.init_from(config, example, jax.random.PRNGKey(2), base, base_config)


def test_resfit_losses_match_numpy():
    """Critic: y = r + gamma (1 - d) min_i Q_targ_i(s', clip(b(s') + r_targ(s', b(s')))),
    noise 0, all critics in the min; actor: -E Q(s, clip(b(s) + r(s, b(s))))."""
    from offrl.algos import resfit

    config, state = _resfit_state(
        resfit.Config(hidden_dims=(8, 8), num_critics=3, num_min_critics=3, noise_std=0.0)
    )
    data = batch(2)
    loss, _ = resfit.critic_loss(state.critic.params, state, data, config, jax.random.PRNGKey(0))
    base_config = bc.Config(hidden_dims=(8,))

    def base(obs):
        return np64(bc.act(state.base, obs, None, True, base_config))

    next_obs = data["next_observations"]
    b_next = base(next_obs)
    r_next = np64(state.actor.apply_fn(state.target_actor_params, next_obs, b_next))
    a_next = np.clip(b_next + r_next, -1, 1).astype(np.float32)
    q_next = np64(state.critic.apply_fn(state.target_critic_params, next_obs, a_next)).min(0)
    target = np64(data["rewards"]) + 0.99 * (1 - np64(data["terminations"])) * q_next
    q = np64(state.critic.apply_fn(state.critic.params, data["observations"], data["actions"]))
    np.testing.assert_allclose(float(loss), ((q - target) ** 2).mean(axis=1).sum(), rtol=1e-5)

    actor_loss, _ = resfit.actor_loss(state.actor.params, state, data, config)
    b = base(data["observations"])
    residual = np64(state.actor.apply_fn(state.actor.params, data["observations"], b))
    a = np.clip(b + residual, -1, 1).astype(np.float32)
    q_pi = np64(state.critic.apply_fn(state.critic.params, data["observations"], a))
    np.testing.assert_allclose(float(actor_loss), -q_pi.mean(), rtol=1e-5)


def test_resfit_keeps_its_base_frozen_and_its_actor_still_until_the_warmup_ends():
    from offrl.algos import resfit

    config, state = _resfit_state(
        resfit.Config(hidden_dims=(8, 8), num_critics=2, num_min_critics=2, critic_warmup=3)
    )
    update = jax.jit(resfit.update, static_argnums=(2,))
    data = batch(3)
    history = [state]
    for _ in range(4):
        state, metrics = update(state, data, config)
        history.append(state)

    def same(a, b):
        return all(
            np.array_equal(np.asarray(x), np.asarray(y))
            for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
        )

    assert all(same(s.base, history[0].base) for s in history)  # the base never moves
    assert not same(history[1].critic.params, history[0].critic.params)  # critics learn at once
    actors = [s.actor.params for s in history]
    assert same(actors[3], actors[0])  # steps 0, 1, 2: the critic warm-up
    assert not same(actors[4], actors[3])  # step 3: the first actor update
    assert float(metrics["_valid/actor"]) == 1.0


# ---------------------------------------------------------------------------- CQL-Lagrange
def test_cql_lagrange_weight_and_its_dual_step_match_numpy():
    """With lagrange=True the critic loss is td + sum_i alpha' alpha_cql (penalty_i - gap),
    and alpha' = exp(log alpha') takes one Adam step up when the penalty exceeds the
    gap (down otherwise): the first Adam step moves log alpha' by the learning rate."""
    from offrl.core.trainer import example_batch

    for gap, direction in ((-50.0, 1.0), (50.0, -1.0)):
        config = cql.Config(
            hidden_dims=(8, 8), num_sampled_actions=3, lagrange=True, target_action_gap=gap
        )
        state = cql.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
        log_prime = math.log(2.5)
        state = state.replace(
            log_alpha_prime=scalar_state(log_prime, config.temperature_learning_rate)
        )
        data = batch(4)
        loss, (metrics, penalty) = cql.critic_loss(
            state.critic.params, state, data, config, jax.random.PRNGKey(1)
        )
        expected = (
            float(metrics["critic/td_loss"])
            + (2.5 * config.cql_alpha * (np64(penalty) - gap)).sum()
        )
        np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
        np.testing.assert_allclose(float(metrics["critic/alpha_prime"]), 2.5, rtol=1e-6)
        updated, update_metrics = cql.update(state, data, config)
        moved = float(updated.log_alpha_prime.params["value"]) - log_prime
        np.testing.assert_allclose(moved, direction * config.temperature_learning_rate, rtol=1e-3)


def test_metrics_count_only_the_updates_that_measured_them():
    """masked_sums / finish_means: a group's metrics count only where its _valid flag is
    1 (TD3's delayed actor), NaN where they never did; other groups count every update."""
    from offrl.core.trainer import finish_means, masked_sums

    updates = [
        {"critic/loss": 1.0, "actor/loss": 7.0, "_valid/actor": 0.0},
        {"critic/loss": 3.0, "actor/loss": 4.0, "_valid/actor": 1.0},
        {"critic/loss": 5.0, "actor/loss": 9.0, "_valid/actor": 0.0},
        {"critic/loss": 7.0, "actor/loss": 2.0, "_valid/actor": 1.0},
    ]
    sums = counts = None
    for metrics in updates:
        s, c = masked_sums({k: jnp.float32(v) for k, v in metrics.items()})
        sums = s if sums is None else {k: sums[k] + s[k] for k in s}
        counts = c if counts is None else {k: counts[k] + c[k] for k in c}
    means = finish_means(sums, counts)
    assert set(means) == {"critic/loss", "actor/loss"}
    assert float(means["critic/loss"]) == 4.0  # (1 + 3 + 5 + 7) / 4
    assert float(means["actor/loss"]) == 3.0  # (4 + 2) / 2: the updates that ran
    never = finish_means(*masked_sums({"actor/loss": jnp.float32(7.0), "_valid/actor": 0.0}))
    assert np.isnan(float(never["actor/loss"]))


# ----------------------------------------------------------------------------- ReBRAC
def test_rebrac_losses_match_numpy():
    """Actor: beta_a * sum-of-squares BC minus the min-Q over its batch mean |min-Q|;
    critic: the target's min-Q minus beta_c times the squared distance of the target
    action to the dataset's next action (without smoothing noise)."""
    from offrl.algos import rebrac

    config = rebrac.Config(
        hidden_dims=(8, 8, 8), policy_noise=0.0, actor_bc_coef=0.3, critic_bc_coef=0.7
    )
    b = batch()
    b["next_actions"] = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (6, 2)), jnp.float32)
    state = rebrac.init(config, b, jax.random.PRNGKey(0))
    loss, metrics = rebrac.actor_loss(state.actor.params, state, b, config)
    pi = np64(state.actor.apply_fn(state.actor.params, b["observations"]))
    q = np64(
        state.critic.apply_fn(state.critic.params, b["observations"], jnp.asarray(pi, jnp.float32))
    ).min(0)
    bc_term = ((pi - np64(b["actions"])) ** 2).sum(-1)
    expected = (0.3 * bc_term - q / np.abs(q).mean()).mean()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    unnormalized = dataclasses.replace(config, normalize_q=False)
    loss, _ = rebrac.actor_loss(state.actor.params, state, b, unnormalized)
    np.testing.assert_allclose(float(loss), (0.3 * bc_term - q).mean(), rtol=1e-5)

    loss, metrics = rebrac.critic_loss(state.critic.params, state, b, config, jax.random.PRNGKey(2))
    next_a = np64(state.actor.apply_fn(state.target_actor_params, b["next_observations"]))
    next_q = np64(
        state.critic.apply_fn(
            state.target_critic_params, b["next_observations"], jnp.asarray(next_a, jnp.float32)
        )
    ).min(0)
    penalty = ((next_a - np64(b["next_actions"])) ** 2).sum(-1)
    y = np64(b["rewards"]) + 0.99 * (1 - np64(b["terminations"])) * (next_q - 0.7 * penalty)
    q_data = np64(state.critic.apply_fn(state.critic.params, b["observations"], b["actions"]))
    np.testing.assert_allclose(float(loss), ((q_data - y) ** 2).mean(1).sum(), rtol=1e-5)
    np.testing.assert_allclose(
        float(metrics["critic/next_action_penalty"]), penalty.mean(), rtol=1e-5
    )


def test_next_actions_stay_inside_episodes():
    from offrl.data.returns import next_actions

    episodes = make_episodes(num_episodes=2, length=3, act_dim=1)
    data = from_episodes(episodes, DatasetInfo())
    a = np.asarray(data.actions)[:, 0]
    np.testing.assert_array_equal(next_actions(data)[:, 0], [a[1], a[2], a[2], a[4], a[5], a[5]])


# ------------------------------------------------------------------------------- AWAC
def test_awac_losses_match_numpy():
    """Critic: the target's min-Q at a clipped policy sample; actor: the data actions'
    Gaussian log-likelihood weighted by min(exp((Q(s, a) - Q(s, a_pi)) / lambda), 100)."""
    from offrl.algos import awac

    config = awac.Config(hidden_dims=(8, 8), awac_lambda=0.5)
    b = batch()
    state = awac.init(config, b, jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(3)

    def clipped_sample(observations):
        mean, log_std = (np64(x) for x in state.actor.apply_fn(state.actor.params, observations))
        noise = np64(jax.random.normal(key, mean.shape))
        return np.clip(mean + np.exp(log_std) * noise, -1, 1)

    def min_q(params, observations, actions):
        return np64(
            state.critic.apply_fn(params, observations, jnp.asarray(actions, jnp.float32))
        ).min(0)

    loss, _ = awac.critic_loss(state.critic.params, state, b, config, key)
    next_q = min_q(state.target_critic_params, b["next_observations"],
                   clipped_sample(b["next_observations"]))  # fmt: skip
    y = np64(b["rewards"]) + 0.99 * (1 - np64(b["terminations"])) * next_q
    q = np64(state.critic.apply_fn(state.critic.params, b["observations"], b["actions"]))
    np.testing.assert_allclose(float(loss), ((q - y) ** 2).mean(1).sum(), rtol=1e-5)

    loss, metrics = awac.actor_loss(state.actor.params, state, b, config, key)
    q_pi = min_q(state.critic.params, b["observations"], clipped_sample(b["observations"]))
    q_data = min_q(state.critic.params, b["observations"], b["actions"])
    weights = np.minimum(np.exp((q_data - q_pi) / 0.5), 100.0)
    mean, log_std = (np64(x) for x in state.actor.apply_fn(state.actor.params, b["observations"]))
    z = (np64(b["actions"]) - mean) / np.exp(log_std)
    log_prob = (-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(float(loss), (-weights * log_prob).mean(), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["actor/weight_mean"]), weights.mean(), rtol=1e-5)
    capped = awac.advantage_weights(jnp.asarray([10.0]), jnp.asarray([0.0]), 1.0, 100.0)
    assert float(capped[0]) == 100.0


# ----------------------------------------------------------------------- EDAC / SAC-N
def test_edac_diversity_term_matches_finite_differences():
    """The members' action gradients (central differences here), normalized, summed
    pairwise over i != j, averaged over the batch, divided by N - 1; identical members
    give exactly N; SAC-N's critic loss is SAC's, EDAC's adds eta times the term."""
    from offrl.algos import edac, sac_n

    assert sac_n.Config().eta == 0.0 and sac_n.update is edac.update
    from offrl.nn import QNetwork

    config = edac.Config(hidden_dims=(8, 8), num_critics=3, eta=2.0)
    b = batch()
    state = edac.init(config, b, jax.random.PRNGKey(0))
    params = state.critic.params
    got = float(edac.diversity_loss(params, b["observations"], b["actions"], config))
    members = params["params"]["VmapQNetwork_0"]
    network = QNetwork((8, 8))
    obs, actions = np64(b["observations"]), np64(b["actions"])
    grads = []
    for i in range(3):
        member = jax.tree_util.tree_map(lambda x, i=i: x[i], members)

        def q(a, member=member):
            return np64(network.apply({"params": member}, obs, jnp.asarray(a, jnp.float32)))

        g = np.stack([(q(actions + e) - q(actions - e)) / 2e-2 for e in 1e-2 * np.eye(2)], -1)
        grads.append(g / np.linalg.norm(g, axis=-1, keepdims=True))
    grads = np.stack(grads)  # [N, B, A]
    similarity = np.einsum("ibk,jbk->bij", grads, grads) * (1 - np.eye(3))
    np.testing.assert_allclose(got, similarity.sum((1, 2)).mean() / 2, rtol=2e-2, atol=2e-3)

    same = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x[:1], x.shape), params)
    np.testing.assert_allclose(
        float(edac.diversity_loss(same, b["observations"], b["actions"], config)), 3.0, rtol=1e-5
    )
    # A member whose gradient is zero at the data (all ReLUs off) gives a finite gradient.
    dead = jax.tree_util.tree_map(lambda x: x.at[0].set(0.0), params)
    grads = jax.grad(edac.diversity_loss)(dead, b["observations"], b["actions"], config)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads))
    key = jax.random.PRNGKey(4)
    total, _ = edac.critic_loss(params, state, b, config, key)
    plain, _ = sac.critic_loss(params, state, b, config, key)  # SAC-N's critic loss
    np.testing.assert_allclose(float(total), float(plain) + 2.0 * got, rtol=1e-5)


def test_td3_target_smoothing_clips_noise_and_action():
    """clip(pi_targ(s') + clip(sigma eps, -c, c), -1, 1) against NumPy, with noise large
    enough that both clips act."""
    from offrl.algos.common import smoothed_target_actions

    config = td3_bc.Config(hidden_dims=(8, 8), policy_noise=3.0, noise_clip=0.5)
    b = batch()
    state = td3_bc.init(config, b, jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(7)
    got = np64(smoothed_target_actions(state, b["next_observations"], config, key))
    pi = np64(state.actor.apply_fn(state.target_actor_params, b["next_observations"]))
    noise = np.clip(3.0 * np64(jax.random.normal(key, pi.shape)), -0.5, 0.5)
    np.testing.assert_allclose(got, np.clip(pi + noise, -1.0, 1.0), rtol=1e-5, atol=1e-6)
    shifted = state.replace(
        target_actor_params=jax.tree_util.tree_map(lambda x: x * 50.0, state.target_actor_params)
    )
    saturated = np64(smoothed_target_actions(shifted, b["next_observations"], config, key))
    assert np.abs(saturated).max() <= 1.0 and (np.abs(saturated) == 1.0).any()
