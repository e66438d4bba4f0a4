"""Role-model labelers: scripted controllers that label an observation with a
near-optimal action (RM-RL's "role model"; ``offrl finetune ... --labeler NAME``).

A labeler is built for one environment instance (it may read the layout, e.g. a
maze's walls) and maps a raw observation to an action in the environment's
units. The interaction loop labels every online observation and the offline
data's observations with it; an algorithm that learns from labels (``rm_rl``)
reads them as the batch field ``label_actions``.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

#: name -> (what it is, the task names it works on).
LABELERS = {
    "pointmaze-planner": (
        "the maze suite's BFS waypoint planner and PD law, noise-free "
        "(offrl.envs.pointmaze.WaypointController)",
        ("PointMaze_",),
    ),
}


class LabelerError(ValueError):
    """A labeler that does not exist or does not fit the environment."""


def make_labeler(name: str, env: gym.Env) -> Callable[[np.ndarray], np.ndarray]:
    """The labeler ``name`` for ``env`` (observation -> action, environment units)."""
    if name not in LABELERS:
        raise LabelerError(f"unknown labeler '{name}'; available: {', '.join(LABELERS)}")
    env_id = env.spec.id if env.spec is not None else ""
    if not env_id.startswith(LABELERS[name][1]):
        raise LabelerError(
            f"labeler '{name}' works on {', '.join(LABELERS[name][1])}* tasks, not {env_id!r}"
        )
    from offrl.envs.pointmaze import WaypointController

    controller = WaypointController(env.unwrapped.maze)
    return lambda observation: np.asarray(controller(np.asarray(observation)), np.float32)
