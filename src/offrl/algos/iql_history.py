"""IQL over observation histories, with a bisimulation loss on the history encoder
(Hong, Dragan & Levine, "Offline RL with Observation Histories", 2023: row 35).

Where observations hide part of the state (velocities), a recurrent encoder
``phi = E(o_{t-K+1..t})`` (a GRU over a window, :class:`offrl.nn.sequence.HistoryEncoder`)
stands in for the state; IQL's three losses (:mod:`offrl.algos.iql`) run on
``phi`` at every real step of the window:

    L_V  = E |tau - 1(u < 0)| u^2,   u = min_i Q_targ_i(phi_bar, a) - V(phi_bar)
    L_pi = -E min(exp(beta (min_i Q_targ_i(phi_bar, a) - V(phi_bar))), 100) log pi(a | sg(phi))
    L_Q  = sum_i E (Q_i(phi, a) - r - gamma (1 - d) V(phi_bar'))^2

with ``phi`` the online encoder (trained by ``L_Q`` and the bisimulation loss only),
``phi_bar`` a Polyak target copy, and ``phi_bar'`` the target encoding of the next
history (the window's history followed by ``o'_t``). The bisimulation loss pairs
each step ``i`` of the batch with a step ``j`` of a random permutation:

    L_bisim = E (||phi_i - phi_j|| - |r_i - r_j| - gamma ||phi_bar'_i - phi_bar'_j||)^2

(Euclidean distances; pairs with a padded step are left out), added to the encoder's
loss with weight ``bisim_weight``; its value is logged at weight 0 too, as a
diagnostic of how far the encoder is from a bisimulation metric.

Defaults: IQL's (expectile 0.7, beta 3, gamma 0.99, Polyak 0.005, Adam 3e-4,
256x256 MLPs), a one-layer GRU of 128 units over ``K = 10`` observations,
``bisim_weight = 0.5``. Deviations: the paper's code was not read (its encoder size,
distance and weight are our choices); every real step of a window is a training
transition, so a batch of ``B`` windows holds up to ``B K`` transitions.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import iql
from offrl.algos.common import at_last_step, expectile_loss
from offrl.algos.iql import advantage_weights
from offrl.core.state import create_train_state, polyak
from offrl.nn import QEnsemble, VNetwork, gaussian_log_prob
from offrl.nn.sequence import HistoryEncoder

DEFAULT_REWARD_SCALING = "locomotion"


@dataclasses.dataclass(frozen=True)
class Config:
    """History-IQL settings (IQL's defaults plus the encoder)."""

    context_length: int = 10
    """Observations per window, ``K``."""
    encoder_dim: int = 128
    """GRU units."""
    bisim_weight: float = 0.5
    """Weight of the bisimulation loss on the encoder (0: logged, not trained)."""
    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics and the encoder."""
    value_learning_rate: float = 3e-4
    """Adam learning rate of the value network."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor, critics and value network."""
    discount: float = 0.99
    """Discount factor."""
    tau_polyak: float = 0.005
    """Polyak rate of the target critics and target encoder."""
    expectile: float = 0.7
    """Expectile of the value regression."""
    temperature: float = 3.0
    """Inverse temperature beta of the advantage weights."""
    max_weight: float = 100.0
    """Clip of the advantage weights."""
    num_critics: int = 2
    """Critics in the ensemble (the minimum is used)."""


def window_length(config: Config) -> int:
    return config.context_length


history_length = window_length  # acts on the episode's last K steps


class EncodedCritic(nn.Module):
    """The encoder and the critic ensemble as one module (one optimizer, as the
    encoder is trained through the critic loss)."""

    config: Config

    def setup(self):
        c = self.config
        self.encoder = HistoryEncoder(c.encoder_dim)
        self.critic = QEnsemble(c.hidden_dims, c.num_critics)

    def encode(self, observations, next_observations=None):
        return self.encoder(observations, next_observations)

    def q(self, features, actions):
        return self.critic(features, actions)

    def __call__(self, observations, next_observations, actions):
        phi, phi_next = self.encode(observations, next_observations)
        return phi, phi_next, self.q(phi, actions)


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState  # encoder + critics
    value: TrainState
    target_critic_params: dict  # target encoder + target critics
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key, value_key = jax.random.split(key, 4)
    observations = example_batch["observations"][:, None]
    actions = example_batch["actions"][:, None]
    features = jnp.zeros(observations.shape[:2] + (config.encoder_dim,))
    actor = iql.gaussian_actor(actions.shape[-1], config.hidden_dims)
    critic = EncodedCritic(config)
    value = VNetwork(config.hidden_dims)
    critic_params = critic.init(critic_key, observations, observations, actions)
    return State(
        actor=create_train_state(
            actor, actor.init(actor_key, features), config.actor_learning_rate
        ),
        critic=create_train_state(critic, critic_params, config.critic_learning_rate),
        value=create_train_state(
            value, value.init(value_key, features), config.value_learning_rate
        ),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def bisimulation_loss(phi, target_next, rewards, mask, permutation, discount: float):
    """``E (||phi_i - phi_j|| - |r_i - r_j| - gamma ||phi'_i - phi'_j||)^2`` over the
    pairs ``(i, permutation[i])`` of flattened steps where both are real."""

    def distance(x, y):
        return jnp.sqrt(jnp.sum((x - y) ** 2, axis=-1) + 1e-8)

    d = distance(phi, phi[permutation])
    target = jnp.abs(rewards - rewards[permutation]) + discount * distance(
        target_next, target_next[permutation]
    )
    both = mask * mask[permutation]
    return jnp.sum(both * (d - jax.lax.stop_gradient(target)) ** 2) / jnp.maximum(
        jnp.sum(both), 1.0
    )


def _flat(x):
    return x.reshape((-1,) + x.shape[2:])


def update(state: State, batch, config: Config):
    key, perm_key = jax.random.split(state.key)
    apply = state.critic.apply_fn
    mask = _flat(batch["mask"])
    total = jnp.maximum(jnp.sum(mask), 1.0)
    actions, rewards = _flat(batch["actions"]), _flat(batch["rewards"])
    terminations = _flat(batch["terminations"])

    def mean(x):
        return jnp.sum(mask * x) / total

    # Target encoder: features of the histories and of the next histories.
    phi_bar, phi_bar_next = apply(
        state.target_critic_params,
        batch["observations"],
        batch["next_observations"],
        method=EncodedCritic.encode,
    )
    phi_bar, phi_bar_next = _flat(phi_bar), _flat(phi_bar_next)
    q_target = apply(state.target_critic_params, phi_bar, actions, method=EncodedCritic.q).min(0)

    def value_loss(params):
        v = state.value.apply_fn(params, phi_bar)
        loss = mean(expectile_loss(q_target - v, config.expectile))
        return loss, {"value/loss": loss, "value/v_mean": mean(v)}

    grads, value_metrics = jax.grad(value_loss, has_aux=True)(state.value.params)
    value = state.value.apply_gradients(grads=grads)
    v = value.apply_fn(value.params, phi_bar)
    next_v = value.apply_fn(value.params, phi_bar_next)
    permutation = jax.random.permutation(perm_key, mask.shape[0])

    def critic_loss(params):
        phi = _flat(apply(params, batch["observations"], method=EncodedCritic.encode))
        q = apply(params, phi, actions, method=EncodedCritic.q)  # [E, N]
        target = rewards + config.discount * (1.0 - terminations) * next_v
        td = mean(jnp.sum((q - target) ** 2, axis=0))
        bisim = bisimulation_loss(phi, phi_bar_next, rewards, mask, permutation, config.discount)
        loss = td + config.bisim_weight * bisim
        return loss, (phi, {"critic/loss": td, "critic/q_mean": mean(q.mean(0)),
                            "encoder/bisim_loss": bisim})  # fmt: skip

    grads, (phi, critic_metrics) = jax.grad(critic_loss, has_aux=True)(state.critic.params)
    critic = state.critic.apply_gradients(grads=grads)
    weights = advantage_weights(q_target, v, config.temperature, config.max_weight)

    def actor_loss(params):
        mean_a, log_std = state.actor.apply_fn(params, jax.lax.stop_gradient(phi))
        loss = -mean(weights * gaussian_log_prob(mean_a, log_std, actions))
        return loss, {"actor/loss": loss, "actor/weight_mean": mean(weights)}

    grads, actor_metrics = jax.grad(actor_loss, has_aux=True)(state.actor.params)
    state = state.replace(
        actor=state.actor.apply_gradients(grads=grads),
        critic=critic,
        value=value,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau_polyak),
        key=key,
        step=state.step + 1,
    )
    return state, {**value_metrics, **critic_metrics, **actor_metrics}


def act(state: State, window, key, deterministic: bool, config: Config):
    """The action for the last real step of every window: the online encoder's
    features into the Gaussian actor (its mean when deterministic)."""
    phi = state.critic.apply_fn(
        state.critic.params, window["observations"], method=EncodedCritic.encode
    )
    mean, log_std = state.actor.apply_fn(state.actor.params, at_last_step(phi, window["mask"]))
    if deterministic:
        return jnp.clip(mean, -1.0, 1.0)
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)
