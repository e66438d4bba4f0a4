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
