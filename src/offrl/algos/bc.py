"""Behavior cloning.

Two variants:

- ``deterministic`` (default): ``a = tanh(f(s))`` and
  ``L = E_D ||f(s) - a||^2`` (mean over batch and action dimensions).
- ``gaussian``: a tanh-squashed Gaussian ``pi(a|s)`` and
  ``L = -E_D log pi(a|s)``; acts with ``tanh(mean)``.

With per-sample weights on the dataset (``--weights``, data curation), ``E_D`` is
the self-normalized weighted mean ``sum_i w_i l_i / sum_i w_i`` over the batch.

Defaults follow CORL's BC for D4RL locomotion: 256x256 MLP, Adam 3e-4,
batch 256. Deviations: the Gaussian variant squashes with tanh (robomimic's
BC-Gaussian does not; tanh keeps actions in bounds), and dataset actions are
clipped to ``|a| <= 1 - 1e-5`` before ``atanh``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import sample_mean
from offrl.core.state import create_train_state
from offrl.nn import (
    DeterministicPolicy,
    GaussianPolicy,
    tanh_gaussian_action,
    tanh_gaussian_log_prob,
)

DEFAULT_REWARD_SCALING = "none"
#: Per-sample dataset weights reach the loss that regresses onto data actions.
USES_WEIGHTS = True
#: Behavior cloning needs no rewards.
REQUIRED_FIELDS = ("actions",)


@dataclasses.dataclass(frozen=True)
class Config:
    """Behavior cloning settings."""

    policy: Literal["deterministic", "gaussian"] = "deterministic"
    """Deterministic MSE or tanh-Gaussian likelihood."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy MLP."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    dropout_rate: float = 0.0
    """Dropout after each hidden layer (0 disables)."""
    layer_norm: bool = False
    """LayerNorm after each hidden layer."""
    log_std_min: float = -5.0
    """Lower clip of the Gaussian policy's log standard deviation."""


@struct.dataclass
class State:
    actor: TrainState
    key: jax.Array
    step: jax.Array


def _policy(config: Config, action_dim: int):
    if config.policy == "deterministic":
        return DeterministicPolicy(
            action_dim, config.hidden_dims, config.layer_norm, config.dropout_rate
        )
    if config.policy == "gaussian":
        return GaussianPolicy(
            action_dim,
            config.hidden_dims,
            tanh_squash=True,
            log_std_min=config.log_std_min,
            layer_norm=config.layer_norm,
            dropout_rate=config.dropout_rate,
        )
    raise ValueError(f"BC policy must be 'deterministic' or 'gaussian', got '{config.policy}'")


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, init_key = jax.random.split(key)
    policy = _policy(config, example_batch["actions"].shape[-1])
    params = policy.init(init_key, example_batch["observations"])
    return State(
        actor=create_train_state(policy, params, config.learning_rate),
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def mse_loss(params, state: State, batch, config: Config, dropout_key):
    predicted = state.actor.apply_fn(
        params, batch["observations"], deterministic=False, rngs={"dropout": dropout_key}
    )  # [B, A]
    mse = sample_mean(jnp.mean((predicted - batch["actions"]) ** 2, axis=-1), batch)
    return mse, {"actor/loss": mse, "actor/bc_mse": mse}


def nll_loss(params, state: State, batch, config: Config, dropout_key):
    mean, log_std = state.actor.apply_fn(
        params, batch["observations"], deterministic=False, rngs={"dropout": dropout_key}
    )  # [B, A] each
    log_prob = tanh_gaussian_log_prob(mean, log_std, batch["actions"], eps=1e-5)  # [B]
    loss = -sample_mean(log_prob, batch)
    mse = sample_mean(jnp.mean((jnp.tanh(mean) - batch["actions"]) ** 2, axis=-1), batch)
    return loss, {"actor/loss": loss, "actor/bc_mse": mse, "actor/log_std": jnp.mean(log_std)}


def update(state: State, batch, config: Config):
    key, dropout_key = jax.random.split(state.key)
    loss_fn = mse_loss if config.policy == "deterministic" else nll_loss
    grads, metrics = jax.grad(loss_fn, has_aux=True)(
        state.actor.params, state, batch, config, dropout_key
    )
    actor = state.actor.apply_gradients(grads=grads)
    return state.replace(actor=actor, key=key, step=state.step + 1), metrics


def act(state: State, observations, key, deterministic: bool, config: Config):
    if config.policy == "deterministic":
        return state.actor.apply_fn(state.actor.params, observations)
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    return tanh_gaussian_action(mean, log_std, key, deterministic)
