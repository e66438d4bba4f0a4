"""Safety: margins in the data, the V-OCBF barrier, the CBF-QP and Qc filters, the
Lagrangian baseline, violation metrics and the shield."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from offrl.algos import td3_bc_lag, vocbf  # noqa: E402
from offrl.core.trainer import example_batch  # noqa: E402
from offrl.data.dataset import Dataset, DatasetInfo  # noqa: E402
from offrl.safety.filter import project_halfspace_box, qc_filter  # noqa: E402


# ----------------------------------------------------------------- the barrier target
def test_barrier_target_matches_numpy():
    rng = np.random.default_rng(0)
    h = rng.normal(size=64).astype(np.float32)
    next_v = rng.normal(size=64).astype(np.float32)
    terminated = (rng.random(64) < 0.3).astype(np.float32)
    gamma = 0.99
    expected = np.where(terminated > 0, h, (1 - gamma) * h + gamma * np.minimum(h, next_v))
    got = vocbf.barrier_target(jnp.asarray(h), jnp.asarray(next_v), jnp.asarray(terminated), gamma)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)


def _batch(rng, n=32, obs_dim=3, act_dim=2):
    return {
        "observations": jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, (n, act_dim)), jnp.float32),
        "rewards": jnp.asarray(rng.normal(size=n), jnp.float32),
        "next_observations": jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
        "terminations": jnp.asarray(rng.random(n) < 0.2, jnp.float32),
        "truncations": jnp.zeros(n, jnp.float32),
        "margins": jnp.asarray(rng.normal(size=n), jnp.float32),
        "costs": jnp.asarray(rng.random(n) < 0.3, jnp.float32),
    }


def test_vocbf_losses_match_numpy():
    rng = np.random.default_rng(1)
    config = vocbf.Config(hidden_dims=(16,), bc_hidden_dims=(8,), dynamics_hidden_dims=(8,))
    state = vocbf.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
    batch = _batch(rng)
    obs, act = batch["observations"], batch["actions"]
    # Vc: upper expectile of min_i Qc_targ(s, a) - Vc(s)
    q = np.asarray(state.qc.apply_fn(state.target_qc_params, obs, act)).min(axis=0)
    v = np.asarray(state.vc.apply_fn(state.vc.params, obs))
    diff = q - v
    expected_v = np.mean(np.where(diff < 0, 1 - config.expectile, config.expectile) * diff**2)
    loss, _ = vocbf.vc_loss(state.vc.params, state, batch, config)
    np.testing.assert_allclose(float(loss), expected_v, rtol=1e-5)
    # Qc: MSE to the HJ target, summed over the ensemble
    h = np.asarray(batch["margins"])
    next_v = np.asarray(state.vc.apply_fn(state.vc.params, batch["next_observations"]))
    term = np.asarray(batch["terminations"])
    y = np.where(term > 0, h, (1 - 0.99) * h + 0.99 * np.minimum(h, next_v))
    qs = np.asarray(state.qc.apply_fn(state.qc.params, obs, act))
    expected_q = ((qs - y) ** 2).mean(axis=1).sum()
    loss, _ = vocbf.qc_loss(state.qc.params, state, batch, config)
    np.testing.assert_allclose(float(loss), expected_q, rtol=1e-5)
    # dynamics: MSE of (s' - s) / dt against f + g u
    f, g = state.dynamics.apply_fn(state.dynamics.params, obs)
    pred = np.asarray(f) + np.einsum("bda,ba->bd", np.asarray(g), np.asarray(act))
    obs_np, next_np = np.asarray(obs), np.asarray(batch["next_observations"])
    expected_d = np.mean(np.sum((pred - (next_np - obs_np) / config.dt) ** 2, axis=-1))
    loss, _ = vocbf.dynamics_loss(state.dynamics.params, state, batch, config)
    np.testing.assert_allclose(float(loss), expected_d, rtol=1e-5)


# ----------------------------------------------------------------- the projection
def _qp_reference(u_nom, a, b, low, high):
    from scipy.optimize import minimize

    result = minimize(
        lambda u: np.sum((u - u_nom) ** 2),
        np.clip(u_nom, low, high),
        jac=lambda u: 2 * (u - u_nom),
        bounds=list(zip(low, high, strict=True)),
        constraints=[{"type": "ineq", "fun": lambda u: a @ u + b, "jac": lambda u: a}],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    return result.x


def test_projection_matches_a_qp_solver_on_random_instances():
    rng = np.random.default_rng(2)
    project = jax.jit(project_halfspace_box)
    checked = 0
    for _ in range(200):
        dim = int(rng.integers(1, 6))
        u_nom = rng.uniform(-1.5, 1.5, dim)
        a = rng.normal(size=dim)
        low, high = -np.ones(dim), np.ones(dim)
        b = rng.normal() * 2
        best = np.sum(np.abs(a)) + b  # max of a.u + b over the box
        u, feasible = project(jnp.asarray(u_nom), jnp.asarray(a), b, low, high)
        u = np.asarray(u)
        assert bool(feasible) == (best >= 0)
        assert np.all(u >= low - 1e-6) and np.all(u <= high + 1e-6)
        if best < 1e-3:
            # Infeasible (or barely): the corner of least violation.
            if best < 0:
                np.testing.assert_allclose(a @ u + b, best, atol=1e-6)
            continue
        assert a @ u + b >= -1e-5
        reference = _qp_reference(u_nom, a, b, low, high)
        np.testing.assert_allclose(
            np.sum((u - u_nom) ** 2), np.sum((reference - u_nom) ** 2), rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose(u, reference, atol=2e-4)
        checked += 1
    assert checked > 100


def test_projection_without_active_bounds_is_the_closed_form():
    u_nom = np.array([0.1, -0.2, 0.05])
    a = np.array([0.3, 0.1, -0.2])
    b = -0.2
    u, feasible = project_halfspace_box(u_nom, a, b, -np.ones(3) * 10, np.ones(3) * 10)
    closed = u_nom - min(0.0, a @ u_nom + b) / (a @ a) * a
    assert bool(feasible)
    np.testing.assert_allclose(np.asarray(u), closed, rtol=1e-6)


def test_qc_filter_reaches_a_linear_constraint_exactly():
    # For a Qc linear in u the linearization is exact: one step is the projection.
    a, b = jnp.array([1.0, -2.0]), -0.5
    u_nom = jnp.array([0.2, 0.4])
    u, info = qc_filter(lambda x, v: a @ v + b, jnp.zeros(1), u_nom, -jnp.ones(2), jnp.ones(2))
    expected, _ = project_halfspace_box(u_nom, a, b, -jnp.ones(2), jnp.ones(2))
    np.testing.assert_allclose(np.asarray(u), np.asarray(expected), atol=1e-6)
    assert bool(info["intervened"]) and bool(info["feasible"])


@pytest.mark.parametrize("mode", ["cbf", "qc", "none"])
def test_filters_never_leave_the_action_bounds(mode):
    rng = np.random.default_rng(3)
    config = vocbf.Config(hidden_dims=(32,), bc_hidden_dims=(8,), dynamics_hidden_dims=(8,))
    state = vocbf.init(config, example_batch(4, 3), jax.random.PRNGKey(1))
    # Scale the barrier so it is negative (unsafe) on many rows and the filter works hard.
    observations = jnp.asarray(rng.normal(size=(256, 4)) * 3, jnp.float32)
    nominal = jnp.asarray(rng.uniform(-3, 3, (256, 3)), jnp.float32)
    actions, info = jax.jit(vocbf.filter_actions, static_argnums=(3, 4))(
        state, observations, nominal, config, mode
    )
    actions = np.asarray(actions)
    if mode == "none":  # no filter: the nominal actions, untouched, and no intervention
        np.testing.assert_array_equal(actions, np.asarray(nominal))
        assert not np.asarray(info["intervened"]).any()
        return
    # Nominal actions far outside the box, barrier negative on many rows: the filter
    # moves them, and must bring them into the box.
    assert np.all(np.isfinite(actions))
    assert not np.array_equal(actions, np.asarray(nominal))
    assert np.all(actions >= -1.0) and np.all(actions <= 1.0)
    if mode == "cbf":
        assert np.asarray(info["intervened"]).any()


# ----------------------------------------------------------------- learning a barrier
def _unsafe_current_dataset(n=20_000, seed=0) -> Dataset:
    """x' = clip(x + 0.1 (u + 5 * 1[x > 1]), -2.5, 2.5), |u| <= 1, h = 2 - |x|.

    Right of x = 1 a current of 5 beats the control (1) and carries the state past
    x = 2 within a few steps, so the safe set is -2 <= x <= 1, not the constraint
    set |x| <= 2.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.5, 2.5, n)
    u = rng.uniform(-1, 1, n)
    next_x = np.clip(x + 0.1 * (u + 5.0 * (x > 1)), -2.5, 2.5)
    return Dataset(
        observations=x[:, None].astype(np.float32),
        actions=u[:, None].astype(np.float32),
        rewards=np.zeros(n, np.float32),
        next_observations=next_x[:, None].astype(np.float32),
        terminations=np.zeros(n, bool),
        truncations=np.ones(n, bool),
        episode_starts=np.arange(n),
        episode_lengths=np.ones(n, np.int64),
        margins=(2 - np.abs(x)).astype(np.float32),
        info=DatasetInfo(name="unsafe-current-1d", action_low=(-1.0,), action_high=(1.0,)),
    )


def test_learned_barrier_sign_matches_the_known_safe_set(tmp_path):
    from offrl.run.train import TrainConfig, load_run, train

    config = vocbf.Config(
        hidden_dims=(64, 64),
        tau=0.01,
        discount=0.9,
        bc_hidden_dims=(16,),
        dynamics_hidden_dims=(16,),
    )
    train(
        "vocbf",
        _unsafe_current_dataset(),
        tmp_path / "barrier",
        config,
        TrainConfig(
            heldout_episodes=10,
            steps=4000,
            eval_every=0,
            checkpoint_every=4000,
            normalize_observations=False,
            progress=False,
        ),
    )
    state = jax.tree_util.tree_map(lambda x: x[0], load_run(tmp_path / "barrier").states)
    grid = np.linspace(-2.5, 2.5, 201).astype(np.float32)
    barrier = np.asarray(vocbf.barrier(state, grid[:, None]))
    truth = (grid > -2) & (grid < 1)
    away = (np.abs(grid - 1) > 0.1) & (np.abs(grid + 2) > 0.1)
    assert np.mean((barrier > 0)[away] == truth[away]) >= 0.95
    # The constraint alone (h > 0) says 1 < x < 2 is safe; the barrier must not.
    assert np.mean(barrier[(grid > 1.2) & (grid < 1.9)] < 0) >= 0.9


def test_a_barrier_needs_margins(tmp_path):
    from offrl.run.train import RunError, TrainConfig, train

    data = _unsafe_current_dataset(n=100).replace(margins=None)
    with pytest.raises(RunError, match="needs the dataset field"):
        train(
            "vocbf",
            data,
            tmp_path / "run",
            None,
            TrainConfig(heldout_episodes=10, steps=10, progress=False),
        )
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------- Lagrangian baseline
def test_lagrangian_losses_and_multiplier():
    rng = np.random.default_rng(4)
    config = td3_bc_lag.Config(hidden_dims=(16,), cost_limit=5.0, episode_length=100)
    state = td3_bc_lag.init(config, example_batch(3, 2), jax.random.PRNGKey(0))
    batch = _batch(rng)
    next_actions = jnp.asarray(rng.uniform(-1, 1, (32, 2)), jnp.float32)
    params = (state.critic.params, state.cost_critic.params)
    _, metrics = td3_bc_lag.critic_losses(params, state, batch, config, next_actions)
    not_done = 1 - np.asarray(batch["terminations"])
    next_c = np.asarray(
        state.cost_critic.apply_fn(
            state.target_cost_params, batch["next_observations"], next_actions
        )
    ).max(axis=0)
    y_c = np.asarray(batch["costs"]) + 0.99 * not_done * next_c
    qc = np.asarray(
        state.cost_critic.apply_fn(
            state.cost_critic.params, batch["observations"], batch["actions"]
        )
    )
    np.testing.assert_allclose(
        float(metrics["cost/loss"]), ((qc - y_c) ** 2).mean(1).sum(), rtol=1e-5
    )
    # The budget: 5 * (1 - 0.99^100) / (0.01 * 100)
    np.testing.assert_allclose(td3_bc_lag.cost_threshold(config), 5 * (1 - 0.99**100), rtol=1e-9)
    # Dual ascent from 0: the multiplier rises by lr * (Qc(s, pi(s)) - budget) when the
    # policy's estimated cost is over the budget, and is clipped at 0 when it is under
    # (a budget 1 above and 1 below the estimate; the clip alone made the old
    # ">= 0" check pass whatever the update did).
    qc_now = float(
        td3_bc_lag.actor_loss(state.actor.params, state, batch, config)[1]["actor/qc_pi"]
    )
    per_unit = td3_bc_lag.cost_threshold(dataclasses.replace(config, cost_limit=1.0))
    for gap in (1.0, -1.0):
        tight = dataclasses.replace(config, cost_limit=(qc_now - gap) / per_unit)
        np.testing.assert_allclose(td3_bc_lag.cost_threshold(tight), qc_now - gap, rtol=1e-5)
        moved, _ = td3_bc_lag._actor_multiplier_targets(
            state.replace(lagrange=jnp.float32(0.0)), batch, tight
        )
        expected_from_zero = max(0.0, tight.lambda_learning_rate * gap)
        np.testing.assert_allclose(float(moved.lagrange), expected_from_zero, rtol=1e-4)
    assert expected_from_zero == 0.0 and tight.lambda_learning_rate > 0
    updated, _ = td3_bc_lag._actor_multiplier_targets(
        state.replace(lagrange=jnp.float32(1.0)), batch, config
    )
    qc_pi = float(
        td3_bc_lag.actor_loss(
            state.actor.params, state.replace(lagrange=jnp.float32(1.0)), batch, config
        )[1]["actor/qc_pi"]
    )
    expected = np.clip(
        1.0 + config.lambda_learning_rate * (qc_pi - td3_bc_lag.cost_threshold(config)), 0, 100
    )
    np.testing.assert_allclose(float(updated.lagrange), expected, rtol=1e-5)


# ----------------------------------------------------------------- tasks and data
def test_point_robot_reports_margins_and_costs():
    import gymnasium as gym

    import offrl.envs  # noqa: F401  (registers the safety tasks)
    from offrl.envs.safety import point_robot_margin

    env = gym.make("offrl/PointRobot-v0")
    observation, info = env.reset(seed=0)
    assert info["margin"] == pytest.approx(float(point_robot_margin(observation)))
    from offrl.envs.safety import POINT_ROBOT_HAZARDS

    violations = 0
    for _ in range(100):
        # Drive at the middle hazard's centre.
        toward = np.clip(POINT_ROBOT_HAZARDS[0, :2] - observation[:2], -1, 1).astype(np.float32)
        observation, _, terminated, truncated, info = env.step(toward)
        assert info["margin"] == pytest.approx(float(point_robot_margin(observation)), abs=1e-5)
        assert info["cost"] == float(info["margin"] < 0)
        violations += info["margin"] < 0
        if terminated or truncated:
            break
    assert truncated and violations > 0


def test_velocity_task_margin_is_limit_minus_forward_velocity():
    import gymnasium as gym

    import offrl.envs  # noqa: F401

    env = gym.make("offrl/HopperVelocity-v0")
    env.reset(seed=0)
    observation, *_, info = env.step(env.action_space.sample())
    assert info["margin"] == pytest.approx(0.7402 - float(observation[5]))
    env.close()


def test_safety_recipe_is_deterministic_and_carded(tmp_path, monkeypatch):
    from offrl import suites
    from offrl.suites import safety

    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(
        safety.RECIPES,
        "pointrobot-tiny",
        {
            "task": "pointrobot",
            "parts": [
                dict(behavior="seeker", num_episodes=6, seed=1, noise_std=0.3),
                dict(behavior="safe", num_episodes=4, seed=2, first_reset_seed=100, noise_std=0.1),
            ],
        },
    )
    first, second = safety.build("pointrobot-tiny"), safety.build("pointrobot-tiny")
    assert first.digest() == second.digest()
    assert first.margins is not None and first.costs is not None
    from offrl.envs.safety import point_robot_margin

    np.testing.assert_allclose(first.margins, point_robot_margin(first.observations), atol=1e-5)
    np.testing.assert_array_equal(
        first.costs, (point_robot_margin(first.next_observations) < 0).astype(np.float32)
    )
    # Through Minari and back: margins and costs survive, the card reports violations.
    path = suites.build_suite_dataset("pointrobot-tiny")
    loaded = suites.load_suite_dataset("pointrobot-tiny")
    np.testing.assert_array_equal(loaded.margins, first.margins)
    np.testing.assert_array_equal(loaded.costs, first.costs)
    import json

    card = json.loads((path / "card.json").read_text())
    expected = float(np.mean(first.margins < 0))
    assert card["safety"]["violation_rate"] == pytest.approx(expected)
    assert "violate" in (path / "card.md").read_text()


def test_d4rl_hdf5_import_reads_costs_and_margins(tmp_path):
    h5py = pytest.importorskip("h5py")
    from offrl.data.formats.hdf5 import read_d4rl_hdf5

    n = 10
    path = tmp_path / "safe.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
        f["next_observations"] = np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 2
        f["actions"] = np.zeros((n, 1), np.float32)
        f["rewards"] = np.ones(n, np.float32)
        f["terminals"] = np.zeros(n, bool)
        timeouts = np.zeros(n, bool)
        timeouts[[4, 9]] = True
        f["timeouts"] = timeouts
        f["costs"] = np.arange(n, dtype=np.float32) % 2
        f["margins"] = np.linspace(-1, 1, n).astype(np.float32)
    data = read_d4rl_hdf5(path)
    np.testing.assert_array_equal(data.costs, np.arange(n) % 2)
    np.testing.assert_allclose(data.margins, np.linspace(-1, 1, n), rtol=1e-6)


# ----------------------------------------------------------------- evaluation and shield
def test_rollouts_count_violations():
    from offrl.envs.rollout import evaluate
    from offrl.envs.safety import POINT_ROBOT_HAZARDS, point_robot_margin

    centre = POINT_ROBOT_HAZARDS[0, :2]

    def at_the_hazard(observations, key):
        return np.clip(centre - np.asarray(observations)[..., :2], -1, 1).astype(np.float32)

    result = evaluate(at_the_hazard, "offrl/PointRobot-v0", num_seeds=1, num_episodes=3)
    # Replay the same episodes by hand.
    import gymnasium as gym

    env = gym.make("offrl/PointRobot-v0")
    expected = []
    for episode in range(3):
        observation, _ = env.reset(seed=10_000 + episode)
        count = 0
        for _ in range(100):
            observation, *_ = env.step(at_the_hazard(observation[None], None)[0])
            count += point_robot_margin(observation) < 0
        expected.append(count)
    np.testing.assert_array_equal(result.violations[0], expected)
    assert min(expected) > 0
    safety = result.safety()
    assert safety["violation_rate"] == pytest.approx(sum(expected) / 300)
    assert safety["episodes_with_violation"] == pytest.approx(np.mean(np.array(expected) > 0))


def test_shield_keeps_actions_in_bounds_and_none_is_the_nominal(tmp_path):
    from offrl.run.train import TrainConfig, train
    from offrl.safety.shield import load_barrier, shielded_policy

    data = _unsafe_current_dataset(n=2000)
    train(
        "vocbf",
        data,
        tmp_path / "barrier",
        vocbf.Config(hidden_dims=(16,), bc_hidden_dims=(8,), dynamics_hidden_dims=(8,)),
        TrainConfig(
            heldout_episodes=10,
            steps=200,
            eval_every=0,
            checkpoint_every=200,
            seeds=(0, 1),
            progress=False,
        ),
    )
    barrier = load_barrier(tmp_path / "barrier")

    def nominal(observations, key):
        return jnp.full((*observations.shape[:-1], 1), 5.0)  # far outside the bounds

    observations = np.linspace(-2.5, 2.5, 3 * 7).reshape(3, 7, 1).astype(np.float32)
    for mode in ("cbf", "qc"):
        shielded, diagnose = shielded_policy(nominal, 3, barrier, mode)
        actions = np.asarray(shielded(observations, jax.random.PRNGKey(0)))
        assert actions.shape == (3, 7, 1)
        assert np.all(actions <= 1.0 + 1e-6) and np.all(actions >= -1.0 - 1e-6)
        assert set(diagnose(observations, jax.random.PRNGKey(0))) == {
            "barrier",
            "feasible",
            "intervened",
        }
    unfiltered, _ = shielded_policy(
        lambda o, k: jnp.full((*o.shape[:-1], 1), 0.3), 2, barrier, "none"
    )
    np.testing.assert_allclose(
        np.asarray(unfiltered(observations[:2], jax.random.PRNGKey(0))), 0.3, rtol=1e-6
    )


def test_a_policy_run_is_not_a_barrier(tmp_path):
    from offrl.run.train import RunError, TrainConfig, train
    from offrl.safety.shield import load_barrier

    data = _unsafe_current_dataset(n=500)
    train(
        "bc",
        data,
        tmp_path / "bc",
        None,
        TrainConfig(heldout_episodes=10, steps=10, eval_every=0, progress=False),
    )
    with pytest.raises(RunError, match="not a barrier"):
        load_barrier(tmp_path / "bc")


def test_cbf_filter_with_a_valid_barrier_keeps_the_point_robot_safe():
    # The hand-written braking-distance barrier with the true dynamics (the dataset's
    # cautious operator): the seeker violates in every episode, filtered it never does.
    from offrl.suites.safety import collect_point_robot

    seeker = collect_point_robot("seeker", num_episodes=5, seed=0)
    cautious = collect_point_robot("safe", num_episodes=5, seed=0)
    assert all(ep["costs"].sum() > 0 for ep in seeker)
    assert sum(ep["costs"].sum() for ep in cautious) == 0
    assert np.all(np.concatenate([ep["margins"] for ep in cautious]) >= 0)
    # ... and it still gets most of the way: the goal bonus is collected.
    assert np.mean([ep["rewards"].sum() for ep in cautious]) > 40


def test_cli_fit_a_barrier_and_filter_a_policy(tmp_path, monkeypatch, capsys):
    import json

    from offrl.cli import main
    from offrl.suites import safety

    monkeypatch.setenv("OFFRL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(
        safety.RECIPES,
        "pointrobot-cli",
        {
            "task": "pointrobot",
            "parts": [
                dict(behavior="seeker", num_episodes=4, seed=1, noise_std=0.3),
                dict(behavior="random", num_episodes=2, seed=2, first_reset_seed=100),
            ],
        },
    )
    small = ["--steps", "50", "--eval-every", "0", "--checkpoint-every", "50", "--no-progress"]
    main(["safety", "fit", "--dataset", "suite:pointrobot-cli", "--run-dir",
          str(tmp_path / "barrier"), "--hidden-dims", "16", "--bc-hidden-dims", "16",
          "--dynamics-hidden-dims", "8", *small])  # fmt: skip
    main(["train", "bc", "--dataset", "suite:pointrobot-cli", "--run-dir",
          str(tmp_path / "bc"), "--hidden-dims", "16", *small])  # fmt: skip
    capsys.readouterr()
    main(["eval", str(tmp_path / "bc"), "--episodes", "2", "--filter", str(tmp_path / "barrier"),
          "--filter-mode", "qc"])  # fmt: skip
    out = capsys.readouterr().out
    assert "filtered by" in out and "violation rate" in out
    written = json.loads((tmp_path / "bc" / "eval_step_50_filtered_qc.json").read_text())
    assert written["filter"]["mode"] == "qc"
    assert 0.0 <= written["violation_rate"] <= 1.0
    assert len(written["violations"][0]) == 2
    # Without margins in the data a barrier cannot be fit: a clear message, exit 2.
    with pytest.raises(SystemExit):
        main(["safety", "fit", "--dataset", "suite:pendulum-expert", "--run-dir",
              str(tmp_path / "nope"), *small])  # fmt: skip
    assert "needs the dataset field(s) margins" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_filter_margin_reaches_both_filters():
    rng = np.random.default_rng(5)
    config = vocbf.Config(hidden_dims=(32,), bc_hidden_dims=(8,), dynamics_hidden_dims=(8,))
    state = vocbf.init(config, example_batch(4, 2), jax.random.PRNGKey(2))
    observations = jnp.asarray(rng.normal(size=(64, 4)), jnp.float32)
    nominal = jnp.asarray(rng.uniform(-1, 1, (64, 2)), jnp.float32)
    for mode in ("cbf", "qc"):
        q = vocbf.safe_q(state, observations, nominal)
        b = vocbf.barrier(state, observations)
        # A margin above every value makes every row count as intervened; one below, none.
        top = float(jnp.maximum(q.max(), b.max())) + 10.0
        bottom = float(jnp.minimum(q.min(), b.min())) - 10.0
        _, high = vocbf.filter_actions(state, observations, nominal, config, mode, top)
        _, low = vocbf.filter_actions(state, observations, nominal, config, mode, bottom)
        assert bool(np.all(np.asarray(high["intervened"])))
        assert not bool(np.any(np.asarray(low["intervened"])))
