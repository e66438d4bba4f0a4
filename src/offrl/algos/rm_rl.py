"""RM-RL: online samples labeled by a role model, learned by supervision and kept as
an offline buffer (CAPABILITIES row 12, "role-model reinforcement learning").

RM-RL replaces the reward-driven policy update by regression onto approximately
optimal actions: every state the policy visits online is labeled with the action
a role model would take there, the labeled samples join an ever-growing offline
buffer, and the policy is fit to the labels over the whole buffer::

    L = E_{s ~ D_off U D_on} || pi(s) - a_role(s) ||^2

With a scripted labeler (``--labeler pointmaze-planner``: the maze planner, noise
free) this is DAgger's aggregation with the role model as the expert: the
policy's own states get labels, so its errors compound less than behavior
cloning's on the role model's states alone. The loop labels the online
observations and the offline data (``label_actions``, :mod:`offrl.envs.labelers`);
the offline data are in the buffer (``union`` mixing), so labeled logs are reused
as they are. Collection: the policy's action plus Gaussian noise
(``exploration_noise``).

``offrl finetune rm_rl --dataset D --labeler NAME`` starts from scratch; offline
training (``offrl train rm_rl``) has no labeler and regresses onto the dataset's
actions (plain BC).

Settings: a 256x256 tanh MLP, Adam 3e-4, exploration noise 0.1. Deviations: the
paper's role model is chosen among the agent's own samples by their rewards
(the best-rewarded action near the state); here it is a scripted controller,
as the capability's test bed asks, and no reward is used at all; the paper's
settings were not read.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.core.registry import OnlineSpec
from offrl.core.state import create_train_state
from offrl.nn import DeterministicPolicy

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="union", random_steps=0, learning_starts=256)


@dataclasses.dataclass(frozen=True)
class Config:
    """RM-RL settings."""

    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of the policy MLP."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the policy's action while collecting."""
    discount: float = 0.99
    """Only for the loop's return bookkeeping (RM-RL uses no rewards)."""


@struct.dataclass
class State:
    actor: TrainState
    key: jax.Array
    step: jax.Array


def online_config(config: Config, finetune_config=None) -> Config:
    if finetune_config is not None and finetune_config.labeler is None:
        raise ValueError(
            "rm_rl learns from role-model labels: pass --labeler NAME (pointmaze-planner)"
        )
    return config


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, init_key = jax.random.split(key)
    policy = DeterministicPolicy(example_batch["actions"].shape[-1], config.hidden_dims)
    params = policy.init(init_key, example_batch["observations"])
    return State(
        actor=create_train_state(policy, params, config.learning_rate),
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def labels(batch):
    """The role model's actions, or the data's own where no labeler ran."""
    return batch.get("label_actions", batch["actions"])


def loss(params, state: State, batch):
    predicted = state.actor.apply_fn(params, batch["observations"])
    return jnp.mean((predicted - labels(batch)) ** 2)


def update(state: State, batch, config: Config):
    value, grads = jax.value_and_grad(loss)(state.actor.params, state, batch)
    actor = state.actor.apply_gradients(grads=grads)
    return state.replace(actor=actor, step=state.step + 1), {"actor/loss": value}


def explore(state: State, observations, key, step, config: Config):
    action = state.actor.apply_fn(state.actor.params, observations)
    noise = config.exploration_noise * jax.random.normal(key, action.shape)
    return jnp.clip(action + noise, -1.0, 1.0)


def act(state: State, observations, key, deterministic: bool, config: Config):
    return state.actor.apply_fn(state.actor.params, observations)
