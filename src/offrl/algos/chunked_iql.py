"""Chunked IQL: a critic and a policy over action chunks of ``h`` steps, trained with
the ``h``-step target (CO-RFT's chunked TD, row 9), behavior cloning first.

A window of ``h`` steps from row ``t`` (:mod:`offrl.data.windows`) gives the state
``s_t``, the chunk ``A_t = (a_t, ..., a_{t+n-1})`` (``n <= h`` real steps: fewer
where the episode ends; the rest of the chunk is zero) and

    y = sum_{k<n} gamma^k r_{t+k} + gamma^n (1 - d) V(s_{t+n})

with ``d`` the termination of the last real step and ``s_{t+n}`` its next
observation (a time-limit truncation is bootstrapped). IQL's three losses
(:mod:`offrl.algos.iql`) then run on chunks:

    L_Q  = sum_i E (Q_i(s_t, A_t) - y)^2
    L_V  = E |tau - 1(u < 0)| u^2,  u = min_i Q_targ_i(s_t, A_t) - V(s_t)
    L_pi = -E w log pi(A_t | s_t),  w = min(exp(beta (min_i Q_targ_i - V)), 100)

where ``pi`` is a Gaussian over the whole chunk (the log-likelihood of the real
steps only) and ``w = 1`` for the first ``bc_steps`` updates (behavior cloning,
then offline RL: CO-RFT's imitation initialization). The policy acts with the
first action of its chunk at every step (receding horizon). With ``h = 1`` this is
IQL.

On a task whose actions act ``k`` steps late (``ENV@delay=k``, :mod:`offrl.envs.partial`)
the reward of ``a_t`` arrives at ``t + k``: a chunk of ``h > k`` steps holds it in
one target, where one-step TD must pass it back through ``k`` bootstraps.

Defaults: IQL's (expectile 0.7, beta 3, gamma 0.99, Polyak 0.005, Adam 3e-4,
256x256 MLPs), ``h = 4``, 1,000 behavior-cloning updates. Deviations: CO-RFT's
offline-RL loss and ``h`` were not read (its paper names the target only); its
critic predicts a Q per chunk step, this one a Q per chunk.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import iql
from offrl.algos.common import expectile_loss
from offrl.algos.iql import advantage_weights
from offrl.core.state import create_train_state, polyak
from offrl.nn import QEnsemble, VNetwork, gaussian_log_prob

DEFAULT_REWARD_SCALING = "locomotion"


@dataclasses.dataclass(frozen=True)
class Config:
    """Chunked IQL settings (IQL's defaults plus the chunk)."""

    chunk_length: int = 4
    """Actions per chunk, ``h`` (1: IQL)."""
    bc_steps: int = 1000
    """Updates of pure behavior cloning of the chunk policy before the advantage weights."""
    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    value_learning_rate: float = 3e-4
    """Adam learning rate of the value network."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of every network."""
    discount: float = 0.99
    """Discount factor."""
    tau_polyak: float = 0.005
    """Polyak rate of the target critics."""
    expectile: float = 0.7
    """Expectile of the value regression."""
    temperature: float = 3.0
    """Inverse temperature beta of the advantage weights."""
    max_weight: float = 100.0
    """Clip of the advantage weights."""
    num_critics: int = 2
    """Critics in the ensemble (the minimum is used)."""


def window_length(config: Config) -> int:
    return config.chunk_length


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    value: TrainState
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key, value_key = jax.random.split(key, 4)
    observations = example_batch["observations"]
    chunk = jnp.tile(example_batch["actions"], (1, config.chunk_length))
    actor = iql.gaussian_actor(chunk.shape[-1], config.hidden_dims)
    critic = QEnsemble(config.hidden_dims, config.num_critics)
    value = VNetwork(config.hidden_dims)
    critic_params = critic.init(critic_key, observations, chunk)
    return State(
        actor=create_train_state(
            actor, actor.init(actor_key, observations), config.actor_learning_rate
        ),
        critic=create_train_state(critic, critic_params, config.critic_learning_rate),
        value=create_train_state(
            value, value.init(value_key, observations), config.value_learning_rate
        ),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def chunk_target(batch, discount: float, next_value_fn):
    """``(y, s_t+n)``: the ``n``-step target of each window (see the module docstring);
    ``next_value_fn(observations [B, D]) -> [B]`` is ``V``."""
    mask = batch["mask"]  # [B, h]
    steps = mask.shape[1]
    powers = discount ** jnp.arange(steps, dtype=jnp.float32)
    rewards = jnp.sum(powers * batch["rewards"] * mask, axis=1)
    n = jnp.sum(mask, axis=1).astype(jnp.int32)  # >= 1
    rows = jnp.arange(mask.shape[0])
    last_next = batch["next_observations"][rows, n - 1]
    done = batch["terminations"][rows, n - 1]
    return rewards + discount**n * (1.0 - done) * next_value_fn(last_next), last_next


def chunk_log_prob(mean, log_std, chunk, mask):
    """The Gaussian log-likelihood of a chunk's real steps (``chunk [B, h, A]``,
    ``mean [B, h A]``, state-independent ``log_std``)."""
    shape = chunk.shape
    log_std = jnp.broadcast_to(log_std, mean.shape).reshape(shape)
    per_step = gaussian_log_prob(mean.reshape(shape), log_std, chunk)  # [B, h]
    return jnp.sum(per_step * mask, axis=1)


def update(state: State, batch, config: Config):
    observations = batch["observations"][:, 0]
    actions = batch["actions"]  # [B, h, A]
    chunk = actions.reshape(actions.shape[0], -1)
    q_target = state.critic.apply_fn(state.target_critic_params, observations, chunk).min(0)

    def value_loss(params):
        v = state.value.apply_fn(params, observations)
        loss = expectile_loss(q_target - v, config.expectile).mean()
        return loss, {"value/loss": loss, "value/v_mean": v.mean()}

    grads, value_metrics = jax.grad(value_loss, has_aux=True)(state.value.params)
    value = state.value.apply_gradients(grads=grads)
    v = value.apply_fn(value.params, observations)
    weights = advantage_weights(q_target, v, config.temperature, config.max_weight)
    weights = jnp.where(state.step < config.bc_steps, 1.0, weights)

    def actor_loss(params):
        mean, log_std = state.actor.apply_fn(params, observations)
        loss = -jnp.mean(weights * chunk_log_prob(mean, log_std, actions, batch["mask"]))
        return loss, {"actor/loss": loss, "actor/weight_mean": weights.mean()}

    grads, actor_metrics = jax.grad(actor_loss, has_aux=True)(state.actor.params)
    actor = state.actor.apply_gradients(grads=grads)
    target, _ = chunk_target(batch, config.discount, lambda o: value.apply_fn(value.params, o))

    def critic_loss(params):
        q = state.critic.apply_fn(params, observations, chunk)
        loss = jnp.mean(jnp.sum((q - target) ** 2, axis=0))
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean()}

    grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(state.critic.params)
    critic = state.critic.apply_gradients(grads=grads)
    state = state.replace(
        actor=actor,
        critic=critic,
        value=value,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau_polyak),
        key=state.key,
        step=state.step + 1,
    )
    return state, {**value_metrics, **actor_metrics, **critic_metrics}


def act(state: State, observations, key, deterministic: bool, config: Config):
    """The first action of the policy's chunk (receding horizon)."""
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    dim = mean.shape[-1] // config.chunk_length
    mean, log_std = mean[..., :dim], jnp.broadcast_to(log_std, mean.shape)[..., :dim]
    if deterministic:
        return jnp.clip(mean, -1.0, 1.0)
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)
