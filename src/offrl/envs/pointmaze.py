"""PointMaze (gymnasium-robotics) with a flat observation for offline RL.

Gymnasium-robotics' PointMaze returns a dict: ``observation`` (x, y, vx, vy),
``achieved_goal`` and ``desired_goal``. offrl's datasets hold flat vectors, so
:class:`GoalObservation` concatenates ``observation`` and ``desired_goal`` into
one 6-D vector (goal-conditioned, like D4RL's maze2d data which records the
target beside the state).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

MAZES = {"umaze": "UMaze", "medium": "Medium", "large": "Large"}
HORIZONS = {"umaze": 300, "medium": 600, "large": 800}


def register() -> None:
    """Register gymnasium-robotics' environments (idempotent)."""
    import warnings

    with warnings.catch_warnings():
        # gymnasium-robotics warns about Adroit reward versions on import; not ours.
        warnings.simplefilter("ignore")
        import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)


class GoalObservation(gym.ObservationWrapper):
    """``[x, y, vx, vy, goal_x, goal_y]`` as a float32 Box."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        inner = env.observation_space["observation"]
        goal = env.observation_space["desired_goal"]
        low = np.concatenate([inner.low, goal.low]).astype(np.float32)
        high = np.concatenate([inner.high, goal.high]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def observation(self, observation):
        return np.concatenate([observation["observation"], observation["desired_goal"]]).astype(
            np.float32
        )


def is_pointmaze(env_id: str) -> bool:
    return env_id.startswith("PointMaze_")


def make_pointmaze(env_id: str, **kwargs) -> gym.Env:
    register()
    return GoalObservation(gym.make(env_id, **kwargs))
