"""TD3+BC (Fujimoto & Gu, 2021, "A Minimalist Approach to Offline RL").

Critic (both members, clipped double-Q with target policy smoothing)::

    a' = clip(pi_targ(s') + clip(eps, -c, c), -1, 1),   eps ~ N(0, sigma^2)
    y  = r + gamma * (1 - terminated) * min_i Q_targ_i(s', a')
    L_Q = sum_i E_D (Q_i(s, a) - y)^2

Actor (every ``policy_frequency`` updates)::

    lambda = alpha / E_D |Q_1(s, pi(s))|        (no gradient through lambda)
    L_pi = -lambda * E_D Q_1(s, pi(s)) + E_D ||pi(s) - a||^2

Targets move by Polyak averaging with ``tau`` on actor updates only, as TD3.

Defaults are the paper's locomotion settings: alpha 2.5, sigma 0.2, c 0.5,
policy frequency 2, tau 0.005, gamma 0.99, Adam 3e-4 for both, 256x256 MLPs,
batch 256, observations standardized with the dataset's mean and std + 1e-3
(done by the trainer). Deviations: the MSE is averaged over action dimensions
as well as the batch (the paper's code uses ``F.mse_loss``, which does the
same); actions are scaled to [-1, 1] by the trainer so ``max_action`` is 1.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos.common import (
    delayed_actor_update,
    ensemble_mse,
    sample_mean,
    smoothed_target_actions,
    td_target,
)
from offrl.core.state import create_train_state
from offrl.nn import DeterministicPolicy, QEnsemble

DEFAULT_REWARD_SCALING = "none"
#: Per-sample dataset weights reach the loss that regresses onto data actions.
USES_WEIGHTS = True


@dataclasses.dataclass(frozen=True)
class Config:
    """TD3+BC settings (the paper's locomotion values)."""

    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden widths of actor and critic MLPs."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise (in [-1, 1] action units)."""
    noise_clip: float = 0.5
    """Clip of the target policy smoothing noise."""
    policy_frequency: int = 2
    """Actor and target updates happen every this many critic updates."""
    alpha: float = 2.5
    """Trade-off between Q maximisation and behavior cloning."""
    num_critics: int = 2
    """Size of the critic ensemble (the min is taken over all members)."""
    critic_layer_norm: bool = False
    """LayerNorm after each hidden layer of the critics (as RLPD and ReBRAC): the remedy
    the training diagnostics suggest for a diverging or extrapolating critic."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    target_actor_params: dict
    target_critic_params: dict
    key: jax.Array
    step: jax.Array


def init(config: Config, example_batch, key: jax.Array, actor_layer_norm: bool = False) -> State:
    """Actor, critic ensemble and their targets (ReBRAC's too, with its actor LayerNorm)."""
    key, actor_key, critic_key = jax.random.split(key, 3)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = DeterministicPolicy(actions.shape[-1], config.hidden_dims, actor_layer_norm)
    critic_module = QEnsemble(config.hidden_dims, config.num_critics, config.critic_layer_norm)
    actor_params = actor_module.init(actor_key, observations)
    critic_params = critic_module.init(critic_key, observations, actions)
    return State(
        actor=create_train_state(actor_module, actor_params, config.actor_learning_rate),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        target_actor_params=actor_params,
        target_critic_params=critic_params,
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def critic_loss(critic_params, state: State, batch, config: Config, noise_key):
    next_actions = smoothed_target_actions(state, batch["next_observations"], config, noise_key)
    next_q = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)  # [B]
    target = td_target(batch, config.discount, next_q)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    loss = ensemble_mse(q, target)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/target_mean": target.mean(),
    }


def actor_loss(actor_params, state: State, batch, config: Config):
    actions = state.actor.apply_fn(actor_params, batch["observations"])  # [B, A]
    q = state.critic.apply_fn(state.critic.params, batch["observations"], actions)[0]  # [B]
    lam = jax.lax.stop_gradient(config.alpha / jnp.abs(q).mean())
    bc_mse = sample_mean(jnp.mean((actions - batch["actions"]) ** 2, axis=-1), batch)
    loss = -lam * q.mean() + bc_mse
    return loss, {
        "actor/loss": loss,
        "actor/bc_mse": bc_mse,
        "actor/lambda": lam,
        "actor/q_pi": q.mean(),
    }


def update(state: State, batch, config: Config):
    return delayed_actor_update(state, batch, config, critic_loss, actor_loss)


def act(state: State, observations, key, deterministic: bool, config: Config):
    return state.actor.apply_fn(state.actor.params, observations)
