"""What maps between the environment and the networks, fitted on the data: the
:class:`Preprocessor` (saved in every checkpoint) and the one action mapping."""

from __future__ import annotations

import jax
import numpy as np
from flax import struct

from offrl.data.dataset import Dataset
from offrl.data.normalization import (
    Normalizer,
    normalize_observations,
    reward_scale,
    scale_rewards,
)


def scale_action(actions, low, high):
    """Network actions in ``[-1, 1]`` to the bounds ``[low, high]`` (NumPy or JAX).

    The one place this mapping is written: the shipped action logs replay
    bit for bit only while every caller computes exactly this expression.
    """
    return low + (actions + 1.0) * 0.5 * (high - low)


@struct.dataclass
class Preprocessor:
    """Everything that maps between the environment and the networks.

    Saved in every checkpoint and applied identically in training and evaluation:
    observations are standardized, actions mapped from the environment's bounds
    to ``[-1, 1]``, rewards scaled by ``reward_scale * r + reward_shift``.
    """

    observation_mean: jax.Array
    observation_std: jax.Array
    action_low: jax.Array
    action_high: jax.Array
    reward_scale: jax.Array
    reward_shift: jax.Array

    def observation(self, observations):
        return (observations - self.observation_mean) / self.observation_std

    def action_to_env(self, actions):
        return scale_action(actions, self.action_low, self.action_high)

    def action_from_env(self, actions):
        return 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0

    @classmethod
    def identity(cls, observation_dim: int, action_dim: int) -> Preprocessor:
        return cls(
            observation_mean=np.zeros(observation_dim, np.float32),
            observation_std=np.ones(observation_dim, np.float32),
            action_low=-np.ones(action_dim, np.float32),
            action_high=np.ones(action_dim, np.float32),
            reward_scale=np.float32(1.0),
            reward_shift=np.float32(0.0),
        )


def fit_preprocessor(
    dataset: Dataset, normalize_observations_: bool, reward_scaling: str
) -> Preprocessor:
    """Statistics from the (training) dataset."""
    if normalize_observations_:
        normalizer = Normalizer.fit(np.asarray(dataset.observations))
    else:
        normalizer = Normalizer.identity(dataset.observation_dim)
    low, high = dataset.info.action_low, dataset.info.action_high
    if low is None or not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        low, high = -np.ones(dataset.action_dim), np.ones(dataset.action_dim)
    scale, shift = reward_scale(dataset, reward_scaling)
    return Preprocessor(
        observation_mean=np.asarray(normalizer.mean, np.float32),
        observation_std=np.asarray(normalizer.std, np.float32),
        action_low=np.asarray(low, np.float32),
        action_high=np.asarray(high, np.float32),
        reward_scale=np.float32(scale),
        reward_shift=np.float32(shift),
    )


def apply_preprocessor(dataset: Dataset, pre: Preprocessor) -> Dataset:
    """The dataset as the networks see it."""
    normalizer = Normalizer(
        mean=np.asarray(pre.observation_mean), std=np.asarray(pre.observation_std)
    )
    dataset = normalize_observations(dataset.to_numpy(), normalizer)
    dataset = scale_rewards(dataset, float(pre.reward_scale), float(pre.reward_shift))
    if dataset.actions is None:
        return dataset
    actions = np.asarray(pre.action_from_env(np.asarray(dataset.actions)), np.float32)
    return dataset.replace(actions=np.clip(actions, -1.0, 1.0))
