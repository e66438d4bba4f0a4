"""A planar pushing task: the state-based manipulation test bed of offrl's own.

D5RL (Rafailov et al., 2024) asks how offline RL and fine-tuning fare on the
kinds of data robot labs actually collect (scripted, play, teleoperation) for
manipulation; its tasks need MuJoCo robot arms too heavy for this machine.
``offrl/Push-v0`` keeps what makes pushing hard, in NumPy: the object moves only
when the effector is behind it, so reaching the goal needs a detour first and
the reward arrives only through the object.

State and observation ``(effector x, y, block x, y, goal x, y)``; action ``a in
[-1, 1]^2``, the effector's velocity (1 m/s at most, ``dt = 0.1``). The block is a
disk of radius 0.1 pushed quasi-statically: when the moved effector (radius
0.02) overlaps it, the block slides out along the contact normal by the overlap.
Effector and block stay inside ``[-1, 1]^2`` and ``[-0.9, 0.9]^2``. Reward
``-||block - goal|| + 1[||block - goal|| < 0.1]``; 100 steps (truncation only).
Resets (all from the seed): effector in ``[-0.8, 0.8]^2``, block in ``[-0.5,
0.5]^2`` at least 0.25 from the effector, goal in ``[-0.7, 0.7]^2`` at least 0.3
from the block.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

BLOCK_RADIUS = 0.1
EFFECTOR_RADIUS = 0.02
CONTACT = BLOCK_RADIUS + EFFECTOR_RADIUS
GOAL_RADIUS = 0.1
DT = 0.1
STEPS = 100


def push(effector: np.ndarray, block: np.ndarray, action: np.ndarray):
    """One step of the quasi-static pushing model: ``(effector', block')``."""
    moved = np.clip(effector + DT * np.clip(action, -1.0, 1.0), -1.0, 1.0)
    offset = block - moved
    distance = float(np.linalg.norm(offset))
    if distance < CONTACT:
        normal = (
            offset / distance
            if distance > 1e-9
            else np.clip(action, -1, 1) / max(float(np.linalg.norm(np.clip(action, -1, 1))), 1e-9)
        )
        block = block + (CONTACT - distance) * normal
    return moved, np.clip(block, -0.9, 0.9)


class PushEnv(gym.Env):
    """See the module docstring."""

    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._effector, self._block, self._goal = np.zeros(2), np.zeros(2), np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._effector, self._block, self._goal]).astype(np.float32)

    def _info(self) -> dict:
        distance = float(np.linalg.norm(self._block - self._goal))
        return {"goal_distance": distance, "success": distance < GOAL_RADIUS}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._block = rng.uniform(-0.5, 0.5, 2)
        self._effector = rng.uniform(-0.8, 0.8, 2)
        while np.linalg.norm(self._effector - self._block) < 0.25:
            self._effector = rng.uniform(-0.8, 0.8, 2)
        self._goal = rng.uniform(-0.7, 0.7, 2)
        while np.linalg.norm(self._goal - self._block) < 0.3:
            self._goal = rng.uniform(-0.7, 0.7, 2)
        return self._obs(), self._info()

    def step(self, action):
        action = np.asarray(action, np.float64).reshape(2)
        self._effector, self._block = push(self._effector, self._block, action)
        info = self._info()
        reward = -info["goal_distance"] + float(info["success"])
        return self._obs(), reward, False, False, info


def register() -> None:
    if "offrl/Push-v0" not in gym.registry:
        gym.register(
            "offrl/Push-v0", entry_point="offrl.envs.push:PushEnv", max_episode_steps=STEPS
        )
