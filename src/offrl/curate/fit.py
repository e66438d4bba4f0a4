"""The one training loop of the curation models: an optimizer (Adam unless told) on
``loss(params, key)`` for ``steps`` updates, fused into one ``lax.scan`` (one
compiled call, one host sync), with an optional exponential moving average of the
parameters (SynthER samples from one)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class EMA:
    """An exponential moving average of the parameters, as the ``ema_pytorch`` package
    keeps it (SynthER's trainer): the average copies the parameters for the first
    ``start`` updates, then every ``every`` updates moves toward them with decay
    ``min(decay, 1 - (1 + t)^(-power))``, ``t`` counting updates after ``start``."""

    decay: float = 0.995
    every: int = 10
    start: int = 100
    power: float = 2.0 / 3.0

    def update(self, average, params, step):
        """The average after update number ``step`` (1-based) left ``params``."""
        t = jnp.maximum(step - self.start - 1, 0).astype(jnp.float32)
        decay = jnp.where(t > 0, jnp.minimum(self.decay, 1.0 - (1.0 + t) ** -self.power), 0.0)
        decay = jnp.where(step <= self.start, 0.0, decay)
        move = (step % self.every == 0) | (step <= self.start)
        return jax.tree_util.tree_map(
            lambda a, p: jnp.where(move, decay * a + (1.0 - decay) * p, a), average, params
        )


def fit(
    params,
    loss: Callable,
    steps: int,
    learning_rate: float,
    key: jax.Array,
    optimizer: optax.GradientTransformation | None = None,
    ema: EMA | None = None,
):
    """``(params, losses[steps])`` after ``steps`` updates (``optimizer``, default
    ``optax.adam(learning_rate)``); update ``t`` gets the ``t``-th of
    ``jax.random.split(key, steps)``. With ``ema``, the parameters returned are the
    moving average."""
    optimizer = optimizer or optax.adam(learning_rate)

    def step(carry, inputs):
        params, opt_state, average = carry
        step_key, number = inputs
        value, grads = jax.value_and_grad(loss)(params, step_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if ema is not None:
            average = ema.update(average, params, number)
        return (params, opt_state, average), value

    run = jax.jit(lambda p, s, k, n: jax.lax.scan(step, (p, s, p), (k, n)))
    numbers = jnp.arange(1, steps + 1)
    (params, _, average), losses = run(
        params, optimizer.init(params), jax.random.split(key, steps), numbers
    )
    return (average if ema is not None else params), np.asarray(losses)
