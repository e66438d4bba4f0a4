"""Online learning with offline data (issue 26): MOORL, ..."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos import moorl, sac


def _batch(rng, size=8, obs_dim=3, act_dim=2):
    return {
        "observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, (size, act_dim)), jnp.float32),
        "rewards": jnp.asarray(rng.normal(size=size), jnp.float32),
        "next_observations": jnp.asarray(rng.normal(size=(size, obs_dim)), jnp.float32),
        "terminations": jnp.zeros(size, jnp.float32),
        "truncations": jnp.zeros(size, jnp.float32),
        "offline": jnp.asarray(np.r_[np.ones(size // 2), np.zeros(size // 2)], jnp.float32),
    }


def _close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def _far(a, b):
    return max(
        float(jnp.abs(x - y).max())
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize("offline_probability, half", [(1.0, slice(0, 4)), (0.0, slice(4, 8))])
def test_moorl_meta_update_matches_a_hand_computed_reptile_step(offline_probability, half):
    """K inner SAC steps on the chosen buffer's half, then meta += beta (fast - meta)."""
    rng = np.random.default_rng(0)
    config = moorl.Config(
        hidden_dims=(8, 8),
        inner_steps=3,
        meta_step_size=0.25,
        offline_probability=offline_probability,
    )
    batches = [_batch(rng) for _ in range(4)]
    state = moorl.init(config, batches[0], jax.random.PRNGKey(1))
    meta_actor0, meta_critic0 = state.actor.params, state.critic.params
    _close(meta_actor0, state.fast.actor.params)

    # By hand: three plain SAC updates on the chosen half, from the meta weights.
    fast = state.fast
    for batch in batches[:3]:
        fast, _ = sac.update(fast, jax.tree.map(lambda x: x[half], batch), config)
    beta = 0.25
    expected_actor = jax.tree.map(lambda m, f: m + beta * (f - m), meta_actor0, fast.actor.params)
    expected_critic = jax.tree.map(
        lambda m, f: m + beta * (f - m), meta_critic0, fast.critic.params
    )

    for i, batch in enumerate(batches[:3]):
        state, metrics = moorl.update(state, batch, config)
        assert float(metrics["moorl/offline_epoch"]) == offline_probability
        if i < 2:  # the meta weights wait for the K-th inner step
            _close(state.actor.params, meta_actor0)
            _close(state.critic.params, meta_critic0)
    _close(state.actor.params, expected_actor, rtol=1e-5, atol=1e-6)
    _close(state.critic.params, expected_critic, rtol=1e-5, atol=1e-6)
    assert _far(state.actor.params, meta_actor0) > 1e-4
    # The next epoch's fast weights start from the new meta weights; the rest of
    # SAC's state (temperature, targets, optimizer moments) carries over.
    _close(state.fast.actor.params, expected_actor, rtol=1e-5, atol=1e-6)
    _close(state.fast.critic.params, expected_critic, rtol=1e-5, atol=1e-6)
    _close(state.fast.log_alpha.params, fast.log_alpha.params, rtol=1e-6)
    _close(state.fast.target_critic_params, fast.target_critic_params, rtol=1e-6)

    # The meta actor acts.
    obs = batches[0]["observations"]
    np.testing.assert_allclose(
        moorl.act(state, obs, jax.random.PRNGKey(0), True, config),
        sac.act(state.fast.replace(actor=state.actor), obs, jax.random.PRNGKey(0), True, config),
    )


def test_moorl_draws_a_source_per_epoch_and_checks_its_settings():
    rng = np.random.default_rng(1)
    config = moorl.Config(hidden_dims=(8,), inner_steps=2, offline_probability=0.5)
    state = moorl.init(config, _batch(rng), jax.random.PRNGKey(3))
    update = jax.jit(moorl.update, static_argnums=2)
    sources = []
    for _ in range(40):
        state, metrics = update(state, _batch(rng), config)
        sources.append(float(metrics["moorl/offline_epoch"]))
    epochs = np.asarray(sources).reshape(20, 2)
    assert (epochs[:, 0] == epochs[:, 1]).all()  # one source per epoch
    assert 0 < epochs[:, 0].sum() < 20  # both buffers are drawn
    with pytest.raises(ValueError, match="inner_steps"):
        moorl.init(moorl.Config(inner_steps=0), _batch(rng), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="meta_step_size"):
        moorl.init(moorl.Config(meta_step_size=0.0), _batch(rng), jax.random.PRNGKey(0))
    from offrl.run.settings import FinetuneConfig

    with pytest.raises(ValueError, match="offline-ratio 0.5"):
        moorl.online_config(config, FinetuneConfig(offline_ratio=0.3))
    with pytest.raises(ValueError, match="even --batch-size"):
        moorl.online_config(config, FinetuneConfig(batch_size=255))


def test_concurrent_bc_adds_the_weighted_demonstration_nll_to_sacs_actor_loss():
    """Demonstration rows (first n) feed only lambda * -log pi(a_demo|s); online rows
    feed SAC's losses; NumPy reference of the tanh-Gaussian log-likelihood."""
    from offrl.algos import concurrent_bc

    rng = np.random.default_rng(2)
    batch = _batch(rng, size=8)
    demo_rows = 3
    config = concurrent_bc.Config(hidden_dims=(8,), demo_rows=demo_rows, bc_weight=2.5)
    state = concurrent_bc.init(config, batch, jax.random.PRNGKey(0))
    demos = jax.tree.map(lambda x: x[:demo_rows], batch)

    mean, log_std = (
        np.asarray(v, np.float64)
        for v in state.actor.apply_fn(state.actor.params, demos["observations"])
    )
    a = np.clip(np.asarray(demos["actions"], np.float64), -1 + 1e-5, 1 - 1e-5)
    u = np.arctanh(a)
    log_prob = (
        -0.5 * ((u - mean) / np.exp(log_std)) ** 2
        - log_std
        - 0.5 * np.log(2 * np.pi)
        - np.log(1 - a**2 + 1e-6)
    ).sum(-1)
    np.testing.assert_allclose(
        float(concurrent_bc.bc_nll(state.actor.params, state, demos)), -log_prob.mean(), rtol=1e-5
    )

    # The update's actor loss is SAC's on the online rows plus the weighted NLL, and the
    # gradient step follows: with bc_weight 0 the actor moves as SAC's on the online rows.
    new_state, metrics = concurrent_bc.update(state, batch, config)
    np.testing.assert_allclose(
        float(metrics["actor/loss"]),
        float(metrics["actor/sac_loss"]) + 2.5 * float(metrics["actor/bc_nll"]),
        rtol=1e-6,
    )
    np.testing.assert_allclose(float(metrics["actor/bc_nll"]), -log_prob.mean(), rtol=1e-5)
    online = jax.tree.map(lambda x: x[demo_rows:], batch)
    plain, plain_metrics = sac.update(state, online, config)
    np.testing.assert_allclose(
        float(metrics["actor/sac_loss"]), float(plain_metrics["actor/loss"]), rtol=1e-6
    )
    _close(new_state.critic.params, plain.critic.params, rtol=1e-6)  # the critic ignores demos
    assert _far(new_state.actor.params, plain.actor.params) > 1e-6
    unweighted, _ = concurrent_bc.update(
        state, batch, concurrent_bc.Config(hidden_dims=(8,), demo_rows=demo_rows, bc_weight=0.0)
    )
    _close(unweighted.actor.params, plain.actor.params, rtol=1e-6)


def test_concurrent_bc_and_gpayn_start_from_a_gaussian_bc_run():
    from offrl.algos import bc, concurrent_bc, gpayn
    from offrl.run.settings import FinetuneConfig

    rng = np.random.default_rng(3)
    batch = _batch(rng)
    base_config = bc.Config(policy="gaussian", hidden_dims=(8, 8))
    base = bc.init(base_config, batch, jax.random.PRNGKey(5))
    for algo in (concurrent_bc, gpayn):
        config = algo.config_for_base(algo.Config(), base_config)
        assert config.hidden_dims == (8, 8)
        state = algo.init_from(config, batch, jax.random.PRNGKey(6), base, base_config)
        obs = batch["observations"]
        np.testing.assert_allclose(
            algo.act(state, obs, None, True, config),
            bc.act(base, obs, None, True, base_config),
            rtol=1e-6,
        )
    with pytest.raises(ValueError, match="--policy gaussian"):
        concurrent_bc.config_for_base(concurrent_bc.Config(), bc.Config())
    # The demonstration rows come from the loop's sampling; union mixing has none apart.
    assert concurrent_bc.online_config(concurrent_bc.Config(), FinetuneConfig()).demo_rows == 128
    assert (
        concurrent_bc.online_config(
            concurrent_bc.Config(), FinetuneConfig(mixing="online")
        ).demo_rows
        == 0
    )
    with pytest.raises(ValueError, match="--mixing ratio"):
        concurrent_bc.online_config(concurrent_bc.Config(), FinetuneConfig(mixing="union"))
    assert gpayn.ONLINE.mixing == "union"


def test_coverage_bonus_matches_the_closed_form_on_a_diagonal_case():
    """Offline pulls along e1, online along e2: the bonus of phi = (a, b) is
    beta * sqrt(a^2 / (lambda + n_off) + b^2 / (lambda + n_on))."""
    from offrl.hybrid_testbeds import coverage_bonus

    ridge, n_off, n_on, beta = 1.0, 50.0, 3.0, 0.7
    gram = np.diag([ridge + n_off, ridge + n_on])
    features = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-0.3, 0.2]])
    expected = beta * np.sqrt(
        features[:, 0] ** 2 / (ridge + n_off) + features[:, 1] ** 2 / (ridge + n_on)
    )
    np.testing.assert_allclose(coverage_bonus(features, gram, beta), expected, rtol=1e-12)
    # A correlated Gram matrix: the quadratic form itself.
    gram = np.array([[4.0, 1.0], [1.0, 2.0]])
    direct = [beta * np.sqrt(f @ np.linalg.inv(gram) @ f) for f in features]
    np.testing.assert_allclose(coverage_bonus(features, gram, beta), direct, rtol=1e-12)


def test_coverage_aware_exploration_beats_plain_optimism_on_partly_covered_data():
    from offrl import hybrid_testbeds as hb

    samples = {"coverage": [], "optimism": []}
    for seed in range(4):
        rng = np.random.default_rng(seed)
        bandit = hb.LinearBandit.make(6, 100, rng)
        offline = hb.offline_pulls(bandit, 3, 1000, rng)
        share = (bandit.features[offline, :3] ** 2).sum(axis=1)
        assert share.min() >= 0.9  # the behavior knew only the first 3 directions
        for method in samples:
            run = hb.run_bandit(bandit, method, offline, 400, np.random.default_rng(seed + 10))
            samples[method].append(run["samples"])
    assert np.median(samples["coverage"]) < np.median(samples["optimism"])
    with pytest.raises(ValueError, match="unknown method"):
        hb.run_bandit(bandit, "ucb", offline, 1, rng)


def test_lock_values_and_hnpg_against_npg():
    from offrl import hybrid_testbeds as hb

    rng = np.random.default_rng(0)
    lock = hb.Lock.make(horizon=4, actions=5, rng=rng)
    optimal = np.zeros((4, 3, 5))
    for h in range(4):
        optimal[h, :2, lock.opt[h]] = 0.0
        for s in (0, 1):
            optimal[h, s, lock.opt[h, s]] = 1.0
    optimal[:, 2] = 0.2
    assert lock.value(optimal) == pytest.approx(1.0)
    # Uniform: reach level h alive with prob (1/A)^h, then the last step pays 1/A, and
    # every wrong action on the way pays 0.1 with probability 1/2.
    uniform = np.full((4, 3, 5), 0.2)
    alive = 0.2 ** np.arange(4)
    expected = alive[-1] * 0.2 + (alive * 0.8 * 0.05).sum()
    assert lock.value(uniform) == pytest.approx(expected)

    offline = hb.epsilon_greedy_data(lock, 100, rng)
    npg = hb.run_lock(lock, "npg", offline, 10, 10, np.random.default_rng(1))
    hnpg = hb.run_lock(lock, "hnpg", offline, 10, 10, np.random.default_rng(1))
    assert npg["samples"] is None and npg["values"].max() < 0.2  # trapped by the distractor
    assert hnpg["samples"] is not None and hnpg["values"][-1] > 0.95


def test_safe_set_gate_never_proposes_an_action_the_set_rejects():
    """With a known safety critic Qc(s, a) = s_0 - a_0 the set is a_0 <= s_0 - tau: every
    gated action lies in it whenever the box holds one, the policy's own action passes
    unchanged when it is inside, and a state with no safe action gets the least unsafe."""
    from flax.training.train_state import TrainState

    from offrl.algos import safe_set

    rng = np.random.default_rng(4)
    obs_dim, act_dim, n = 3, 2, 64
    config = safe_set.Config(
        hidden_dims=(8,), margin=0.2, forget_steps=0, policy_candidates=4, uniform_candidates=4
    )
    batch = _batch(rng, size=n, obs_dim=obs_dim, act_dim=act_dim)
    state = safe_set.init(config, batch, jax.random.PRNGKey(0))

    def qc_apply(params, observations, actions):
        value = observations[..., 0] - actions[..., 0]
        return jnp.stack([value, value + 1.0])  # [E, B]: the min is the first

    state = state.replace(qc=TrainState.create(apply_fn=qc_apply, params={}, tx=safe_set._META))
    observations = jnp.asarray(
        np.c_[rng.uniform(-1.6, 1.5, n), rng.normal(size=(n, obs_dim - 1))], jnp.float32
    )
    first = jnp.asarray(rng.uniform(-1, 1, (n, act_dim)), jnp.float32)
    actions, feasible, qc = safe_set.gated_actions(
        state, observations, first, jax.random.PRNGKey(1), config
    )
    actions, feasible = np.asarray(actions), np.asarray(feasible)
    s0 = np.asarray(observations[:, 0])
    direct = s0 - actions[:, 0]
    np.testing.assert_allclose(np.asarray(qc), direct, rtol=1e-6)
    has_safe_action = s0 - 0.2 >= -1.0  # a_0 = -1 is in the set
    assert has_safe_action.any() and (~has_safe_action).any()
    assert (feasible == has_safe_action).all()
    assert (direct[feasible] >= 0.2 - 1e-6).all()  # never an action the set rejects
    inside = np.asarray(s0 - first[:, 0]) >= 0.2
    np.testing.assert_array_equal(actions[inside], np.asarray(first)[inside])
    # No safe action: the least unsafe candidate (a_0 as low as the candidates go).
    assert (actions[~feasible, 0] < -0.9).all()
    assert np.abs(actions).max() <= 1.0

    # Acting (explore and evaluation) goes through the gate too.
    explored = np.asarray(safe_set.explore(state, observations, jax.random.PRNGKey(2), 0, config))
    assert (s0[has_safe_action] - explored[has_safe_action, 0] >= 0.2 - 1e-6).all()
    # The candidates: the proposal, P - 1 policy samples, U uniform actions over the box
    # (the same fixed draws for every row without a key) and the projection.
    proposals = np.asarray(safe_set.candidates(state, observations, first, None, config))
    assert proposals.shape == (n, 1 + 3 + 4 + 1, act_dim)
    np.testing.assert_array_equal(proposals[:, 0], np.asarray(first))
    uniform = proposals[:, 4:8]
    np.testing.assert_array_equal(uniform, np.broadcast_to(uniform[:1], uniform.shape))
    assert np.abs(uniform).max() > 0.5 and np.abs(uniform).max() <= 1.0
    acted = np.asarray(safe_set.act(state, observations, None, True, config))
    assert (s0[has_safe_action] - acted[has_safe_action, 0] >= 0.2 - 1e-6).all()
    # Deterministic acting is a function of the observation (fixed candidate draws).
    np.testing.assert_array_equal(
        acted, np.asarray(safe_set.act(state, observations, jax.random.PRNGKey(9), True, config))
    )


def test_optimistic_forgetting_relaxes_the_threshold_linearly():
    from offrl.algos import safe_set

    config = safe_set.Config(margin=0.1, floor=-0.3, forget_steps=100)
    for step, expected in ((0, 0.1), (50, -0.1), (100, -0.3), (1000, -0.3)):
        assert float(safe_set.threshold(jnp.asarray(step), config)) == pytest.approx(expected)
    fixed = safe_set.Config(margin=0.1, forget_steps=0)
    assert float(safe_set.threshold(jnp.asarray(10**6), fixed)) == pytest.approx(0.1)


def test_training_costs_count_violations_per_seed():
    from offrl.finetune.loop import training_costs

    out = training_costs([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0]])
    assert out["training_cost_per_seed"] == [3.0, 0.0]
    assert out["training_violation_rate_per_seed"] == [0.5, 0.0]
    assert out["training_cost_std"] == pytest.approx(np.std([3.0, 0.0], ddof=1))
    assert training_costs([[1.0], []]) == {}


def test_role_model_labels_reach_the_batches_and_rm_rl_regresses_onto_them():
    from offrl.algos import rm_rl
    from offrl.data.preprocess import Preprocessor
    from offrl.envs.pointmaze import WaypointController
    from offrl.envs.registry import make_env
    from offrl.finetune.buffer import MixedReplay
    from offrl.finetune.loop import _labeler
    from offrl.run.settings import RunError

    env = make_env("PointMaze_UMaze-v3")
    planner = WaypointController(env.unwrapped.maze)
    rng = np.random.default_rng(5)
    observations = []
    observation, _ = env.reset(seed=3)
    for _ in range(20):
        observations.append(observation)
        observation, *_ = env.step(rng.uniform(-1, 1, 2))
    observations = np.asarray(observations, np.float32)
    # Action bounds [-2, 2] here, so the labels are the planner's actions halved.
    pre = Preprocessor.identity(6, 2).replace(
        action_low=-2 * np.ones(2, np.float32), action_high=2 * np.ones(2, np.float32)
    )
    label = _labeler("pointmaze-planner", "PointMaze_UMaze-v3", pre)
    expected = np.stack([planner(o) for o in observations]) / 2.0
    np.testing.assert_allclose(label(observations), expected, rtol=1e-6)
    assert _labeler(None, "PointMaze_UMaze-v3", pre) is None

    # The offline data are labeled from their raw observations, whatever the
    # networks' observation units.
    from offrl.data.dataset import DatasetInfo, from_episodes
    from offrl.finetune.loop import _offline_rows

    episode = {
        "observations": np.concatenate([observations, observations[-1:]]),
        "actions": rng.uniform(-2, 2, (20, 2)).astype(np.float32),
        "rewards": np.zeros(20, np.float32),
        "terminations": np.zeros(20, bool),
        "truncations": np.r_[np.zeros(19, bool), True],
    }
    data = from_episodes([episode], DatasetInfo(name="labels"))
    standardized = pre.replace(
        observation_mean=np.full(6, 0.5, np.float32), observation_std=np.full(6, 2.0, np.float32)
    )
    rows = _offline_rows(data, standardized, 0.99, label)
    np.testing.assert_allclose(rows["label_actions"], expected, rtol=1e-6)
    np.testing.assert_allclose(rows["observations"], (observations - 0.5) / 2.0, rtol=1e-6)
    assert "label_actions" not in _offline_rows(data, standardized, 0.99)
    with pytest.raises(RunError, match="unknown labeler"):
        _labeler("oracle", "PointMaze_UMaze-v3", pre)

    # The buffer keeps each online row's label beside its observation.
    replay = MixedReplay(None, 1, 32, 6, 2, None, label_fields=("label_actions",))
    for o, a in zip(observations, expected, strict=True):
        replay.add(
            0, observations=o, actions=-a, rewards=0.0, next_observations=o,
            terminations=0.0, truncations=0.0, label_actions=a,
        )  # fmt: skip
    batch = replay.sample(rng, 16)
    rows = [
        int(np.flatnonzero((observations == o).all(axis=1))[0]) for o in batch["observations"][0, 0]
    ]
    np.testing.assert_allclose(batch["label_actions"][0, 0], expected[rows])

    # RM-RL's loss is the squared error to the labels, not to the actions taken.
    one = jax.tree.map(lambda x: jnp.asarray(x[0, 0]), batch)
    config = rm_rl.Config(hidden_dims=(8,))
    state = rm_rl.init(config, one, jax.random.PRNGKey(0))
    predicted = np.asarray(state.actor.apply_fn(state.actor.params, one["observations"]))
    np.testing.assert_allclose(
        float(rm_rl.loss(state.actor.params, state, one)),
        np.mean((predicted - np.asarray(one["label_actions"])) ** 2),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="--labeler"):
        from offrl.run.settings import FinetuneConfig

        rm_rl.online_config(config, FinetuneConfig())


def test_arsq_decodes_and_encodes_coarse_to_fine_bins():
    from offrl.algos import arsq

    # One dimension, 5 bins, 3 levels: bin 2 of [-1, 1] is [-0.2, 0.2]; its bin 0 is
    # [-0.2, -0.12]; that one's bin 4 is [-0.136, -0.12], centre -0.128.
    indices = jnp.asarray([[[2], [0], [4]]])
    action, centres, coarse = arsq.decode(indices, 5)
    np.testing.assert_allclose(np.asarray(action), [[-0.128]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(centres)[0, :, 0], [0.0, -0.16, -0.128], atol=1e-6)
    np.testing.assert_allclose(np.asarray(coarse)[0, :, 0], [0.0, 0.0, -0.16], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(arsq.encode(jnp.asarray([[-0.13]]), 3, 5)), indices)
    np.testing.assert_array_equal(
        np.asarray(arsq.encode(jnp.asarray([[1.0]]), 3, 5)), [[[4], [4], [4]]]
    )

    rng = np.random.default_rng(6)
    random_bins = jnp.asarray(rng.integers(0, 4, (50, 3, 2)))
    np.testing.assert_array_equal(
        np.asarray(arsq.encode(arsq.decode(random_bins, 4)[0], 3, 4)), np.asarray(random_bins)
    )
    actions = jnp.asarray(rng.uniform(-1, 1, (200, 2)), jnp.float32)
    decoded = arsq.decode(arsq.encode(actions, 3, 4), 4)[0]
    assert float(jnp.abs(decoded - actions).max()) <= 0.5 * 2 / 4**3 + 1e-6  # half the finest bin


@pytest.mark.parametrize("autoregressive", [True, False])
def test_arsq_soft_q_has_its_value_as_soft_maximum(autoregressive):
    """alpha logsumexp over every joint choice of one level's bins of Q_l / alpha is V_l,
    because the soft advantages factorise dimension by dimension; the independent
    variant ignores the earlier dimension's choice."""
    from offrl.algos import arsq

    rng = np.random.default_rng(7)
    config = arsq.Config(
        hidden_dims=(16,), levels=1, bins=3, temperature=0.5, autoregressive=autoregressive
    )
    batch = _batch(rng, size=4)
    state = arsq.init(config, batch, jax.random.PRNGKey(0))
    obs = batch["observations"]
    joint = jnp.asarray([[[i, j]] for i in range(3) for j in range(3)])  # [9, L=1, A=2]
    q = []
    for choice in joint:
        q_l, v = arsq.q_values(
            state.actor.apply_fn, state.actor.params, obs, jnp.repeat(choice[None], 4, 0), config
        )
        q.append(q_l[:, 0])
    q = jnp.stack(q, axis=-1)  # [B, 9]
    np.testing.assert_allclose(
        np.asarray(0.5 * jax.nn.logsumexp(q / 0.5, axis=-1)),
        np.asarray(v[:, 0]),
        rtol=1e-5,
        atol=1e-5,
    )
    # Does dimension 1's advantage depend on dimension 0's bin?
    a_given_0 = q[:, 0:3] - q[:, 0:1]  # rows a0 = 0
    a_given_2 = q[:, 6:9] - q[:, 6:7]  # rows a0 = 2
    differs = float(jnp.abs(a_given_0 - a_given_2).max()) > 1e-5
    assert differs == autoregressive
    # Deterministic acting takes each dimension's best bin in order: dimension 0 by its
    # soft advantage A_0(a0) = alpha logsumexp_a1 Q(a0, a1) / alpha - V, then dimension 1
    # by Q given that bin.
    acted = np.asarray(arsq.select_bins(state, obs, jax.random.PRNGKey(1), True, config))[:, 0]
    per_first = q.reshape(4, 3, 3)
    np.testing.assert_array_equal(
        acted[:, 0], np.asarray(jnp.argmax(jax.nn.logsumexp(per_first / 0.5, axis=-1), axis=-1))
    )
    np.testing.assert_array_equal(
        acted[:, 1], np.asarray(jnp.argmax(per_first[np.arange(4), acted[:, 0]], axis=-1))
    )


def test_arsq_loss_regresses_every_level_onto_the_coarsest_target_value():
    from offrl.algos import arsq

    rng = np.random.default_rng(8)
    config = arsq.Config(hidden_dims=(16,), levels=2, bins=3, discount=0.9)
    batch = _batch(rng, size=6)
    batch["terminations"] = jnp.asarray([0, 1, 0, 0, 1, 0], jnp.float32)
    state = arsq.init(config, batch, jax.random.PRNGKey(2))
    state = state.replace(  # a target network that differs from the online one
        target_params=jax.tree.map(lambda x: x * 0.5 + 0.1, state.actor.params)
    )
    indices = arsq.encode(batch["actions"], 2, 3)
    q, _ = arsq.q_values(
        state.actor.apply_fn, state.actor.params, batch["observations"], indices, config
    )
    zeros = jnp.zeros((6, 2, 2))
    next_v, _ = state.actor.apply_fn(state.target_params, batch["next_observations"], zeros, zeros)
    target = np.asarray(batch["rewards"]) + 0.9 * (
        1 - np.asarray(batch["terminations"])
    ) * np.asarray(next_v[:, 0])
    expected = np.mean((np.asarray(q) - target[:, None]) ** 2)
    loss, _ = arsq.loss_fn(state.actor.params, state, batch, config)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def _benchmark(name):
    import importlib.util
    import pathlib
    import sys

    folder = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))  # hybrid.py imports finetune.py beside it
    spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_benchmark_tables_print_the_sample_std_and_never_a_median_for_unsolved_runs():
    finetune_bench, hybrid_bench, testbeds = (
        _benchmark(n) for n in ("finetune", "hybrid", "hybrid_testbeds")
    )
    values = [1.0, 2.0, 4.0]
    sample = np.std(values, ddof=1)
    assert finetune_bench._cell(values) == f"2.3 ± {sample:.1f}"
    assert hybrid_bench._stat(values) == f"2.3 ± {sample:.1f}"
    assert finetune_bench._sample_std([3.0]) == 0.0
    # Half the runs unsolved: the median is above the budget, not halfway to it.
    assert testbeds._samples([0, 0, None, None], 1000).startswith("> 1000 (2/4")
    assert testbeds._samples([10, 20, 30, None], 1000).startswith("25 (3/4")
