"""Observation normalization and the reward scalings of the algorithms' papers.

The observation statistics are computed once from the training data, stored in
every checkpoint, and applied by the same function in training and in
evaluation, so a deployed policy sees exactly the inputs it was trained on.
"""

from __future__ import annotations

import re
from typing import Literal

import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl.data.dataset import Dataset

RewardScaling = Literal["none", "locomotion", "antmaze", "standardize"]
REWARD_SCALINGS: tuple[str, ...] = ("none", "locomotion", "antmaze", "standardize")


@struct.dataclass
class Normalizer:
    """``(x - mean) / std`` with the statistics of the training observations."""

    mean: jnp.ndarray
    std: jnp.ndarray

    def __call__(self, observations):
        return (observations - self.mean) / self.std

    @classmethod
    def identity(cls, dim: int) -> Normalizer:
        return cls(mean=np.zeros((dim,), np.float32), std=np.ones((dim,), np.float32))

    @classmethod
    def fit(cls, observations: np.ndarray, eps: float = 1e-3) -> Normalizer:
        """Statistics of ``observations``; ``eps`` keeps constant dimensions finite.

        ``eps = 1e-3`` is TD3+BC's value (added to the standard deviation).
        """
        observations = np.asarray(observations, dtype=np.float64)
        mean = observations.mean(axis=0)
        std = observations.std(axis=0) + eps
        return cls(mean=mean.astype(np.float32), std=std.astype(np.float32))


def normalize_observations(dataset: Dataset, normalizer: Normalizer) -> Dataset:
    """Apply ``normalizer`` to ``observations`` and ``next_observations``."""
    return dataset.replace(
        observations=np.asarray(normalizer(np.asarray(dataset.observations)), np.float32),
        next_observations=np.asarray(normalizer(np.asarray(dataset.next_observations)), np.float32),
    )


#: Gymnasium MuJoCo locomotion tasks (D4RL's locomotion families and their kin).
LOCOMOTION_ENVS: tuple[str, ...] = ("Hopper", "HalfCheetah", "Walker2d", "Ant", "Humanoid")


def is_locomotion_task(env_id: str | None) -> bool:
    """Whether ``env_id`` names a locomotion task.

    Any of its ``-``/``_``/``/``/``@``-separated words, case aside, must be a
    task name: ``Hopper-v5``, ``Hopper-v5@gravity=2``, D4RL's
    ``hopper-medium-v2`` and Minari's ``mujoco/hopper/medium-v0`` are;
    ``antmaze-umaze-v2`` and ``PointMaze_UMaze-v3`` are not.
    """
    if not env_id:
        return False
    words = re.split(r"[-_/@]", env_id.lower())
    return any(name.lower() in words for name in LOCOMOTION_ENVS)


def reward_scale(dataset: Dataset, scaling: str) -> tuple[float, float]:
    """``(scale, shift)`` such that the training reward is ``scale * r + shift``.

    - ``none``: ``(1, 0)``.
    - ``locomotion``: IQL's D4RL locomotion scaling, ``1000 / (max return -
      min return)`` over the dataset's episodes (Kostrikov et al. 2021; CORL).
    - ``antmaze``: IQL's ``r - 1`` for sparse goal-reaching rewards.
    - ``standardize``: zero mean, unit standard deviation over steps.
    """
    if scaling == "none" or dataset.rewards is None:  # nothing to scale without rewards
        return 1.0, 0.0
    if scaling == "locomotion":
        returns = dataset.episode_returns()
        spread = float(returns.max() - returns.min())
        if spread <= 0.0:
            # One episode, or all returns equal: the scaling is undefined; keep rewards.
            return 1.0, 0.0
        return 1000.0 / spread, 0.0
    if scaling == "antmaze":
        return 1.0, -1.0
    if scaling == "standardize":
        rewards = np.asarray(dataset.rewards, np.float64)
        std = float(rewards.std()) + 1e-6
        return 1.0 / std, -float(rewards.mean()) / std
    raise ValueError(f"unknown reward scaling '{scaling}'; choose one of {REWARD_SCALINGS}")


def scale_rewards(dataset: Dataset, scale: float, shift: float) -> Dataset:
    if dataset.rewards is None:
        return dataset
    rewards = np.asarray(dataset.rewards, np.float32) * np.float32(scale) + np.float32(shift)
    return dataset.replace(rewards=rewards.astype(np.float32))
