"""RLPD: SAC with offline data in the batch (Ball, Smith, Kostrikov & Levine, 2023).

RLPD needs no pre-training: it learns online from scratch while every batch
is half offline data and half online data (symmetric sampling, done by the
fine-tuning loop: ``offrl finetune rlpd --dataset D``). Its agent is SAC with
three changes that keep the critic sane at a high update-to-data ratio:

- a LayerNorm in every critic layer;
- an ensemble of ``E = 10`` critics, with the target taken as the minimum over
  a random subset of ``K = 2`` target critics (drawn anew every update)::

      a' ~ pi(.|s'),   I ~ subset of size K of {1..E}
      y  = r + gamma * (1 - terminated) * (min_{i in I} Q_targ_i(s', a') - alpha log pi(a'|s'))
      L_Q = sum_i E (Q_i(s, a) - y)^2

- the actor maximises the *mean* of the ensemble::

      L_pi = E [alpha log pi(a~|s) - mean_i Q_i(s, a~)]

and the temperature is tuned towards ``H* = -|A| / 2``. With ``utd`` updates
per environment step the critic is updated every time and the actor and
temperature once per step (``actor_every``, set to the loop's ``utd`` by
:func:`online_config`).

Defaults are the released code's (ikostrikov/rlpd, locomotion): Adam 3e-4
everywhere, 256x256 MLPs, gamma 0.99, Polyak 0.005, initial alpha 1, E = 10,
K = 2, batch 256 (128 + 128), entropy backup on; the paper's UTD is 20 and it
starts with 5,000 uniformly random steps (here ``random_steps`` and
``learning_starts`` default to 5,000 through its ``ONLINE`` spec; UTD is the
loop's ``--utd``, 1 by default because a CPU cannot afford 20). Deviations:
observations are standardized with the offline data's statistics; the
released code skips the min over a subset when E = 2 (so does this one: K =
E = 2 is plain clipped double Q).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import actor_and_temperature_step, ensemble_mse, td_target
from offrl.algos.sac import (
    act,  # noqa: F401  (the same tanh-Gaussian act)
    target_entropy,
)
from offrl.core.registry import OnlineSpec
from offrl.core.state import create_train_state, polyak, scalar_state, update_if
from offrl.nn import GaussianPolicy, QEnsemble, sample_tanh_gaussian

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="ratio", random_steps=5000, learning_starts=5000)


@dataclasses.dataclass(frozen=True)
class Config:
    """RLPD settings (the released code's locomotion values)."""

    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critic ensemble."""
    temperature_learning_rate: float = 3e-4
    """Adam learning rate of log alpha."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of actor and critic MLPs."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    initial_temperature: float = 1.0
    """Initial entropy temperature alpha."""
    target_entropy: float | None = None
    """Target entropy; ``None`` means ``-action_dim / 2``."""
    num_critics: int = 10
    """E: size of the critic ensemble."""
    num_min_critics: int = 2
    """K: target critics (a random subset) the minimum is taken over."""
    critic_layer_norm: bool = True
    """LayerNorm after every hidden critic layer."""
    backup_entropy: bool = True
    """Subtract ``alpha log pi`` in the critic target."""
    actor_every: int = 1
    """Update the actor and temperature every this many critic updates."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array) -> State:
    if not 1 <= config.num_min_critics <= config.num_critics:
        raise ValueError("num_min_critics must be between 1 and num_critics")
    key, actor_key, critic_key = jax.random.split(key, 3)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = GaussianPolicy(actions.shape[-1], config.hidden_dims, tanh_squash=True)
    critic_module = QEnsemble(config.hidden_dims, config.num_critics, config.critic_layer_norm)
    actor_params = actor_module.init(actor_key, observations)
    critic_params = critic_module.init(critic_key, observations, actions)
    return State(
        actor=create_train_state(actor_module, actor_params, config.actor_learning_rate),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        log_alpha=scalar_state(
            np.log(config.initial_temperature), config.temperature_learning_rate
        ),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def online_config(config: Config, finetune_config=None) -> Config:
    """One actor update per environment step, as the released code does at any UTD."""
    if finetune_config is None:
        return config
    return dataclasses.replace(config, actor_every=int(finetune_config.utd))


def _target_entropy(config: Config, action_dim: int) -> float:
    if config.target_entropy is None:
        return -action_dim / 2.0
    return target_entropy(config, action_dim)


def subset_min(q, key, size: int):
    """Minimum over a random subset of ``size`` of the ``E`` members of ``q`` [E, B]."""
    members = q.shape[0]
    if size >= members:
        return q.min(axis=0)
    chosen = jax.random.permutation(key, members)[:size]
    return q[chosen].min(axis=0)


def critic_loss(critic_params, state: State, batch, config: Config, key):
    sample_key, subset_key = jax.random.split(key)
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["next_observations"])
    next_actions, next_log_prob = sample_tanh_gaussian(mean, log_std, sample_key)
    next_q_all = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    )  # [E, B]
    next_q = subset_min(next_q_all, subset_key, config.num_min_critics)
    if config.backup_entropy:
        next_q = next_q - jnp.exp(state.log_alpha.params["value"]) * next_log_prob
    target = td_target(batch, config.discount, next_q)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    loss = ensemble_mse(q, target)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/target_mean": target.mean(),
    }


def actor_loss(actor_params, state: State, batch, config: Config, key):
    mean, log_std = state.actor.apply_fn(actor_params, batch["observations"])
    actions, log_prob = sample_tanh_gaussian(mean, log_std, key)
    q = state.critic.apply_fn(state.critic.params, batch["observations"], actions).mean(axis=0)
    alpha = jnp.exp(state.log_alpha.params["value"])
    loss = jnp.mean(alpha * log_prob - q)
    return loss, ({"actor/loss": loss, "actor/entropy": -log_prob.mean()}, log_prob)


def _actor_and_temperature(state: State, batch, config: Config, key):
    entropy_target = _target_entropy(config, batch["actions"].shape[-1])
    actor, log_alpha, metrics, alpha_loss = actor_and_temperature_step(
        state, actor_loss, (state, batch, config, key), entropy_target
    )
    state = state.replace(actor=actor, log_alpha=log_alpha)
    metrics = {
        **metrics,
        "actor/alpha_loss": alpha_loss,
        "actor/alpha": jnp.exp(state.log_alpha.params["value"]),
    }
    return state, metrics


def update(state: State, batch, config: Config):
    key, critic_key, actor_key = jax.random.split(state.key, 3)
    grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, critic_key
    )
    critic = state.critic.apply_gradients(grads=grads)
    state = state.replace(
        critic=critic,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau),
        key=key,
    )

    do_actor = (state.step + 1) % config.actor_every == 0
    state, actor_metrics = update_if(
        do_actor, lambda s: _actor_and_temperature(s, batch, config, actor_key), state
    )
    metrics = {**critic_metrics, **actor_metrics, "_valid/actor": do_actor.astype(jnp.float32)}
    return state.replace(step=state.step + 1), metrics
