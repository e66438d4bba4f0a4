"""The one training loop of the curation models: Adam on ``loss(params, key)`` for
``steps`` updates, fused into one ``lax.scan`` (one compiled call, one host sync)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
import optax


def fit(params, loss: Callable, steps: int, learning_rate: float, key: jax.Array):
    """``(params, losses[steps])`` after ``steps`` Adam updates; update ``t`` gets the
    ``t``-th of ``jax.random.split(key, steps)``."""
    optimizer = optax.adam(learning_rate)

    def step(carry, step_key):
        params, opt_state = carry
        value, grads = jax.value_and_grad(loss)(params, step_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    run = jax.jit(lambda p, s, k: jax.lax.scan(step, (p, s), k))
    (params, _), losses = run(params, optimizer.init(params), jax.random.split(key, steps))
    return params, np.asarray(losses)
