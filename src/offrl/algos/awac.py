"""AWAC (Nair, Gupta, Dalal & Levine, 2020, "Accelerating Online Reinforcement Learning
with Offline Datasets"), as CORL's ``awac.py`` runs it offline.

Critic (both members; the next action sampled from the current policy, clipped)::

    a' ~ pi(.|s'),   y = r + gamma (1 - terminated) min_i Q_targ_i(s', clip(a', -1, 1))
    L_Q = sum_i E_D (Q_i(s, a) - y)^2

Actor (advantage-weighted regression onto the data's actions, with the critics just
updated; the baseline is the value of a sampled policy action)::

    A = min_i Q_i(s, a) - min_i Q_i(s, clip(a_pi, -1, 1)),   a_pi ~ pi(.|s)
    L_pi = -E_D min(exp(A / lambda), 100) log pi(a|s)

then Polyak averaging of the critic targets with ``tau`` every update.

Defaults are CORL's: lambda 1, 3x256 networks for actor and critics, Adam 3e-4, gamma
0.99, tau 0.005, batch 256, a Gaussian policy with a state-independent log-std clipped
to [-20, 2]; ``act`` returns the mean (deterministic) or a clipped sample. Deviations:
the policy's mean passes through tanh (the actions are in [-1, 1]; CORL's mean is
unbounded and only its samples are clipped); the trainer standardizes observations
(CORL's AWAC does too).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import ensemble_mse, sample_mean, td_target
from offrl.core.state import create_train_state, polyak
from offrl.nn import GaussianPolicy, QEnsemble, gaussian_log_prob

DEFAULT_REWARD_SCALING = "none"
#: Per-sample dataset weights reach the advantage-weighted regression.
USES_WEIGHTS = True


@dataclasses.dataclass(frozen=True)
class Config:
    """AWAC settings (CORL's)."""

    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of actor and critic MLPs."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    awac_lambda: float = 1.0
    """Temperature lambda of the advantage weights exp(A / lambda)."""
    max_weight: float = 100.0
    """Clip of the advantage weights."""
    num_critics: int = 2
    """Size of the critic ensemble (the min is taken over all members)."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key = jax.random.split(key, 3)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = GaussianPolicy(
        actions.shape[-1],
        config.hidden_dims,
        tanh_squash=False,
        state_dependent_std=False,
        log_std_min=-20.0,
        log_std_max=2.0,
    )
    critic_module = QEnsemble(config.hidden_dims, config.num_critics)
    actor_params = actor_module.init(actor_key, observations)
    critic_params = critic_module.init(critic_key, observations, actions)
    return State(
        actor=create_train_state(actor_module, actor_params, config.actor_learning_rate),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def sample_action(state: State, actor_params, observations, key):
    """A policy sample clipped to [-1, 1] (CORL's ``rsample().clamp``)."""
    mean, log_std = state.actor.apply_fn(actor_params, observations)
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)


def critic_loss(critic_params, state: State, batch, config: Config, key):
    next_actions = sample_action(state, state.actor.params, batch["next_observations"], key)
    next_q = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)
    target = td_target(batch, config.discount, next_q)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    loss = ensemble_mse(q, target)
    return loss, {"critic/loss": loss, "critic/q_mean": q.mean()}


def advantage_weights(q_data, q_pi, awac_lambda: float, max_weight: float):
    """``min(exp((Q(s, a) - Q(s, a_pi)) / lambda), max_weight)``."""
    return jnp.minimum(jnp.exp((q_data - q_pi) / awac_lambda), max_weight)


def actor_loss(actor_params, state: State, batch, config: Config, key):
    observations = batch["observations"]
    pi_actions = sample_action(state, state.actor.params, observations, key)
    q_pi = state.critic.apply_fn(state.critic.params, observations, pi_actions).min(axis=0)
    q_data = state.critic.apply_fn(state.critic.params, observations, batch["actions"]).min(axis=0)
    weights = jax.lax.stop_gradient(
        advantage_weights(q_data, q_pi, config.awac_lambda, config.max_weight)
    )
    mean, log_std = state.actor.apply_fn(actor_params, observations)
    log_prob = gaussian_log_prob(mean, log_std, batch["actions"])
    loss = sample_mean(-weights * log_prob, batch)
    return loss, {
        "actor/loss": loss,
        "actor/weight_mean": weights.mean(),
        "actor/log_prob": log_prob.mean(),
        "actor/advantage": (q_data - q_pi).mean(),
    }


def update(state: State, batch, config: Config):
    key, critic_key, actor_key = jax.random.split(state.key, 3)
    grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, critic_key
    )
    state = state.replace(critic=state.critic.apply_gradients(grads=grads))
    grads, actor_metrics = jax.grad(actor_loss, has_aux=True)(
        state.actor.params, state, batch, config, actor_key
    )
    state = state.replace(
        actor=state.actor.apply_gradients(grads=grads),
        target_critic_params=polyak(state.target_critic_params, state.critic.params, config.tau),
        key=key,
        step=state.step + 1,
    )
    return state, {**critic_metrics, **actor_metrics}


def act(state: State, observations, key, deterministic: bool, config: Config):
    if deterministic:
        return state.actor.apply_fn(state.actor.params, observations)[0]
    return sample_action(state, state.actor.params, observations, key)
