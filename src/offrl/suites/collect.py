"""Recording one episode: the loop every dataset recipe shares."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

_FLAGS = ("terminations", "truncations")


def _safety_start(info: dict) -> dict[str, list]:
    """Lists for the safety signals an environment reports (``margin``/``cost`` infos):
    a task with a margin records both, a task with a cost alone (a global budget,
    :mod:`offrl.envs.industrial`) records its costs."""
    if "margin" in info:
        return {"margins": [info["margin"]], "costs": []}
    return {"costs": []} if "cost" in info else {}


def _safety_step(steps: dict[str, list], info: dict) -> None:
    if "margins" in steps:
        steps["margins"].append(info["margin"])
    if "costs" in steps:
        steps["costs"].append(info.get("cost", float(info.get("margin", 0.0) < 0)))


def _finish(steps: dict[str, list]) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v, bool if k in _FLAGS else np.float32) for k, v in steps.items()}
    if "margins" in out:
        # h(s_t) for each step's state; the final observation's margin is not a step's.
        out["margins"] = out["margins"][:-1]
    return out


def record_episode(
    env: gym.Env,
    choose_action: Callable[[np.ndarray], np.ndarray],
    reset_seed: int,
    max_steps: int | None = None,
) -> dict[str, np.ndarray]:
    """Roll out ``choose_action`` from ``env.reset(seed=reset_seed)``.

    The episode ends at a termination, at the environment's truncation, or after
    ``max_steps`` steps (recorded as a truncation: a cut in the log). Returns
    ``observations`` with ``steps + 1`` rows and per-step ``actions``,
    ``rewards``, ``terminations`` and ``truncations``; when the environment
    reports a safety ``margin`` in its infos, also ``margins`` (``h(s_t)``) and
    ``costs`` (the step's cost, by default ``1[h(s_{t+1}) < 0]``); when it reports
    only a ``cost``, the ``costs``.
    """
    observation, info = env.reset(seed=reset_seed)
    steps: dict[str, list] = {
        "observations": [observation],
        "actions": [],
        "rewards": [],
        "terminations": [],
        "truncations": [],
        **_safety_start(info),
    }
    while True:
        action = np.asarray(choose_action(observation), np.float32)
        observation, reward, terminated, truncated, info = env.step(action)
        _safety_step(steps, info)
        cut = max_steps is not None and len(steps["rewards"]) + 1 >= max_steps
        steps["observations"].append(observation)
        steps["actions"].append(action)
        steps["rewards"].append(reward)
        steps["terminations"].append(bool(terminated))
        steps["truncations"].append(bool(truncated) or (cut and not terminated))
        if terminated or truncated or cut:
            break
    return _finish(steps)


def run_controller(env_id: str, make_controller, num_episodes: int, first_reset_seed: int):
    """Episodes of a (stateful) scripted controller, reset before each episode;
    episode ``i`` resets the environment with ``first_reset_seed + i``."""
    from offrl.envs.registry import make_env

    env = make_env(env_id)
    policy = make_controller()
    episodes = []
    for i in range(num_episodes):
        policy.reset()
        episodes.append(record_episode(env, policy, first_reset_seed + i))
    env.close()
    return episodes


def record_steps(
    env: gym.Env,
    choose_action: Callable[[np.ndarray], np.ndarray],
    num_steps: int,
    seed: int,
    horizon: int | None = None,
) -> list[dict[str, np.ndarray]]:
    """Episodes totalling exactly ``num_steps`` transitions.

    Episode ``i`` resets with ``seed * 1_000_003 + i``; each lasts at most
    ``horizon`` steps (if given) and the last one is cut at ``num_steps``.
    """
    episodes, collected = [], 0
    while collected < num_steps:
        limit = num_steps - collected if horizon is None else min(horizon, num_steps - collected)
        episodes.append(
            record_episode(env, choose_action, seed * 1_000_003 + len(episodes), max_steps=limit)
        )
        collected += len(episodes[-1]["rewards"])
    return episodes


def record_steps_vectorized(
    make_env: Callable[[], gym.Env],
    choose_actions: Callable[[np.ndarray], np.ndarray],
    num_steps: int,
    seed: int,
    num_envs: int = 16,
) -> list[dict[str, np.ndarray]]:
    """:func:`record_steps` with ``num_envs`` environments stepped in lock step, so a
    network policy is called once per ``num_envs`` transitions.

    Episode ``i`` still resets with ``seed * 1_000_003 + i``: each environment
    takes the next episode number when its episode ends. Collection stops once
    the episodes ``0..k`` are complete and hold at least ``num_steps``
    transitions; episode ``k`` is cut there (a truncation) and later episodes are
    dropped. ``choose_actions(observations[num_envs, ...]) -> actions[num_envs, ...]``
    is called in a fixed order, so the result is deterministic for a given
    ``num_envs`` (a different ``num_envs`` gives a different, equally valid dataset).
    """
    envs = [make_env() for _ in range(num_envs)]
    observations = [None] * num_envs
    slots: list[tuple[int, dict[str, list]]] = [None] * num_envs  # type: ignore[list-item]
    finished: dict[int, dict[str, np.ndarray]] = {}
    next_episode = 0

    def start(j: int) -> None:
        nonlocal next_episode
        observation, info = envs[j].reset(seed=seed * 1_000_003 + next_episode)
        observations[j] = observation
        slots[j] = (
            next_episode,
            {
                "observations": [observation],
                "actions": [],
                "rewards": [],
                **{f: [] for f in _FLAGS},
                **_safety_start(info),
            },
        )
        next_episode += 1

    for j in range(num_envs):
        start(j)
    prefix_episodes, prefix_steps = 0, 0
    while prefix_steps < num_steps:
        actions = np.asarray(choose_actions(np.stack(observations)), np.float32)
        for j, env in enumerate(envs):
            observation, reward, terminated, truncated, info = env.step(actions[j])
            index, steps = slots[j]
            _safety_step(steps, info)
            steps["observations"].append(observation)
            steps["actions"].append(actions[j])
            steps["rewards"].append(reward)
            steps["terminations"].append(bool(terminated))
            steps["truncations"].append(bool(truncated))
            observations[j] = observation
            if terminated or truncated:
                finished[index] = _finish(steps)
                start(j)
        while prefix_episodes in finished and prefix_steps < num_steps:
            prefix_steps += len(finished[prefix_episodes]["rewards"])
            prefix_episodes += 1
    for env in envs:
        env.close()
    episodes = [finished[i] for i in range(prefix_episodes)]
    excess = prefix_steps - num_steps
    if excess:
        last = episodes[-1]
        keep = len(last["rewards"]) - excess
        episodes[-1] = {
            k: v[: keep + 1] if k == "observations" else v[:keep] for k, v in last.items()
        }
        episodes[-1]["truncations"][-1] = not episodes[-1]["terminations"][-1]
    return episodes


def suite_dataset(name: str, env_id: str, episodes):
    """Recorded episodes (or an assembled dataset) as the validated suite dataset
    ``name`` of environment ``env_id``: action bounds and source filled in."""
    from offrl.data.dataset import Dataset, DatasetInfo, from_episodes
    from offrl.data.validate import validate
    from offrl.envs.registry import make_env

    env = make_env(env_id)
    info = DatasetInfo(
        name=name,
        env_id=env_id,
        action_low=tuple(env.action_space.low.astype(float).tolist()),
        action_high=tuple(env.action_space.high.astype(float).tolist()),
        source=f"suite:{name}",
    )
    data = (
        episodes.replace(info=info)
        if isinstance(episodes, Dataset)
        else from_episodes(episodes, info)
    )
    dataset = validate(data, env.observation_space, env.action_space)
    env.close()
    return dataset


def references_main(description: str, measure) -> None:
    """The ``python -m offrl.suites.X --measure-references [--episodes N]`` entry point:
    prints ``measure(episodes)`` as JSON."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--measure-references", action="store_true")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    if args.measure_references:
        print(json.dumps(measure(args.episodes), indent=2))
