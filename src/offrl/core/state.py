"""Train-state helpers shared by every algorithm."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import optax
from flax.training.train_state import TrainState


@functools.cache
def adam(
    learning_rate: float, decay_steps: int | None = None, grad_clip: float | None = None
) -> optax.GradientTransformation:
    """Adam, optionally with a cosine decay to 0 over ``decay_steps`` and global-norm clipping.

    Cached: equal settings give the same object, so train states built by separate
    ``init`` calls have equal pytree structure (and share compiled functions).
    """
    schedule = (
        optax.cosine_decay_schedule(learning_rate, decay_steps) if decay_steps else learning_rate
    )
    tx = optax.adam(schedule)
    if grad_clip is not None:
        tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
    return tx


@functools.cache
def _apply(module: nn.Module):
    # One bound method per (equal) module, for the same reason as ``adam``'s cache.
    return module.apply


def create_train_state(
    module: nn.Module,
    params,
    learning_rate: float,
    decay_steps: int | None = None,
    grad_clip: float | None = None,
) -> TrainState:
    """An Adam train state for ``module``."""
    return TrainState.create(
        apply_fn=_apply(module), params=params, tx=adam(learning_rate, decay_steps, grad_clip)
    )


def polyak(target, online, tau: float):
    """``target <- (1 - tau) * target + tau * online``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)
