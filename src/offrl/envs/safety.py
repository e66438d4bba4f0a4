"""Tasks with a safety margin ``h(s)`` (> 0 safe) reported at every step.

Every task here is a Gymnasium environment whose ``reset`` and ``step`` infos
carry ``margin`` (``h`` of the observation just returned) and ``cost``
(``1.0`` when that margin is negative, else ``0.0``). ``h`` is a function of
the observation, available without an environment through
:func:`margin_function`, so datasets, barrier learners and plots agree on it.

- ``offrl/PointRobot-v0``: a 2-D double integrator (a point robot with
  inertia) that drives from the left of a 6 m x 6 m arena to a goal on the
  right past three circular hazards; the straight line to the goal runs
  through the largest for most starts. ``h`` = distance to the nearest hazard's
  edge. The largest hazard sits a little off the start-goal axis: a minimal-change
  filter in front of a policy aimed straight at a hazard's centre stalls there
  (the known deadlock of CBF-QP filters), and off-centre it slides around.
- ``offrl/HopperVelocity-v0``, ``offrl/HalfCheetahVelocity-v0``,
  ``offrl/Walker2dVelocity-v0``: the Gymnasium MuJoCo v5 task with a forward
  velocity limit, ``h = limit - v_x`` (``v_x`` is the observation's torso
  velocity, ``qvel[0]``), with the limits of the offline-safe-RL benchmarks
  (OSRL/DSRL velocity tasks: Hopper 0.7402, HalfCheetah 3.2096, Walker2d
  2.3415). Reward and termination are the original task's.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

# ----------------------------------------------------------------- point robot
#: Hazards of the point robot: (x, y, radius) in metres.
POINT_ROBOT_HAZARDS = np.array([[0.0, 0.35, 0.7], [1.6, 1.3, 0.4], [1.4, -1.1, 0.4]], np.float64)
POINT_ROBOT_GOAL = np.array([2.4, 0.0])
POINT_ROBOT_GOAL_RADIUS = 0.3
POINT_ROBOT_ARENA = 3.0


def point_robot_margin(observations) -> np.ndarray:
    """``h(s) = min_i ||p - c_i|| - r_i`` for observations ``[..., 4]`` (x, y, vx, vy)."""
    observations = np.asarray(observations, np.float64)
    position = observations[..., None, :2]  # [..., 1, 2]
    distance = np.linalg.norm(position - POINT_ROBOT_HAZARDS[:, :2], axis=-1)
    return np.min(distance - POINT_ROBOT_HAZARDS[:, 2], axis=-1)


class PointRobotEnv(gym.Env):
    """A point robot with inertia among circular hazards.

    State and observation ``(x, y, vx, vy)``; action ``u`` in ``[-1, 1]^2``, an
    acceleration command. With ``dt = 0.1``::

        v' = v + dt * (2 u - 0.5 v)      (top speed 4 m/s, braking 2 m/s^2)
        p' = p + dt * v'

    The arena's walls (``|x|, |y| <= 3``) stop the robot (the velocity component
    into the wall is zeroed); they are not part of the safety margin. Reward:
    progress towards the goal plus 1 for every step that ends within 0.3 m of
    it, ``r = ||p - g|| - ||p' - g|| + 1[||p' - g|| < 0.3]``. Episodes last 100
    steps (truncation; no termination). Starts are drawn uniformly from ``x in
    [-2.6, -2.0]``, ``y in [-1, 1]`` at rest. The hazards are soft: entering one
    costs but does not stop the robot, so a constraint-ignoring policy that
    drives straight through the middle hazard earns more than a safe detour.
    """

    metadata = {"render_modes": []}
    dt = 0.1
    max_acceleration = 2.0
    damping = 0.5

    def __init__(self):
        bound = np.float32(np.finfo(np.float32).max)
        self.observation_space = gym.spaces.Box(-bound, bound, (4,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._state = np.zeros(4)

    def _info(self) -> dict:
        margin = float(point_robot_margin(self._state))
        return {
            "margin": margin,
            "cost": float(margin < 0.0),
            "goal_distance": float(np.linalg.norm(self._state[:2] - POINT_ROBOT_GOAL)),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        position = self.np_random.uniform([-2.6, -1.0], [-2.0, 1.0])
        self._state = np.array([position[0], position[1], 0.0, 0.0])
        return self._state.astype(np.float32), self._info()

    def step(self, action):
        u = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        position, velocity = self._state[:2], self._state[2:]
        before = np.linalg.norm(position - POINT_ROBOT_GOAL)
        velocity = velocity + self.dt * (self.max_acceleration * u - self.damping * velocity)
        position = position + self.dt * velocity
        for axis in range(2):
            if abs(position[axis]) > POINT_ROBOT_ARENA:
                position[axis] = np.clip(position[axis], -POINT_ROBOT_ARENA, POINT_ROBOT_ARENA)
                velocity[axis] = 0.0
        self._state = np.concatenate([position, velocity])
        after = np.linalg.norm(position - POINT_ROBOT_GOAL)
        reward = float(before - after + (after < POINT_ROBOT_GOAL_RADIUS))
        return self._state.astype(np.float32), reward, False, False, self._info()


# ------------------------------------------------------- velocity constraints
#: Forward-velocity limits of the offline-safe-RL velocity tasks (OSRL/DSRL) and the
#: index of the torso's x velocity (``qvel[0]``) in each v5 observation.
VELOCITY_LIMITS = {
    "Hopper-v5": (0.7402, 5),
    "HalfCheetah-v5": (3.2096, 8),
    "Walker2d-v5": (2.3415, 8),
}


def velocity_margin(observations, limit: float, index: int) -> np.ndarray:
    """``h(s) = limit - v_x`` with ``v_x = s[index]``."""
    return limit - np.asarray(observations, np.float64)[..., index]


class VelocityConstraint(gym.Wrapper):
    """Adds ``margin = limit - v_x`` and ``cost = 1[margin < 0]`` to every info."""

    def __init__(self, env: gym.Env, limit: float, index: int):
        super().__init__(env)
        self.limit, self.index = float(limit), int(index)

    def _add(self, observation, info: dict) -> dict:
        margin = float(velocity_margin(observation, self.limit, self.index))
        return {**info, "margin": margin, "cost": float(margin < 0.0)}

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        return observation, self._add(observation, info)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, reward, terminated, truncated, self._add(observation, info)


def make_velocity_env(base_id: str, **kwargs) -> gym.Env:
    limit, index = VELOCITY_LIMITS[base_id]
    return VelocityConstraint(gym.make(base_id, **kwargs), limit, index)


#: Safety task ids and the original task each wraps (``None``: a task of its own).
SAFETY_ENVS = {
    "offrl/PointRobot-v0": None,
    "offrl/HopperVelocity-v0": "Hopper-v5",
    "offrl/HalfCheetahVelocity-v0": "HalfCheetah-v5",
    "offrl/Walker2dVelocity-v0": "Walker2d-v5",
}


def register() -> None:
    """Register the safety tasks with Gymnasium (idempotent)."""
    for env_id, base in SAFETY_ENVS.items():
        if env_id in gym.registry:
            continue
        if base is None:
            gym.register(
                env_id, entry_point="offrl.envs.safety:PointRobotEnv", max_episode_steps=100
            )
        else:
            gym.register(
                env_id,
                entry_point="offrl.envs.safety:make_velocity_env",
                kwargs={"base_id": base},
                max_episode_steps=1000,
            )


def margin_function(env_id: str | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """``h`` as a function of observations ``[..., obs_dim]`` for a safety task, else ``None``."""
    if env_id == "offrl/PointRobot-v0":
        return point_robot_margin
    base = SAFETY_ENVS.get(env_id or "")
    if base is not None:
        limit, index = VELOCITY_LIMITS[base]
        return lambda observations: velocity_margin(observations, limit, index)
    return None
