"""NeoRL-2-style tasks and data: each challenge on a case with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.envs import industrial as plants
from offrl.envs import make_env


def test_dmsd_level_is_reproducible_from_the_reset_seed():
    a, b = make_env("offrl/DMSD-v0"), make_env("offrl/DMSD-v0")
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    assert a.unwrapped.level() == b.unwrapped.level()
    np.testing.assert_array_equal(obs_a, obs_b)
    b.reset(seed=8)
    assert a.unwrapped.level() != b.unwrapped.level()
    # The observation carries the targets, not the masses or the load.
    np.testing.assert_allclose(obs_a[4:], a.unwrapped.level()["target"], rtol=1e-6)


def test_dmsd_load_acts_from_its_step_and_cost_is_the_actuator_energy():
    env = make_env("offrl/DMSD-v0").unwrapped
    env.reset(seed=3)
    level = env.level()
    # At rest at the origin, with zero force, only the load moves mass 2: before its
    # step nothing moves, and on the step it switches on v2 = L dt / m2 after the
    # first substep and accumulates over the five.
    env._state = np.zeros(4)
    for _ in range(level["load_step"]):
        obs, _, _, _, info = env.step(np.zeros(2, np.float32))
        assert np.all(obs[:4] == 0.0) and info["cost"] == 0.0
    obs, *_ = env.step(np.zeros(2, np.float32))
    assert obs[3] != 0.0 and np.sign(obs[3]) == np.sign(level["load"])
    assert obs[0] == 0.0 or abs(obs[0]) < abs(obs[1])  # mass 1 only feels it through k2
    # cost: ||5 u||^2 dt exactly
    _, _, _, _, info = env.step(np.array([0.2, -0.6], np.float32))
    assert info["cost"] == pytest.approx((1.0 + 9.0) * plants.DMSD_DT, rel=1e-6)


def test_dmsd_evaluation_sums_costs_against_the_budget():
    from offrl.envs.rollout import evaluate

    def constant(observations, key):  # [S, N, 6] -> [S, N, 2]
        return np.full(observations.shape[:2] + (2,), 0.5, np.float32)

    result = evaluate(constant, "offrl/DMSD-v0", num_seeds=2, num_episodes=3)
    per_step = 2 * (5 * 0.5) ** 2 * plants.DMSD_DT  # 0.625
    np.testing.assert_allclose(result.costs, per_step * 100, rtol=1e-5)
    assert result.cost_budget == plants.DMSD_ENERGY_BUDGET
    summary = result.cost_summary()
    assert summary["within_budget_per_seed"] == [0.0, 0.0]  # 62.5 > 30
    np.testing.assert_allclose(summary["cost_per_seed"], [62.5, 62.5], rtol=1e-5)


def test_pipeline_transport_delay_without_dispersion(monkeypatch):
    """With no dispersion and no off-take, a step in the inflow reaches the outlet
    exactly 40 steps later, not one step earlier."""
    monkeypatch.setattr(plants, "PIPE_DISPERSION", 0.0)
    env = make_env("offrl/Pipeline-v0").unwrapped
    env.reset(seed=0)
    env._offtake = 0.0
    env._cells = np.full(plants.PIPE_CELLS, 1.0)
    outlets = []
    for _ in range(45):
        obs, *_ = env.step(np.array([0.5], np.float32))  # inflow 1.5
        outlets.append(obs[-1])
    assert outlets[: plants.PIPE_CELLS - 1] == [1.0] * (plants.PIPE_CELLS - 1)
    assert outlets[plants.PIPE_CELLS - 1] == pytest.approx(1.5)


def test_pipeline_dispersion_keeps_one_cell_a_step_on_average():
    cells = np.zeros(plants.PIPE_CELLS)
    cells[10] = 1.0
    moved = plants.pipe_step(cells, 0.0)
    assert moved.sum() == pytest.approx(1.0)
    assert (np.arange(plants.PIPE_CELLS) * moved).sum() == pytest.approx(11.0)


def test_pipeline_expert_infers_the_offtake_exactly():
    from offrl.suites.industrial import pipeline_expert

    env = make_env("offrl/Pipeline-v0")
    obs, _ = env.reset(seed=5)
    expert = pipeline_expert()
    for _ in range(3):
        obs, *_ = env.step(expert(obs))
    expert(obs)
    assert expert.offtake == pytest.approx(env.unwrapped.level()["offtake"], abs=1e-5)


def test_random_friction_is_drawn_per_reset_from_the_seed():
    a, b = make_env("offrl/RandomFrictionHopper-v0"), make_env("offrl/RandomFrictionHopper-v0")
    _, info_a = a.reset(seed=11)
    _, info_b = b.reset(seed=11)
    assert info_a["friction"] == info_b["friction"]
    base = b.unwrapped.model.geom_friction[:, 0] / info_b["friction"]
    _, info_c = b.reset(seed=12)
    assert info_c["friction"] != info_a["friction"]
    assert plants.HOPPER_FRICTION[0] <= info_c["friction"] <= plants.HOPPER_FRICTION[1]
    np.testing.assert_allclose(b.unwrapped.model.geom_friction[:, 0], base * info_c["friction"])


def test_wind_is_a_seeded_offset_on_the_applied_action():
    windy, plain = make_env("Pendulum-v1@wind=0.5"), make_env("Pendulum-v1")
    obs, info = windy.reset(seed=4)
    again = make_env("Pendulum-v1@wind=0.5")
    assert again.reset(seed=4)[1]["disturbance"] == pytest.approx(info["disturbance"])
    assert make_env("Pendulum-v1@wind=0.5").reset(seed=5)[1]["disturbance"] != pytest.approx(
        info["disturbance"]
    )
    offset = info["disturbance"]
    assert np.all(np.abs(offset) <= 0.5 * 2.0)  # half of Pendulum's range is 2
    plain.reset(seed=4)
    for torque in (0.3, -1.9, 1.95):
        action = np.array([torque], np.float32)
        windy_obs, *_ = windy.step(action)
        plain_obs, *_ = plain.step(np.clip(action + offset, -2.0, 2.0))
        np.testing.assert_allclose(windy_obs, plain_obs, rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        make_env("Pendulum-v1@wind=0")


def test_delay_and_wind_combine_on_an_industrial_task():
    env = make_env("offrl/DMSD-v0@delay=2,wind=0.2")
    obs, info = env.reset(seed=1)
    assert obs.shape == (6 + 2 * 2,) and "disturbance" in info


@pytest.fixture(scope="module")
def small_dmsd():
    from offrl.suites.industrial import build

    return build("dmsd-pid", num_steps=3_000)


def test_dmsd_data_split_between_training_and_validation_policies(small_dmsd):
    from offrl.suites import industrial

    data = small_dmsd
    subsets = dict(data.info.subsets)
    validation, train = set(subsets["validation"]), set(subsets["train"])
    assert validation and train and not validation & train
    assert validation | train == set(range(data.num_episodes))
    assert sorted(validation) == list(subsets["behavior-3"])
    # The first validation episode is the fourth controller's, the first training
    # episode the first's: the controller with the recipe's seed, fed the recorded
    # states, gives back the recorded actions (noise included) exactly.
    recipe = industrial.RECIPES["dmsd-pid"]
    starts, lengths = np.asarray(data.episode_starts), np.asarray(data.episode_lengths)

    def replays(episode: int, index: int) -> bool:
        policy = industrial.DMSDController(
            **recipe["behaviors"][index], seed=recipe["seed"] * 10 + index
        )
        rows = slice(starts[episode], starts[episode] + lengths[episode])
        predicted = np.stack([policy(o) for o in np.asarray(data.observations)[rows]])
        return np.allclose(predicted, np.asarray(data.actions)[rows], atol=1e-6)

    first_validation, first_train = sorted(validation)[0], sorted(train)[0]
    assert replays(first_validation, 3) and not replays(first_validation, 0)
    assert replays(first_train, 0) and not replays(first_train, 3)


def test_training_data_keeps_the_validation_policy_out(small_dmsd):
    from offrl.run.train import TrainConfig, training_data

    train, valid = training_data(small_dmsd, TrainConfig(validation_key="validation"))
    subsets = dict(small_dmsd.info.subsets)
    assert valid.num_episodes == len(subsets["validation"])
    assert train.num_episodes == len(subsets["train"])
    assert len(train.rewards) + len(valid.rewards) == len(small_dmsd.rewards)


def test_behavior_score_is_the_training_episodes_normalized_return(small_dmsd, monkeypatch):
    from offrl import bench
    from offrl.envs.registry import TASKS

    monkeypatch.setattr("offrl.data.load_dataset", lambda spec: small_dmsd)
    task = TASKS["dmsd"]
    subsets = dict(small_dmsd.info.subsets)
    returns = small_dmsd.episode_returns()[list(subsets["train"])]
    expected = 100 * (returns - task.random_return) / (task.expert_return - task.random_return)
    got = bench.behavior_score("suite:dmsd-pid", "validation")
    assert got["behavior_mean"] == pytest.approx(expected.mean())
    assert got["behavior_std"] == pytest.approx(expected.std(ddof=1))
    assert got["behavior_episodes"] == len(subsets["train"])


def test_dmsd_card_reports_the_budget_and_the_subsets(small_dmsd):
    from offrl.data.summary import summarize

    summary = summarize(small_dmsd)
    safety = summary["safety"]
    assert safety["budget"] == plants.DMSD_ENERGY_BUDGET and "violation_rate" not in safety
    costs = np.add.reduceat(np.asarray(small_dmsd.costs, np.float64), small_dmsd.episode_starts)
    assert safety["episodes_within_budget"] == pytest.approx(np.mean(costs <= 30.0))
    assert set(summary["subsets"]) >= {"train", "validation", "behavior-0"}
    assert "normalized_return_mean" in summary["subsets"]["validation"]


def test_bench_settings_reach_only_the_algorithms_that_have_them():
    from offrl import bench
    from offrl.algos import bc, bc_rnn, cql
    from offrl.run.settings import RunError

    config, changed = bench.algorithm_settings(
        "cql", cql.Config(), ("hidden_dims=64,64", "critic_hidden_dims=32,32", "hidden_dim=8")
    )
    assert config.hidden_dims == (64, 64) and config.critic_hidden_dims == (32, 32)
    assert changed == ["critic_hidden_dims", "hidden_dims"]
    same, changed = bench.algorithm_settings("bc_rnn", bc_rnn.Config(), ("hidden_dims=64,64",))
    assert changed == [] and same == bc_rnn.Config()
    assert (
        bench.algorithm_settings("bc", bc.Config(), ("learning_rate=0.01",))[0].learning_rate
        == 0.01
    )
    # a scalar whose default is None stays a scalar (DT's target return)
    from offrl.algos import dt

    config, _ = bench.algorithm_settings("dt", dt.Config(), ("target_return=3600", "backbone=ssm"))
    assert config.target_return == 3600.0 and isinstance(config.target_return, float)
    assert config.backbone == "ssm"
    none, _ = bench.algorithm_settings("cql", cql.Config(), ("critic_hidden_dims=none",))
    assert none == cql.Config()
    with pytest.raises(RunError, match="no offline algorithm"):
        bench.BenchConfig(algorithms=("bc",), settings=("num_critic=3",)).check()
    with pytest.raises(RunError, match="FIELD=VALUE"):
        bench.BenchConfig(algorithms=("bc",), settings=("hidden_dims",)).check()


def test_push_moves_the_block_out_along_the_contact_normal():
    from offrl.envs.push import CONTACT, push

    effector, block = push(np.array([-0.15, 0.0]), np.zeros(2), np.array([1.0, 0.0]))
    np.testing.assert_allclose(effector, [-0.05, 0.0])
    np.testing.assert_allclose(block, [-0.05 + CONTACT, 0.0])  # overlap resolved exactly
    _, still = push(np.array([-0.15, 0.0]), np.zeros(2), np.array([-1.0, 0.5]))
    np.testing.assert_array_equal(still, np.zeros(2))  # moving away leaves it


def test_scripted_pusher_reaches_every_goal_and_teleop_pauses():
    from offrl.suites.collect import run_controller
    from offrl.suites.manipulation import ENV_ID, Pusher, Teleoperator

    episodes = run_controller(ENV_ID, Pusher, 5, first_reset_seed=800_000_000)
    assert all(ep["rewards"][-1] > 0 for ep in episodes)  # ends inside the goal
    teleop = run_controller(ENV_ID, lambda: Teleoperator(pause=0.2), 2, first_reset_seed=1)
    still = np.all(np.concatenate([ep["actions"] for ep in teleop]) == 0.0, axis=1)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, still.astype(int), 0])))[::2]
    assert runs.size and runs.max() >= 5  # a pause lasts 5-15 steps


def test_push_data_sources_are_deterministic_and_valid():
    from offrl.suites import manipulation

    for name in manipulation.RECIPES:
        first, again = manipulation.build(name, 300), manipulation.build(name, 300)
        assert first.num_episodes == 3 and first.digest() == again.digest()
    play = manipulation.build("push-play", 300)
    env = make_env("offrl/Push-v0")
    obs, _ = env.reset(seed=502 * 100_000)  # the recipe's first reset
    np.testing.assert_allclose(np.asarray(play.observations)[0], obs)
    _, reward, *_ = env.step(np.asarray(play.actions)[0])
    assert np.asarray(play.rewards)[0] == pytest.approx(reward)  # the task's reward


def test_selection_scores_action_error_on_the_validation_subset(small_dmsd, tmp_path):
    from offrl.algos import bc
    from offrl.evaluate.fqe import FQEConfig
    from offrl.evaluate.selection import analyze_run
    from offrl.run.train import TrainConfig, train

    config = TrainConfig(
        steps=100,
        eval_every=100,
        checkpoint_every=100,
        eval_episodes=1,
        heldout_episodes=0,
        seeds=(0,),
        steps_per_call=100,
        progress=False,
        validation_key="validation",
    )
    train("bc", small_dmsd, tmp_path / "bc", bc.Config(hidden_dims=(16,)), config)
    fqe = FQEConfig(updates=50, bootstrap=1, hidden_dims=(16,), batch_size=32)
    analysis = analyze_run(tmp_path / "bc", dataset=small_dmsd, fqe_config=fqe)
    assert analysis["validation_source"] == "validation subset 'validation'"
    assert np.isfinite(analysis["signals"]["validation"]).all()


def test_a_tuple_setting_whose_default_is_none_reads_back_as_a_tuple():
    """config.json stores tuples as lists; a field typed ``tuple | None`` (CQL's
    critic_hidden_dims) set by --settings came back as a list, and the unhashable
    list broke every later load of the run (offrl eval, select, --resume)."""
    from offrl.algos import cql
    from offrl.run.settings import from_dict

    config = from_dict(cql.Config, {"critic_hidden_dims": [64, 64], "hidden_dims": [32]})
    assert config.critic_hidden_dims == (64, 64) and config.hidden_dims == (32,)
    hash(config)


def test_costs_reach_the_eval_record_the_metrics_and_the_summary():
    from offrl.envs.rollout import EvaluationResult
    from offrl.run.rundir import (
        evaluation_metrics,
        evaluation_record,
        evaluations_from_metrics,
        score_summary,
    )

    result = EvaluationResult(
        returns=np.ones((2, 3)),
        lengths=np.full((2, 3), 100),
        normalized=None,
        costs=np.array([[10.0, 40.0, 20.0], [50.0, 31.0, 30.0]]),
        cost_budget=30.0,
    )
    record = evaluation_record(7, result)
    np.testing.assert_allclose(record["cost_per_seed"], [70 / 3, 37.0])
    np.testing.assert_allclose(record["within_budget_per_seed"], [2 / 3, 1 / 3])
    metrics = {"step": 7, **evaluation_metrics(record)}
    assert metrics["eval/within_budget"] == pytest.approx(0.5)
    assert evaluations_from_metrics([metrics])[0]["cost_per_seed"] == record["cost_per_seed"]
    summary = score_summary([record], {"final": record})
    assert summary["final_within_budget_per_seed"] == record["within_budget_per_seed"]
    assert summary["final_cost_per_seed"] == record["cost_per_seed"]
