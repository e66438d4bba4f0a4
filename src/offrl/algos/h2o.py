"""H2O: dynamics-aware hybrid offline-and-online RL (Niu et al., 2022).

Real offline data and rollouts in an imperfect simulator train one SAC agent.
The fine-tuning loop fills every batch half with real rows (the offline data,
``offline = 1``) and half with simulator rows (the online buffer, ``offline =
0``; ``offrl finetune h2o --dataset D --env Hopper-v5@gravity=2``); the
evaluation runs in the real task.

Two discriminators tell real from simulated transitions: ``D_sa(s, a)`` and
``D_sas(s, a, s')`` (logits of [real, sim]; the latter's logits are added to
the former's), trained with cross-entropy on inputs with Gaussian noise. Their
probabilities give the dynamics ratio::

    P_real(s'|s,a) / P_sim(s'|s,a) = (p_sas(real) p_sa(sim)) / (p_sas(sim) p_sa(real))

Critic (two Q networks, target without entropy)::

    y = r + gamma (1 - terminated) min_i Q_targ_i(s', a'),   a' ~ pi(.|s')
    w = sqrt(clip(ratio(s, a, s'), 1e-5, 1))                      on sim rows
    L_TD = E_real (Q - y)^2 + E_sim (w Q - w y)^2
    u(s, a) = clip(mean_j -log ratio(s, a, s' + N(0, 1)), 1e-45, 10)   (j = 1..10)
    omega = u / sum_sim u
    L_pen = 0.01 * clip(logsumexp_sim(Q(s, a) + log omega) - E_real Q(s, a), -1000, 1000)

so simulated pairs with a large dynamics gap are pushed down. Actor and
temperature are SAC's on all rows (target entropy 0).

Defaults are the released code's (t6-thu/H2O, ``sim2real_sac.py``, read):
Adam 3e-4 for actor, critics, temperature and both discriminators,
discriminator input noise 0.1, ratio clip [1e-5, 1], u clip [1e-45, 10], 10
sampled next states with noise of one data standard deviation (the
observations are standardized, so sigma = 1), penalty weight 0.01 at
temperature 1, no entropy backup, target entropy 0, gamma 0.99, Polyak 0.005.
Deviations: u's lower clip is 1e-30 (1e-45 is a float32 subnormal that XLA
flushes to 0, and log 0 breaks the gradient); the discriminators learn from
the same batch as the critic (the released code draws a separate real and sim
batch for them); network sizes
(256x256 everywhere) were not read from the released code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import actor_and_temperature_step, td_target
from offrl.algos.sac import (
    act,  # noqa: F401  (the same tanh-Gaussian act)
)
from offrl.core.registry import OnlineSpec
from offrl.core.state import create_train_state, polyak, scalar_state
from offrl.nn import GaussianPolicy, QEnsemble, sample_tanh_gaussian
from offrl.nn.mlp import MLP

DEFAULT_REWARD_SCALING = "none"
ONLINE = OnlineSpec(mixing="ratio")


@dataclasses.dataclass(frozen=True)
class Config:
    """H2O settings (the released code's)."""

    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor (and of the temperature)."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    discriminator_learning_rate: float = 3e-4
    """Adam learning rate of both discriminators."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of actor, critics and discriminators."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    initial_temperature: float = 1.0
    """Initial entropy temperature alpha."""
    target_entropy: float = 0.0
    """Target entropy of the temperature update."""
    discriminator_noise: float = 0.1
    """Std of the Gaussian noise on the discriminators' inputs while they learn."""
    ratio_min: float = 1e-5
    """Lower clip of the real/sim dynamics ratio weighting the sim TD error."""
    ratio_max: float = 1.0
    """Upper clip of that ratio."""
    gap_samples: int = 10
    """Perturbed next states per pair for the dynamics-gap estimate u(s, a)."""
    gap_noise: float = 1.0
    """Std of those perturbations (observations are standardized)."""
    gap_min: float = 1e-30
    """Lower clip of u(s, a) (the released 1e-45 is below float32's normal range)."""
    gap_max: float = 10.0
    """Upper clip of u(s, a)."""
    penalty_weight: float = 0.01
    """Weight of the dynamics-gap penalty."""
    penalty_clip: float = 1000.0
    """Clip of the penalty's difference."""
    num_critics: int = 2
    """Size of the critic ensemble."""


class Discriminator(nn.Module):
    """Two logits ([real, sim]) from the concatenated inputs."""

    hidden_dims: Sequence[int]

    @nn.compact
    def __call__(self, *inputs):
        return MLP(self.hidden_dims, 2)(jnp.concatenate(inputs, axis=-1))


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    log_alpha: TrainState
    d_sa: TrainState
    d_sas: TrainState
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key, sa_key, sas_key = jax.random.split(key, 5)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = GaussianPolicy(actions.shape[-1], config.hidden_dims, tanh_squash=True)
    critic_module = QEnsemble(config.hidden_dims, config.num_critics)
    disc = Discriminator(config.hidden_dims)
    critic_params = critic_module.init(critic_key, observations, actions)
    lr = config.discriminator_learning_rate
    return State(
        actor=create_train_state(
            actor_module, actor_module.init(actor_key, observations), config.actor_learning_rate
        ),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        log_alpha=scalar_state(np.log(config.initial_temperature), config.actor_learning_rate),
        d_sa=create_train_state(disc, disc.init(sa_key, observations, actions), lr),
        d_sas=create_train_state(disc, disc.init(sas_key, observations, actions, observations), lr),
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def _masked_mean(values, mask):
    return (values * mask).sum(axis=-1) / jnp.maximum(mask.sum(), 1.0)


def discriminator_probabilities(sa_params, sas_params, state: State, s, a, s_next):
    """``(p_sa, p_sas)``, each ``[..., 2]`` (real, sim)."""
    sa_logits = state.d_sa.apply_fn(sa_params, s, a)
    sas_logits = state.d_sas.apply_fn(sas_params, s, a, s_next) + sa_logits
    return jax.nn.softmax(sa_logits), jax.nn.softmax(sas_logits)


def log_dynamics_ratio(state: State, s, a, s_next):
    """``log P_real(s'|s,a) - log P_sim(s'|s,a)`` from the discriminators (no gradient)."""
    sa_logits = state.d_sa.apply_fn(state.d_sa.params, s, a)
    sas_logits = state.d_sas.apply_fn(state.d_sas.params, s, a, s_next) + sa_logits
    log_sa = jax.nn.log_softmax(sa_logits)
    log_sas = jax.nn.log_softmax(sas_logits)
    return jax.lax.stop_gradient(
        log_sas[..., 0] - log_sas[..., 1] - log_sa[..., 0] + log_sa[..., 1]
    )


def discriminator_loss(params, state: State, batch, config: Config, key):
    """Cross-entropy of both discriminators on noisy inputs; ``real = batch['offline']``."""
    keys = jax.random.split(key, 3)
    s = batch["observations"] + config.discriminator_noise * jax.random.normal(
        keys[0], batch["observations"].shape
    )
    a = batch["actions"] + config.discriminator_noise * jax.random.normal(
        keys[1], batch["actions"].shape
    )
    s_next = batch["next_observations"] + config.discriminator_noise * jax.random.normal(
        keys[2], batch["next_observations"].shape
    )
    real = batch["offline"]
    sim = 1.0 - real
    sa_logits = state.d_sa.apply_fn(params["sa"], s, a)
    sas_logits = state.d_sas.apply_fn(params["sas"], s, a, s_next) + sa_logits
    log_sa, log_sas = jax.nn.log_softmax(sa_logits), jax.nn.log_softmax(sas_logits)
    sa_loss = -_masked_mean(log_sa[:, 0], real) - _masked_mean(log_sa[:, 1], sim)
    sas_loss = -_masked_mean(log_sas[:, 0], real) - _masked_mean(log_sas[:, 1], sim)
    return sa_loss + sas_loss, {"disc/sa_loss": sa_loss, "disc/sas_loss": sas_loss}


def dynamics_gap(state: State, batch, config: Config, key):
    """``u(s, a)``: the mean sim/real log ratio over perturbed next states, clipped. ``[B]``."""
    s, a, s_next = batch["observations"], batch["actions"], batch["next_observations"]
    noise = config.gap_noise * jax.random.normal(key, (config.gap_samples, *s_next.shape))
    repeat = lambda x: jnp.broadcast_to(x, (config.gap_samples, *x.shape))  # noqa: E731
    log_ratio = log_dynamics_ratio(state, repeat(s), repeat(a), s_next[None] + noise)
    return jnp.clip((-log_ratio).mean(axis=0), config.gap_min, config.gap_max)


def critic_loss(critic_params, state: State, batch, config: Config, key):
    target_key, gap_key = jax.random.split(key)
    real = batch["offline"]
    sim = 1.0 - real
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["next_observations"])
    next_actions, _ = sample_tanh_gaussian(mean, log_std, target_key)
    next_q = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)
    target = jax.lax.stop_gradient(td_target(batch, config.discount, next_q))
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    ratio = jnp.exp(
        log_dynamics_ratio(
            state, batch["observations"], batch["actions"], batch["next_observations"]
        )
    )
    weight = jnp.sqrt(jnp.clip(ratio, config.ratio_min, config.ratio_max))
    real_td = _masked_mean((q - target) ** 2, real)  # [E]
    sim_td = _masked_mean((weight * q - weight * target) ** 2, sim)  # [E]
    u = dynamics_gap(state, batch, config, gap_key)
    has_sim = sim.sum() > 0
    # log omega = log u - log sum_sim u, in the log domain (no division by a vanishing sum).
    log_u = jnp.where(sim > 0, jnp.log(u), -jnp.inf)
    log_omega = log_u - jax.nn.logsumexp(jnp.where(has_sim, log_u, 0.0))
    # Without sim rows the penalty is 0; keep its (unused) branch finite for the gradient.
    log_omega = jnp.where(has_sim, log_omega, 0.0)
    gap = jax.nn.logsumexp(q + log_omega[None], axis=1)  # [E]
    difference = jnp.clip(
        jnp.where(has_sim, gap, 0.0) - _masked_mean(q, real),
        -config.penalty_clip,
        config.penalty_clip,
    )
    penalty = jnp.where(has_sim, difference, 0.0)
    loss = (real_td + sim_td + config.penalty_weight * penalty).sum()
    return loss, {
        "critic/loss": loss,
        "critic/real_td": real_td.mean(),
        "critic/sim_td": sim_td.mean(),
        "critic/penalty": penalty.mean(),
        "critic/q_mean": q.mean(),
        "critic/sqrt_ratio_sim": _masked_mean(weight, sim),
        "critic/gap_sim": _masked_mean(u, sim),
    }


def actor_loss(actor_params, state: State, batch, config: Config, key):
    mean, log_std = state.actor.apply_fn(actor_params, batch["observations"])
    actions, log_prob = sample_tanh_gaussian(mean, log_std, key)
    q = state.critic.apply_fn(state.critic.params, batch["observations"], actions).min(axis=0)
    alpha = jnp.exp(state.log_alpha.params["value"])
    loss = jnp.mean(alpha * log_prob - q)
    return loss, ({"actor/loss": loss, "actor/entropy": -log_prob.mean()}, log_prob)


def _with_mask(batch):
    if "offline" in batch:
        return batch
    # Outside the fine-tuning loop (e.g. offline training) every row is real.
    return {**batch, "offline": jnp.ones_like(batch["rewards"])}


def update(state: State, batch, config: Config):
    batch = _with_mask(batch)
    key, disc_key, actor_key, critic_key = jax.random.split(state.key, 4)
    params = {"sa": state.d_sa.params, "sas": state.d_sas.params}
    grads, disc_metrics = jax.grad(discriminator_loss, has_aux=True)(
        params, state, batch, config, disc_key
    )
    state = state.replace(
        d_sa=state.d_sa.apply_gradients(grads=grads["sa"]),
        d_sas=state.d_sas.apply_gradients(grads=grads["sas"]),
    )
    actor, log_alpha, actor_metrics, alpha_loss = actor_and_temperature_step(
        state, actor_loss, (state, batch, config, actor_key), config.target_entropy
    )
    critic_grads, critic_metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, state, batch, config, critic_key
    )
    critic = state.critic.apply_gradients(grads=critic_grads)
    state = state.replace(
        actor=actor,
        log_alpha=log_alpha,
        critic=critic,
        target_critic_params=polyak(state.target_critic_params, critic.params, config.tau),
        key=key,
        step=state.step + 1,
    )
    metrics = {
        **disc_metrics,
        **critic_metrics,
        **actor_metrics,
        "alpha/loss": alpha_loss,
        "alpha/value": jnp.exp(state.log_alpha.params["value"]),
    }
    return state, metrics
