"""BC-RNN: behavior cloning with a recurrent policy over a history window
(robomimic's ``BC_RNN``, the strongest of its baselines on human demonstrations).

An LSTM reads the observations of a window of ``K`` steps from a zero state and a
linear head with tanh gives an action at every step:

    L = E_window mean_{t real} ||tanh(W h_t) - a_t||^2

(masked to the window's real steps). At evaluation the policy reads the last ``K``
observations of the episode (:mod:`offrl.core.history`) and takes the action of
the last one.

Defaults are robomimic's low-dimensional BC-RNN: a 2-layer LSTM of 400 units,
horizon ``K = 10``, no MLP after the LSTM, Adam 1e-4, L2 loss. Deviations:
robomimic carries the LSTM state through rollouts and resets it every ``K``
steps; offrl re-reads a sliding window of the last ``K`` observations from a zero
state at every step, the same inputs the training windows give (``K`` times the
compute per action, the same information). robomimic's GMM head (its choice for
multi-modal human data) is not built: the head is deterministic.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import at_last_step, window_mean
from offrl.core.state import create_train_state
from offrl.nn.sequence import HistoryEncoder

DEFAULT_REWARD_SCALING = "none"
#: Behavior cloning needs no rewards.
REQUIRED_FIELDS = ("actions",)


@dataclasses.dataclass(frozen=True)
class Config:
    """BC-RNN settings (robomimic's defaults)."""

    context_length: int = 10
    """Steps per window (robomimic's ``rnn.horizon``)."""
    hidden_dim: int = 400
    """LSTM units per layer."""
    num_layers: int = 2
    """Stacked LSTM layers."""
    cell: str = "lstm"
    """Recurrent cell: lstm (robomimic) or gru."""
    learning_rate: float = 1e-4
    """Adam learning rate."""


def window_length(config: Config) -> int:
    return config.context_length


history_length = window_length  # acts on the episode's last K steps


class RecurrentPolicy(nn.Module):
    action_dim: int
    config: Config

    @nn.compact
    def __call__(self, observations):
        c = self.config
        h = HistoryEncoder(c.hidden_dim, c.num_layers, c.cell, embed=False)(observations)
        return jnp.tanh(nn.Dense(self.action_dim)(h))  # [B, K, A]


@struct.dataclass
class State:
    actor: TrainState
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, init_key = jax.random.split(key)
    module = RecurrentPolicy(example_batch["actions"].shape[-1], config)
    params = module.init(init_key, example_batch["observations"][:, None])
    return State(
        actor=create_train_state(module, params, config.learning_rate),
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def update(state: State, batch, config: Config):
    def loss_fn(params):
        predicted = state.actor.apply_fn(params, batch["observations"])
        loss = window_mean((predicted - batch["actions"]) ** 2, batch["mask"])
        return loss, {"actor/loss": loss, "actor/bc_mse": loss}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.actor.params)
    actor = state.actor.apply_gradients(grads=grads)
    return state.replace(actor=actor, step=state.step + 1), metrics


def act(state: State, window, key, deterministic: bool, config: Config):
    """The action for the last real step of every window."""
    predicted = state.actor.apply_fn(state.actor.params, window["observations"])
    return at_last_step(predicted, window["mask"])
