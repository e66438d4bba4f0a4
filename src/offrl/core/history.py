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

from offrl.deploy import Window


class HistoryPolicy:
    """A per-step ``policy(observations[S, N, obs_dim], key) -> actions[S, N, act_dim]``
    over a batched window policy (:func:`offrl.core.trainer.build_policy` of a sequence
    algorithm) with its states and preprocessor bound. The window is a
    :class:`offrl.deploy.Window`, the one an exported policy keeps."""

    def __init__(self, batched: Callable, states, pre, length: int, target_return: float):
        self.batched = batched
        self.states = states
        self.pre = pre
        self.length = length
        scale = float(np.asarray(pre.reward_scale))
        action_dim = int(np.asarray(pre.action_low).shape[-1])
        self.window = Window(
            length, action_dim, scale * float(target_return), scale, float(pre.reward_shift)
        )
        #: Fields added to every window as they are (Meta-DT's ``prompt_*``: few-shot).
        self.extra: dict = {}

    def reset_history(self) -> None:
        """New episodes start: the next call begins empty windows."""
        self.window.reset()

    def __call__(self, observations, key):
        w = self.window.observe(observations)
        window = {k: jnp.asarray(v) for k, v in w.items()}
        return self.batched(self.states, self.pre, {**window, **self.extra}, key)

    def record(self, actions, rewards) -> None:
        """The actions just taken and the rewards they earned (``[S, N, ...]``); the
        window slides once it is full."""
        self.window.record(actions, rewards)


def bind_policy(batched: Callable, states, pre) -> Callable:
    """``policy(observations[S, N, obs_dim], key) -> actions`` with ``states`` and ``pre``
    bound: a plain function, or a :class:`HistoryPolicy` when ``batched`` (from
    :func:`offrl.core.trainer.build_policy`) is a sequence algorithm's."""
    length = getattr(batched, "window_length", None)
    if length is not None:
        target = batched.target_return
        return HistoryPolicy(batched, states, pre, length, 0.0 if target is None else target)
    return lambda observations, key: batched(states, pre, jnp.asarray(observations), key)
