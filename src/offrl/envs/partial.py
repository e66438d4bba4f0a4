"""Tasks that need a history or a longer credit assignment: observations without
velocities (``BASE@novel``), actions that act late (``BASE@delay=k``) and actions
pushed off by an unobserved disturbance (``BASE@wind=s``).

- ``@novel``: the observation drops its velocity coordinates
  (:data:`VELOCITIES`), so a memoryless policy cannot tell which way the system
  is moving; a policy over the last few observations can (row 35's masked
  point-mass, and the masked-velocity tasks of issue 22).
- ``@delay=k``: the action chosen at step ``t`` is applied at step ``t + k``; the
  first ``k`` steps apply the middle of the action space. The observation is the
  base observation followed by the ``k`` pending actions (oldest first), so the
  task stays Markov, but the reward an action earns arrives ``k`` steps later:
  one-step TD must carry it back through ``k`` bootstraps, a critic over an
  action chunk of ``h >= k`` steps sees it in one target (CO-RFT's setting).
- ``@wind=s``: an exogenous disturbance (NeoRL-2's challenge): every episode draws
  a constant offset ``w ~ U[-s, s]`` times half the action range per action
  coordinate, unobserved, and the environment applies ``clip(a + w)``. The offset
  comes from the reset seed alone (``reset(seed=n)`` always draws the same one),
  and ``info["disturbance"]`` reports it.

Rewards and time limits are the base task's, so the base task's normalized
score applies. Both combine with the physics changes of :mod:`offrl.envs.gap`
(``Hopper-v5@novel,gravity=2``).
"""

from __future__ import annotations

import collections

import gymnasium as gym
import numpy as np

#: Velocity coordinates of each task's observation, by Gymnasium id prefix.
VELOCITIES: dict[str, tuple[int, ...]] = {
    "Pendulum-": (2,),  # cos, sin, angular velocity
    "PointMaze_": (2, 3),  # x, y, vx, vy, goal x, goal y (offrl's flat observation)
    "offrl/PointRobot": (2, 3),  # x, y, vx, vy
    "Hopper-": tuple(range(5, 11)),  # qpos[1:] (5), qvel (6)
    "HalfCheetah-": tuple(range(8, 17)),  # qpos[1:] (8), qvel (9)
    "Walker2d-": tuple(range(8, 17)),  # qpos[1:] (8), qvel (9)
}
#: The modifiers this module adds to ``BASE@...`` ids.
MODIFIERS = ("novel", "delay", "wind")


def velocity_indices(env_id: str) -> tuple[int, ...]:
    """The velocity coordinates of ``env_id``'s observation (its base task's)."""
    base = env_id.split("@", 1)[0]
    for prefix, indices in VELOCITIES.items():
        if base.startswith(prefix):
            return indices
    known = ", ".join(p.rstrip("-_") for p in VELOCITIES)
    raise ValueError(f"offrl does not know the velocities of {base}'s observation; known: {known}")


def hide_velocities(observations: np.ndarray, env_id: str) -> np.ndarray:
    """``observations [..., D]`` without the velocity coordinates of ``env_id``."""
    drop = set(velocity_indices(env_id))
    keep = [i for i in range(observations.shape[-1]) if i not in drop]
    return observations[..., keep]


class NoVelocity(gym.ObservationWrapper):
    """The observation without its velocity coordinates (``@novel``)."""

    def __init__(self, env: gym.Env, env_id: str):
        super().__init__(env)
        space = env.observation_space
        self._env_id = env_id
        self.observation_space = gym.spaces.Box(
            hide_velocities(space.low, env_id),
            hide_velocities(space.high, env_id),
            dtype=space.dtype,
        )

    def observation(self, observation):
        return hide_velocities(np.asarray(observation), self._env_id)


class DelayedActions(gym.Wrapper):
    """Actions applied ``delay`` steps after they are chosen (``@delay=k``); the
    observation carries the pending actions."""

    def __init__(self, env: gym.Env, delay: int):
        super().__init__(env)
        if delay < 1:
            raise ValueError(f"delay must be a positive number of steps, got {delay}")
        self.delay = delay
        action_space = env.action_space
        self._idle = ((action_space.low + action_space.high) / 2.0).astype(action_space.dtype)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            np.concatenate([space.low, np.tile(action_space.low, delay)]).astype(np.float32),
            np.concatenate([space.high, np.tile(action_space.high, delay)]).astype(np.float32),
            dtype=np.float32,
        )
        self._pending: collections.deque = collections.deque()

    def _observe(self, observation):
        pending = np.concatenate(list(self._pending)) if self._pending else np.zeros(0)
        return np.concatenate([np.asarray(observation, np.float32), pending]).astype(np.float32)

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self._pending = collections.deque([self._idle.copy() for _ in range(self.delay)])
        return self._observe(observation), info

    def step(self, action):
        self._pending.append(np.asarray(action, self._idle.dtype).reshape(self._idle.shape))
        applied = self._pending.popleft()
        observation, reward, terminated, truncated, info = self.env.step(applied)
        info = {**info, "applied_action": applied}
        return self._observe(observation), reward, terminated, truncated, info


class Wind(gym.Wrapper):
    """An unobserved constant action offset drawn per episode from the reset seed
    (``@wind=s``): ``s`` times half the action range, uniform in ``[-s, s]``."""

    def __init__(self, env: gym.Env, strength: float):
        super().__init__(env)
        if not strength > 0:
            raise ValueError(f"wind must be a positive strength, got {strength}")
        self.strength = float(strength)
        space = env.action_space
        self._low, self._high = space.low, space.high
        self._half = (space.high - space.low) / 2.0
        self.offset = np.zeros_like(self._half)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), 0x3A1D])
        self.offset = (
            self.strength * self._half * self._rng.uniform(-1.0, 1.0, self._half.shape)
        ).astype(self._half.dtype)
        observation, info = self.env.reset(seed=seed, options=options)
        return observation, {**info, "disturbance": self.offset.copy()}

    def step(self, action):
        pushed = np.clip(np.asarray(action, self._half.dtype) + self.offset, self._low, self._high)
        observation, reward, terminated, truncated, info = self.env.step(pushed)
        return observation, reward, terminated, truncated, {**info, "disturbance": self.offset}


def apply(env: gym.Env, env_id: str, modifiers: dict[str, float]) -> gym.Env:
    """``env`` wrapped by the modifiers of ``env_id`` (the wind pushes the applied
    action, then velocities are hidden, then the pending actions appended)."""
    if "wind" in modifiers:
        env = Wind(env, modifiers["wind"])
    if modifiers.get("novel"):
        env = NoVelocity(env, env_id)
    if modifiers.get("delay"):
        delay = modifiers["delay"]
        if delay != int(delay):
            raise ValueError(f"delay={delay} in {env_id!r}: the delay is a whole number of steps")
        env = DelayedActions(env, int(delay))
    return env
