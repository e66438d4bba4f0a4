"""The history a sequence policy acts on, kept on the host during rollouts.

A sequence algorithm (one whose module has ``window_length(config)``) acts on
the last ``K`` steps of each episode, laid out as its training windows are
(:mod:`offrl.data.windows`): left-aligned from the episode's first step until
``K`` steps are known, then sliding. :class:`HistoryPolicy` keeps that window
for every seed and environment of a rollout and follows the rollout protocol of
:func:`offrl.envs.rollout.evaluate`: ``reset_history`` when episodes start,
``__call__`` for the actions, ``record`` with the actions taken and the rewards
received.

Returns-to-go start at the configuration's ``target_return`` (environment
units, mapped to the run's reward units by its reward scale) and fall by every
reward received, as the Decision Transformer's evaluation does. With a reward
*shift* in the run's scaling the mapped target is ``scale * target`` and is only
approximate; the sequence algorithms default to unscaled rewards.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np


class HistoryPolicy:
    """A per-step ``policy(observations[S, N, obs_dim], key) -> actions[S, N, act_dim]``
    over a batched window policy (:func:`offrl.core.trainer.build_policy` of a sequence
    algorithm) with its states and preprocessor bound."""

    def __init__(self, batched: Callable, states, pre, length: int, target_return: float):
        self.batched = batched
        self.states = states
        self.pre = pre
        self.length = length
        self.scale = float(np.asarray(pre.reward_scale))
        self.shift = float(np.asarray(pre.reward_shift))
        self.target = self.scale * float(target_return)
        self.window = None

    def reset_history(self) -> None:
        """New episodes start: the next call begins empty windows."""
        self.window = None

    def _allocate(self, num_seeds: int, num_envs: int, observation_dim: int) -> None:
        k = self.length
        action_dim = int(np.asarray(self.pre.action_low).shape[-1])
        self.window = {
            "observations": np.zeros((num_seeds, num_envs, k, observation_dim), np.float32),
            "actions": np.zeros((num_seeds, num_envs, k, action_dim), np.float32),
            "returns_to_go": np.zeros((num_seeds, num_envs, k), np.float32),
            "timesteps": np.zeros((num_seeds, num_envs, k), np.int32),
            "mask": np.zeros((num_seeds, num_envs, k), np.float32),
        }
        self.steps = 0  # steps recorded; the rollout steps its environments together
        self.next_return = np.full((num_seeds, num_envs), self.target, np.float32)

    def _position(self) -> int:
        return min(self.steps, self.length - 1)

    def __call__(self, observations, key):
        if self.window is None:
            observations = np.asarray(observations, np.float32)
            self._allocate(*observations.shape)
        w = self.window
        p = self._position()
        w["observations"][:, :, p] = observations
        w["returns_to_go"][:, :, p] = self.next_return
        w["timesteps"][:, :, p] = self.steps
        w["mask"][:, :, p] = 1.0
        return self.batched(self.states, self.pre, {k: jnp.asarray(v) for k, v in w.items()}, key)

    def record(self, actions, rewards) -> None:
        """The actions just taken and the rewards they earned (``[S, N, ...]``); the
        window slides once it is full."""
        w = self.window
        p = self._position()
        w["actions"][:, :, p] = np.asarray(actions, np.float32)
        self.next_return = self.next_return - (
            self.scale * np.asarray(rewards, np.float32) + self.shift
        )
        self.steps += 1
        if self.steps >= self.length:  # slide: position K-1 is the next step's
            for values in w.values():
                values[:, :, :-1] = values[:, :, 1:].copy()
                values[:, :, -1] = 0


def bind_policy(batched: Callable, states, pre) -> Callable:
    """``policy(observations[S, N, obs_dim], key) -> actions`` with ``states`` and ``pre``
    bound: a plain function, or a :class:`HistoryPolicy` when ``batched`` (from
    :func:`offrl.core.trainer.build_policy`) is a sequence algorithm's."""
    length = getattr(batched, "window_length", None)
    if length is not None:
        target = batched.target_return
        return HistoryPolicy(batched, states, pre, length, 0.0 if target is None else target)
    return lambda observations, key: batched(states, pre, jnp.asarray(observations), key)
