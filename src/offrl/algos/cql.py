"""Conservative Q-Learning, the SAC-based CQL(H) of Kumar et al. (2020).

Critic: the SAC TD loss plus a conservative penalty per ensemble member::

    y   = r + gamma * (1 - terminated) * min_i Q_targ_i(s', a'),  a' ~ pi(.|s')
          (deterministic backup: no entropy term, as in the released code)
    L_TD = sum_i E_D (Q_i(s, a) - y)^2

    with importance sampling over N actions of each kind:
    C_i(s) = T * logsumexp_j( [Q_i(s, u_j) - log(0.5^|A|),          u_j ~ U[-1, 1]^|A|
                               Q_i(s, a_j) - log pi(a_j|s),         a_j ~ pi(.|s)
                               Q_i(s, a'_j) - log pi(a'_j|s')] / T)  a'_j ~ pi(.|s')
    penalty_i = E_D [C_i(s) - Q_i(s, a)]
    L_Q = L_TD + alpha_cql * sum_i penalty_i

With ``lagrange=True`` (CQL-Lagrange) the weight becomes ``alpha' * alpha_cql``
and ``alpha' = exp(log_alpha')`` (clipped to [0, 1e6]) is trained to keep
``penalty_i`` at ``target_action_gap``: ``L_alpha' = -mean_i alpha' *
alpha_cql * (penalty_i - gap)``.

Actor and temperature as SAC (``L_pi = E[alpha log pi(a~|s) - min_i Q_i(s,
a~)]``); for the first ``bc_steps`` updates the actor maximises
``log pi(a|s)`` of dataset actions instead of Q.

Defaults are the locomotion settings of the released code and its JAX ports:
actor Adam 1e-4, critic 3e-4, temperature 3e-4, 256x256x256 MLPs, gamma 0.99,
Polyak 0.005, alpha_cql 5.0, N = 10, T = 1.0, importance sampling, target
entropy -|A|, Lagrange gap 5.0 when enabled, no BC warm start (CORL: 0).
Deviations: the policy's log-std is not given CORL's offset/multiplier
parameters (a plain linear head clipped to [-20, 2]); network initialisation
is Flax's default rather than orthogonal; observations standardized by the
trainer.
"""

from __future__ import annotations

import dataclasses
import math

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
from offrl.core.state import create_train_state, polyak, scalar_state
from offrl.nn import GaussianPolicy, QEnsemble, sample_tanh_gaussian, tanh_gaussian_log_prob

DEFAULT_REWARD_SCALING = "none"


@dataclasses.dataclass(frozen=True)
class Config:
    """CQL settings (the released code's locomotion values)."""

    actor_learning_rate: float = 1e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    temperature_learning_rate: float = 3e-4
    """Adam learning rate of the entropy temperature (and of alpha' with Lagrange)."""
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the actor MLP (and of the critics unless ``critic_hidden_dims``)."""
    critic_hidden_dims: tuple[int, ...] | None = None
    """Hidden widths of the critic MLPs; ``None`` means ``hidden_dims``."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    cql_alpha: float = 5.0
    """Weight of the conservative penalty (min_q_weight)."""
    num_sampled_actions: int = 10
    """N: actions of each kind (uniform, pi(s), pi(s')) in the log-sum-exp."""
    cql_temperature: float = 1.0
    """T: temperature of the log-sum-exp."""
    lagrange: bool = False
    """Tune the penalty weight automatically (CQL-Lagrange)."""
    target_action_gap: float = 5.0
    """Penalty level that CQL-Lagrange keeps (used only with lagrange=True)."""
    bc_steps: int = 0
    """Initial updates in which the actor does behavior cloning instead of maximising Q."""
    initial_temperature: float = 1.0
    """Initial entropy temperature alpha."""
    target_entropy: float | None = None
    """Target entropy; ``None`` means ``-action_dim``."""
    num_critics: int = 2
    """Size of the critic ensemble."""
    critic_layer_norm: bool = False
    """LayerNorm after each hidden layer of the critics (as RLPD and ReBRAC): the remedy
    the training diagnostics suggest for a diverging or extrapolating critic."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    log_alpha_prime: TrainState
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key = jax.random.split(key, 3)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = GaussianPolicy(actions.shape[-1], config.hidden_dims, tanh_squash=True)
    critic_module = QEnsemble(
        config.critic_hidden_dims or config.hidden_dims,
        config.num_critics,
        config.critic_layer_norm,
    )
    actor_params = actor_module.init(actor_key, observations)
    critic_params = critic_module.init(critic_key, observations, actions)
    return State(
        actor=create_train_state(actor_module, actor_params, config.actor_learning_rate),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        log_alpha=scalar_state(
            np.log(config.initial_temperature), config.temperature_learning_rate
        ),
        log_alpha_prime=scalar_state(0.0, config.temperature_learning_rate),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def logsumexp_penalty(
    q_random,
    q_policy,
    log_prob_policy,
    q_next_policy,
    log_prob_next,
    q_data,
    action_dim: int,
    temperature: float,
):
    """CQL(H)'s importance-sampled penalty per ensemble member, ``[E]``.

    Args: ``q_*``: ``[E, N, B]`` critic values of the sampled actions;
    ``log_prob_*``: ``[N, B]``; ``q_data``: ``[E, B]``.
    """
    log_uniform = action_dim * math.log(0.5)
    stacked = jnp.concatenate(
        [
            q_random - log_uniform,
            q_policy - log_prob_policy[None],
            q_next_policy - log_prob_next[None],
        ],
        axis=1,
    )  # [E, 3N, B]
    soft_max = temperature * jax.nn.logsumexp(stacked / temperature, axis=1)  # [E, B]
    return (soft_max - q_data).mean(axis=1)


def _sample_repeated(state: State, observations, key, n: int):
    mean, log_std = state.actor.apply_fn(state.actor.params, observations)  # [B, A]
    mean = jnp.broadcast_to(mean, (n, *mean.shape))
    log_std = jnp.broadcast_to(log_std, (n, *log_std.shape))
    actions, log_prob = sample_tanh_gaussian(mean, log_std, key)  # [N, B, A], [N, B]
    return jax.lax.stop_gradient(actions), jax.lax.stop_gradient(log_prob)


def critic_loss(critic_params, state: State, batch, config: Config, key, lower_bound=None):
    """The TD loss plus the penalty; ``lower_bound`` ``[B]`` (Cal-QL) floors the sampled
    policy actions' values inside the log-sum-exp: ``max(Q(s, a~), lower_bound(s))``."""
    target_key, random_key, pi_key, next_pi_key = jax.random.split(key, 4)
    observations, actions = batch["observations"], batch["actions"]
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["next_observations"])
    next_actions, _ = sample_tanh_gaussian(mean, log_std, target_key)
    next_q = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)  # [B]
    target = jax.lax.stop_gradient(td_target(batch, config.discount, next_q))
    q_data = state.critic.apply_fn(critic_params, observations, actions)  # [E, B]
    td_loss = ensemble_mse(q_data, target)

    n, (batch_size, action_dim) = config.num_sampled_actions, actions.shape
    repeated = jnp.broadcast_to(observations, (n, *observations.shape))  # [N, B, S]
    random_actions = jax.random.uniform(
        random_key, (n, batch_size, action_dim), minval=-1.0, maxval=1.0
    )
    pi_actions, pi_log_prob = _sample_repeated(state, observations, pi_key, n)
    next_pi_actions, next_log_prob = _sample_repeated(
        state, batch["next_observations"], next_pi_key, n
    )
    q_random = state.critic.apply_fn(critic_params, repeated, random_actions)  # [E, N, B]
    q_pi = state.critic.apply_fn(critic_params, repeated, pi_actions)
    q_next_pi = state.critic.apply_fn(critic_params, repeated, next_pi_actions)
    bound_rate = jnp.zeros(())
    if lower_bound is not None:
        floor = jax.lax.stop_gradient(lower_bound)[None, None, :]  # [1, 1, B]
        bound_rate = 0.5 * ((q_pi < floor).mean() + (q_next_pi < floor).mean())
        q_pi = jnp.maximum(q_pi, floor)
        q_next_pi = jnp.maximum(q_next_pi, floor)
    penalty = logsumexp_penalty(
        q_random,
        q_pi,
        pi_log_prob,
        q_next_pi,
        next_log_prob,
        q_data,
        action_dim,
        config.cql_temperature,
    )  # [E]
    if config.lagrange:
        alpha_prime = jnp.clip(jnp.exp(state.log_alpha_prime.params["value"]), 0.0, 1e6)
        weighted = (
            jax.lax.stop_gradient(alpha_prime)
            * config.cql_alpha
            * (penalty - config.target_action_gap)
        )
    else:
        alpha_prime = jnp.asarray(1.0)
        weighted = config.cql_alpha * penalty
    loss = td_loss + weighted.sum()
    metrics = {
        "critic/loss": loss,
        "critic/td_loss": td_loss,
        "critic/cql_penalty": penalty.mean(),
        "critic/q_mean": q_data.mean(),
        "critic/q_random": q_random.mean(),
        "critic/td_error": jnp.abs(q_data - target).mean(),
        "critic/alpha_prime": alpha_prime,
        "critic/bound_rate": bound_rate,
    }
    return loss, (metrics, jax.lax.stop_gradient(penalty))


def actor_loss(actor_params, state: State, batch, config: Config, key):
    observations = batch["observations"]
    mean, log_std = state.actor.apply_fn(actor_params, observations)
    actions, log_prob = sample_tanh_gaussian(mean, log_std, key)  # [B, A], [B]
    alpha = jnp.exp(state.log_alpha.params["value"])
    q_new = state.critic.apply_fn(state.critic.params, observations, actions).min(axis=0)
    bc_log_prob = tanh_gaussian_log_prob(mean, log_std, batch["actions"])
    objective = jnp.where(state.step < config.bc_steps, bc_log_prob, q_new)
    loss = jnp.mean(alpha * log_prob - objective)
    return loss, (
        {
            "actor/loss": loss,
            "actor/entropy": -log_prob.mean(),
            "actor/bc_log_prob": bc_log_prob.mean(),
        },
        log_prob,
    )


def update(state: State, batch, config: Config, lower_bound=None):
    key, actor_key, critic_key = jax.random.split(state.key, 3)
    entropy_target = target_entropy(config, batch["actions"].shape[-1])
    actor, log_alpha, actor_metrics, alpha_loss = actor_and_temperature_step(
        state, actor_loss, (state, batch, config, actor_key), entropy_target
    )
    grads_critic, (critic_metrics, penalty) = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, critic_key, lower_bound
    )
    critic = state.critic.apply_gradients(grads=grads_critic)
    log_alpha_prime = state.log_alpha_prime
    if config.lagrange:

        def alpha_prime_loss(params):
            alpha_prime = jnp.clip(jnp.exp(params["value"]), 0.0, 1e6)
            return -jnp.mean(alpha_prime * config.cql_alpha * (penalty - config.target_action_gap))

        log_alpha_prime = log_alpha_prime.apply_gradients(
            grads=jax.grad(alpha_prime_loss)(log_alpha_prime.params)
        )
    state = state.replace(
        actor=actor,
        log_alpha=log_alpha,
        log_alpha_prime=log_alpha_prime,
        critic=critic,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau),
        key=key,
        step=state.step + 1,
    )
    metrics = {
        **critic_metrics,
        **actor_metrics,
        "alpha/loss": alpha_loss,
        "alpha/value": jnp.exp(state.log_alpha.params["value"]),
    }
    return state, metrics
