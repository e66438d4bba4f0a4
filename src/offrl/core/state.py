"""Train-state helpers shared by every algorithm."""

from __future__ import annotations

import flax.linen as nn
import jax
import optax
from flax.training.train_state import TrainState


def create_train_state(
    module: nn.Module, params, learning_rate: float | optax.Schedule, grad_clip: float | None = None
) -> TrainState:
    """An Adam train state for ``module`` (optionally with global-norm clipping)."""
    tx = optax.adam(learning_rate)
    if grad_clip is not None:
        tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
    return TrainState.create(apply_fn=module.apply, params=params, tx=tx)


def polyak(target, online, tau: float):
    """``target <- (1 - tau) * target + tau * online``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def apply_gradients(state: TrainState, loss_fn, has_aux: bool = True):
    """One optimiser step on ``loss_fn(params) -> (loss, metrics)``."""
    grads, metrics = jax.grad(loss_fn, has_aux=has_aux)(state.params)
    return state.apply_gradients(grads=grads), metrics
