"""Recording one episode: the loop every dataset recipe shares."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

_FLAGS = ("terminations", "truncations")


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
    ``rewards``, ``terminations`` and ``truncations``.
    """
    observation, _ = env.reset(seed=reset_seed)
    steps: dict[str, list] = {
        "observations": [observation],
        "actions": [],
        "rewards": [],
        "terminations": [],
        "truncations": [],
    }
    while True:
        action = np.asarray(choose_action(observation), np.float32)
        observation, reward, terminated, truncated, _ = env.step(action)
        cut = max_steps is not None and len(steps["rewards"]) + 1 >= max_steps
        steps["observations"].append(observation)
        steps["actions"].append(action)
        steps["rewards"].append(reward)
        steps["terminations"].append(bool(terminated))
        steps["truncations"].append(bool(truncated) or (cut and not terminated))
        if terminated or truncated or cut:
            break
    return {k: np.asarray(v, bool if k in _FLAGS else np.float32) for k, v in steps.items()}


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
