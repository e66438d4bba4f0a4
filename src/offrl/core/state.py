"""Train-state helpers shared by every algorithm."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
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
def adamw(
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int = 0,
    grad_clip: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
) -> optax.GradientTransformation:
    """AdamW with a linear warm-up from 0 over ``warmup_steps`` then a constant rate
    (CORL's Decision Transformer: ``LambdaLR(min((step + 1) / warmup, 1))``), and
    optional global-norm clipping first. Cached as :func:`adam` is."""
    if warmup_steps > 0:

        def schedule(step):
            return learning_rate * jnp.minimum((step + 1.0) / warmup_steps, 1.0)

    else:
        schedule = learning_rate
    tx = optax.adamw(schedule, b1=betas[0], b2=betas[1], weight_decay=weight_decay)
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
    tx: optax.GradientTransformation | None = None,
) -> TrainState:
    """A train state for ``module``: Adam unless ``tx`` gives another optimizer."""
    tx = tx if tx is not None else adam(learning_rate, decay_steps, grad_clip)
    return TrainState.create(apply_fn=_apply(module), params=params, tx=tx)


def polyak(target, online, tau: float):
    """``target <- (1 - tau) * target + tau * online``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def scalar_state(value: float, learning_rate: float) -> TrainState:
    """An Adam train state for one learned scalar (a log temperature or a Lagrange weight).

    The value lives at ``params["value"]``.
    """
    return TrainState.create(
        apply_fn=None, params={"value": jnp.asarray(value, jnp.float32)}, tx=adam(learning_rate)
    )


def update_if(do, step_fn, state):
    """``step_fn(state)`` when the traced boolean ``do`` holds, else ``state`` unchanged.

    ``step_fn`` returns ``(state, metrics)``; on the skipped branch the metrics are
    zeros of the same shapes. Callers add ``"_valid/<group>": do`` to their metrics so
    the trainer averages that group only over the updates that ran (delayed actor
    updates in TD3+BC, one actor update per environment step at a high UTD, a critic
    warm-up).
    """

    def skip(state):
        _, metrics = jax.eval_shape(step_fn, state)
        return state, jax.tree_util.tree_map(lambda m: jnp.zeros(m.shape, m.dtype), metrics)

    return jax.lax.cond(do, step_fn, skip, state)
