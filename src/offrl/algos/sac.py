"""Soft Actor-Critic (Haarnoja et al., 2018), with automatic temperature.

Critic::

    a' ~ pi(.|s')
    y  = r + gamma * (1 - terminated) * (min_i Q_targ_i(s', a') - alpha * log pi(a'|s'))
    L_Q = sum_i E (Q_i(s, a) - y)^2

Actor::

    a~ ~ pi(.|s) (reparameterised),   L_pi = E [alpha * log pi(a~|s) - min_i Q_i(s, a~)]

Temperature (``alpha = exp(log_alpha)``, target entropy ``H* = -|A|``)::

    L_alpha = -log_alpha * E [log pi(a~|s) + H*]

then Polyak averaging of the critic targets. SAC trains online (``offrl online
sac``); it is registered so the offline trainer's contract tests cover it and
so its pieces can be reused (the actor-and-temperature step lives in offrl.algos.common).

Defaults (SAC v2 / jaxrl): Adam 3e-4 for actor, critics and temperature,
256x256 MLPs, gamma 0.99, Polyak 0.005, initial alpha 1, tanh-Gaussian policy
with state-dependent log-std clipped to [-20, 2], two critics, batch 256,
10,000 uniformly random steps before learning, one update per environment
step. Deviations: none known.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import (  # noqa: F401  (temperature_loss: sac.temperature_loss)
    actor_and_temperature_step,
    ensemble_mse,
    td_target,
    temperature_loss,
)
from offrl.core.registry import OnlineSpec
from offrl.core.state import adam, create_train_state, polyak
from offrl.nn import GaussianPolicy, QEnsemble, sample_tanh_gaussian, tanh_gaussian_action

DEFAULT_REWARD_SCALING = "none"
#: ``offrl finetune sac --dataset D --env ENV``: plain online SAC (no offline rows in the
#: batches; the data only fixes the observation statistics), e.g. H2O's sim-only baseline.
ONLINE = OnlineSpec(mixing="online", random_steps=5000, learning_starts=5000)


@dataclasses.dataclass(frozen=True)
class Config:
    """SAC settings."""

    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
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
    """Target entropy; ``None`` means ``-action_dim``."""
    num_critics: int = 2
    """Size of the critic ensemble."""
    critic_layer_norm: bool = False
    """LayerNorm in the critics (RLPD uses it)."""
    backup_entropy: bool = True
    """Subtract ``alpha * log pi`` in the critic target."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def _log_alpha_apply(params):
    return params["log_alpha"]


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key = jax.random.split(key, 3)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = GaussianPolicy(actions.shape[-1], config.hidden_dims, tanh_squash=True)
    critic_module = QEnsemble(config.hidden_dims, config.num_critics, config.critic_layer_norm)
    actor_params = actor_module.init(actor_key, observations)
    critic_params = critic_module.init(critic_key, observations, actions)
    log_alpha = {"log_alpha": jnp.asarray(np.log(config.initial_temperature), jnp.float32)}
    return State(
        actor=create_train_state(actor_module, actor_params, config.actor_learning_rate),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        log_alpha=TrainState.create(
            apply_fn=_log_alpha_apply, params=log_alpha, tx=adam(config.temperature_learning_rate)
        ),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def target_entropy(config: Config, action_dim: int) -> float:
    return -float(action_dim) if config.target_entropy is None else config.target_entropy


def critic_loss(critic_params, state: State, batch, config: Config, key):
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["next_observations"])
    next_actions, next_log_prob = sample_tanh_gaussian(mean, log_std, key)  # [B, A], [B]
    next_q = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)  # [B]
    if config.backup_entropy:
        alpha = jnp.exp(state.log_alpha.params["log_alpha"])
        next_q = next_q - alpha * next_log_prob
    target = td_target(batch, config.discount, next_q)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    loss = ensemble_mse(q, target)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/td_error": jnp.abs(q - target).mean(),
    }


def actor_loss(actor_params, state: State, batch, config: Config, key):
    mean, log_std = state.actor.apply_fn(actor_params, batch["observations"])
    actions, log_prob = sample_tanh_gaussian(mean, log_std, key)
    q = state.critic.apply_fn(state.critic.params, batch["observations"], actions).min(axis=0)
    alpha = jnp.exp(state.log_alpha.params["log_alpha"])
    loss = jnp.mean(alpha * log_prob - q)
    return loss, ({"actor/loss": loss, "actor/entropy": -log_prob.mean()}, log_prob)


def update(state: State, batch, config: Config, loss=None, policy_loss=None):
    """One SAC update; ``loss`` replaces :func:`critic_loss` (same signature), for
    methods that change only the critic's target (MOBILE), and ``policy_loss``
    replaces :func:`actor_loss` (same signature), for methods that add a term to
    the actor's (concurrent BC)."""
    key, critic_key, actor_key = jax.random.split(state.key, 3)
    grads, critic_metrics = jax.grad(loss or critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, critic_key
    )
    critic = state.critic.apply_gradients(grads=grads)
    state = state.replace(critic=critic)
    entropy_target = target_entropy(config, batch["actions"].shape[-1])
    actor, log_alpha, actor_metrics, alpha_loss = actor_and_temperature_step(
        state,
        policy_loss or actor_loss,
        (state, batch, config, actor_key),
        entropy_target,
        "log_alpha",
    )
    state = state.replace(
        actor=actor,
        log_alpha=log_alpha,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau),
        key=key,
        step=state.step + 1,
    )
    metrics = {
        **critic_metrics,
        **actor_metrics,
        "alpha/loss": alpha_loss,
        "alpha/value": jnp.exp(log_alpha.params["log_alpha"]),
    }
    return state, metrics


def act(state: State, observations, key, deterministic: bool, config: Config):
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)
    return tanh_gaussian_action(mean, log_std, key, deterministic)
