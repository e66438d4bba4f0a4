"""Meta-DT and its test bed: the prompt choice, the histories, the same-task pools,
the hidden-goal task and its data, and few-shot evaluation end to end."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos import meta_dt
from offrl.envs import goals, make_env

SMALL = dict(embedding_dim=8, num_layers=1, context_length=3, warmup_steps=0,
             context_horizon=2, context_dim=4, context_hidden=8, prompt_length=2,
             prompt_pool=6, return_scale=0.1)  # fmt: skip


def test_prompt_is_the_segment_with_the_largest_world_model_error():
    errors = jnp.asarray([[0.0, 1.0, 0.0, 5.0, 5.0, 0.0, 0.0, 9.0, 0.0]])
    mask = jnp.ones_like(errors)
    steps = jnp.arange(9)[None]
    # two-step sums: 1 1 5 10 5 0 9 9 -> the segment at 3 (errors 5 + 5)
    assert int(meta_dt.select_prompt(errors, mask, steps, 2, 0)[0]) == 3
    # segments must start at step 4 or later: 5 0 9 9 -> the first 9, at 6
    assert int(meta_dt.select_prompt(errors, mask, steps, 2, 4)[0]) == 6
    # a padded step rules its segments out: with step 8 padding, 7 (9 + 0) goes too
    padded = mask.at[0, 7].set(0.0)
    scores = meta_dt.segment_errors(errors, padded, steps, 2, 4)
    assert np.isneginf(np.asarray(scores)[0, [6, 7]]).all()
    assert int(meta_dt.select_prompt(errors, padded, steps, 2, 4)[0]) == 4
    # no segment late enough: the largest anywhere
    assert int(meta_dt.select_prompt(errors, mask, steps, 2, 99)[0]) == 3
    # three-step segments and a batch of two episodes
    two = jnp.asarray([[3.0, 0.0, 0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]])
    starts = meta_dt.select_prompt(two, jnp.ones_like(two), jnp.arange(6)[None], 3, 0)
    assert np.asarray(starts).tolist() == [0, 3]


def test_histories_hold_the_h_previous_steps_and_zeros_before_the_start():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(1, 5, 2)).astype(np.float32)
    act = rng.normal(size=(1, 5, 3)).astype(np.float32)
    rew = rng.normal(size=(1, 5)).astype(np.float32)
    o, a, r = (np.asarray(x) for x in meta_dt.histories_in(obs, act, rew, 3))
    assert o.shape == (1, 5, 3, 2) and a.shape == (1, 5, 3, 3) and r.shape == (1, 5, 3)
    for t in range(5):
        for j in range(3):  # oldest first: slot j holds step t - 3 + j
            source = t - 3 + j
            want = obs[0, source] if source >= 0 else np.zeros(2)
            np.testing.assert_array_equal(o[0, t, j], want)
            assert r[0, t, j] == (rew[0, source] if source >= 0 else 0.0)


@pytest.fixture(scope="module")
def goal_data():
    from offrl.suites.meta import build

    return meta_dt.prepare_dataset(build("hidden-goal", num_steps=600), None)


def test_hidden_goal_data_keeps_each_task_in_its_subset(goal_data):
    names = [n for n in goal_data.info.subset_names() if n.startswith("task-")]
    assert len(names) == len(goals.TRAIN_GOALS)
    assert {int(n[5:]) for n in names} == set(goals.TRAIN_GOALS)
    starts, lengths = np.asarray(goal_data.episode_starts), np.asarray(goal_data.episode_lengths)
    covered = []
    for name in names:
        goal = goals.goal_position(int(name[5:]))
        for episode in goal_data.subset_episodes(name):
            rows = slice(starts[episode], starts[episode] + lengths[episode])
            # every reward is minus the distance of the next position to that goal
            distance = np.linalg.norm(np.asarray(goal_data.next_observations)[rows] - goal, axis=1)
            np.testing.assert_allclose(np.asarray(goal_data.rewards)[rows], -distance, atol=1e-5)
            covered.append(int(episode))
    assert sorted(covered) == list(range(len(starts)))


def test_hidden_goal_task_comes_from_the_reset_seed():
    train, test = make_env("offrl/HiddenGoalTrain-v0"), make_env("offrl/HiddenGoalTest-v0")
    assert not set(goals.TRAIN_GOALS) & set(goals.TEST_GOALS)
    _, info = test.reset(seed=12)
    assert info["task"] == goals.TEST_GOALS[12 % 5]
    _, again = test.reset(seed=12 + 5)  # the same task five resets later
    assert again["task"] == info["task"]
    _, other = train.reset(seed=4)
    assert other["task"] == goals.TRAIN_GOALS[4]
    obs, reward, terminated, truncated, _ = test.step(np.array([1.0, 0.5], np.float32))
    np.testing.assert_allclose(obs, [0.1, 0.05], atol=1e-7)
    assert reward == pytest.approx(-np.linalg.norm(np.array([0.1, 0.05]) - info["goal"]))
    assert not terminated and not truncated


def test_pools_come_from_episodes_of_the_same_task(goal_data):
    config = meta_dt.Config(**SMALL)
    batch = jax.jit(meta_dt.sample_batch, static_argnums=(2, 3))(
        goal_data, jax.random.PRNGKey(3), 64, config
    )
    tasks = meta_dt.episode_tasks(goal_data)
    starts = np.asarray(goal_data.episode_starts)
    obs = np.asarray(goal_data.observations)

    def task_of(observation, timestep):
        rows = np.flatnonzero(np.abs(obs - observation).sum(1) < 1e-7)
        return {tasks[np.searchsorted(starts, r, side="right") - 1] for r in rows if timestep > 0}

    checked = 0
    for b in range(64):
        for k in range(config.prompt_pool):
            t_window, t_pool = int(batch["timesteps"][b, 0]), int(batch["pool_timesteps"][b, k])
            if t_window == 0 or t_pool == 0 or batch["pool_mask"][b, k] == 0:
                continue  # the start position is the same for every episode
            mine = task_of(np.asarray(batch["observations"][b, 0]), t_window)
            theirs = task_of(np.asarray(batch["pool_observations"][b, k]), t_pool)
            assert mine & theirs, (b, k)
            checked += 1
            break
    assert checked > 30
    # each window step's history is the h steps before it in the dataset
    horizon = config.context_horizon
    episode_of = np.searchsorted(starts, np.arange(len(obs)), side="right") - 1
    actions, rewards = np.asarray(goal_data.actions), np.asarray(goal_data.rewards)
    seen_start = 0
    for b in range(64):
        for i in range(config.context_length):
            if batch["mask"][b, i] == 0:
                continue
            t = int(batch["timesteps"][b, i])
            matches = np.flatnonzero(
                (np.abs(obs - np.asarray(batch["observations"][b, i])).sum(1) < 1e-7)
                & (np.arange(len(obs)) - starts[episode_of] == t)
            )
            row = int(matches[0])
            for j in range(horizon):
                back = t - horizon + j
                seen_start += back == 0
                for name, values in (("observations", obs), ("actions", actions),
                                     ("rewards", rewards)):  # fmt: skip
                    got = np.asarray(batch[f"history_{name}"][b, i, j])
                    want = values[row - horizon + j] if back >= 0 else 0.0 * values[0]
                    np.testing.assert_array_equal(got, want)
    assert seen_start > 0  # the episode's first step is in some history


def _init(config):
    example = {"observations": jnp.zeros((1, 2)), "actions": jnp.zeros((1, 2))}
    # jitted: compiling init is faster than running it op by op
    return jax.jit(lambda key: meta_dt.init(config, example, key))(jax.random.PRNGKey(0))


def test_act_reads_what_training_reads(goal_data):
    """The contexts ``act`` derives from a rollout window (rewards from the drops in
    the returns-to-go) equal the ones training gathers from the dataset, so a
    window's action equals the network on the training inputs."""
    config = meta_dt.Config(**SMALL)
    state = _init(config)
    k, h = config.context_length, config.context_horizon
    first = int(np.asarray(goal_data.episode_starts)[1])
    t = 10  # the step acted on: the window (K + h steps) has slid
    rows = np.arange(first + t - (k + h) + 1, first + t + 1)
    window = {
        "observations": jnp.asarray(goal_data.observations)[rows][None],
        "actions": jnp.asarray(goal_data.actions)[rows][None].at[0, -1].set(0.0),
        "returns_to_go": jnp.asarray(goal_data.mc_returns)[rows][None],
        "timesteps": jnp.arange(t - (k + h) + 1, t + 1)[None].astype(jnp.int32),
        "mask": jnp.ones((1, k + h)),
    }
    act = jax.jit(meta_dt.act, static_argnums=(3, 4))
    action = act(state, window, jax.random.PRNGKey(0), True, config)
    # the training side: the window of K rows ending at t, histories from the dataset
    from offrl.data.windows import window_rows, windows_at

    starts = jnp.asarray([first + t - k + 1])
    batch = windows_at(goal_data, starts, k)
    wrows, steps, _ = window_rows(goal_data, starts, k)
    history = meta_dt._history_from_rows(goal_data, wrows, steps, h)
    z = state.world.apply_fn(state.world.params, *history,
                             method=meta_dt.ContextWorldModel.encode)  # fmt: skip
    out = state.actor.apply_fn(state.actor.params, batch["observations"],
                               batch["actions"].at[0, -1].set(0.0), batch["returns_to_go"],
                               batch["timesteps"], None, contexts=z)  # fmt: skip
    np.testing.assert_allclose(action, out["actions"][:, -1], atol=1e-5)
    # and the context matters: another task's history changes the action
    other = dict(window, returns_to_go=window["returns_to_go"] * 0.5)
    changed = act(state, other, jax.random.PRNGKey(0), True, config)
    assert not np.allclose(changed, action)


def test_world_model_learns_the_hidden_goal_from_the_history(goal_data):
    """The reward decoder's error falls well below the reward's own variance: the
    context carries the goal the observations do not."""
    config = meta_dt.Config(**SMALL)
    state = _init(config)

    @jax.jit
    def step(state, key):
        batch = meta_dt.sample_batch(goal_data, key, 64, config)
        batch["terminations"] = batch["terminations"].astype(jnp.float32)
        return meta_dt.update(state, batch, config)

    for i in range(300):
        state, metrics = step(state, jax.random.PRNGKey(i))
    variance = float(np.var(np.asarray(goal_data.rewards)))
    assert float(metrics["world/reward_mse"]) < 0.1 * variance


def test_few_shot_runs_a_prompted_second_episode(tmp_path):
    from offrl.cli import main
    from offrl.evaluate.meta import few_shot

    run = tmp_path / "meta"
    small = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    main(["train", "meta_dt", "--dataset", "suite:hidden-goal", "--run-dir", str(run),
          "--steps", "4", "--batch-size", "8", "--eval-every", "0", "--checkpoint-every", "4",
          "--heldout-episodes", "0", "--seeds", "0", "1", "--no-progress", *small])  # fmt: skip
    out = few_shot(run, "offrl/HiddenGoalTest-v0", num_tasks=5, episodes=2)
    assert np.shape(out["normalized"]) == (2, 2, 5)
    starts = np.asarray(out["prompt_starts"])
    # prompts are full segments of the 20-step first episode, after the context horizon
    assert starts.shape == (2, 5)
    assert (starts >= SMALL["context_horizon"]).all()
    assert (starts + SMALL["prompt_length"] <= 19).all()
    # the second episode repeats the first's task and start, so only the prompt it
    # carries can make it differ
    assert not np.allclose(out["returns"][0], out["returns"][1])


def test_a_prompt_in_environment_units_is_preprocessed_like_the_window():
    """``act_in_env`` maps a few-shot prompt's observations and actions through the run's
    preprocessor, as it maps the window's: the action equals ``act`` on both mapped."""
    from offrl.core.trainer import act_in_env
    from offrl.data.preprocess import Preprocessor

    config = meta_dt.Config(**SMALL)
    state = _init(config)
    pre = Preprocessor(
        observation_mean=np.array([0.3, -0.2], np.float32),
        observation_std=np.array([0.5, 2.0], np.float32),
        action_low=np.array([-2.0, -0.5], np.float32),
        action_high=np.array([2.0, 1.5], np.float32),
        reward_scale=np.float32(1.0),
        reward_shift=np.float32(0.0),
    )
    rng = np.random.default_rng(5)
    length, p = config.context_length + config.context_horizon, config.prompt_length
    window = {
        "observations": jnp.asarray(rng.normal(size=(1, length, 2)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-0.5, 1.5, (1, length, 2)), jnp.float32),
        "returns_to_go": jnp.asarray(rng.normal(size=(1, length)), jnp.float32),
        "timesteps": jnp.arange(length)[None].astype(jnp.int32),
        "mask": jnp.ones((1, length)),
        "prompt_observations": jnp.asarray(rng.normal(size=(1, p, 2)), jnp.float32),
        "prompt_actions": jnp.asarray(rng.uniform(-0.5, 1.5, (1, p, 2)), jnp.float32),
        "prompt_returns_to_go": jnp.asarray(rng.normal(size=(1, p)), jnp.float32),
        "prompt_timesteps": jnp.arange(4, 4 + p)[None].astype(jnp.int32),
    }
    got = jax.jit(lambda w: act_in_env(meta_dt, config, state, pre, w, None, True))(window)
    mapped = dict(window)
    for prefix in ("", "prompt_"):
        mapped[f"{prefix}observations"] = pre.observation(window[f"{prefix}observations"])
        mapped[f"{prefix}actions"] = pre.action_from_env(window[f"{prefix}actions"])
    want = pre.action_to_env(jnp.clip(meta_dt.act(state, mapped, None, True, config), -1, 1))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # and the prompt is read: another prompt, another action
    other = dict(window, prompt_observations=window["prompt_observations"] + 1.0)
    moved = jax.jit(lambda w: act_in_env(meta_dt, config, state, pre, w, None, True))(other)
    assert not np.allclose(moved, got)
