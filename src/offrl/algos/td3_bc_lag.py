"""TD3+BC-Lagrangian: TD3+BC with a cost critic and a Lagrange multiplier, the
offline safe-RL baseline (a Lagrangian variant as OSRL's BCQ-L/BEAR-L, on the
TD3+BC backbone).

Reward critics as TD3+BC (clipped double-Q, target policy smoothing). Cost
critics on the dataset's per-step ``costs`` (pessimistic: the max over the
ensemble)::

    y_r = r + gamma (1 - terminated) min_i Qr_targ_i(s', a')
    y_c = c + gamma (1 - terminated) max_i Qc_targ_i(s', a')

Actor (every ``policy_frequency`` updates), with ``lam`` the multiplier::

    q = Qr_1(s, pi(s)) - lam * Qc_1(s, pi(s))
    L_pi = -alpha / E|q| * E q + E ||pi(s) - a||^2

Multiplier, by projected dual ascent on the discounted cost budget ``d``::

    lam <- clip(lam + lr_lam * (E_D Qc_1(s, pi(s)) - d), 0, lam_max)
    d = cost_limit * (1 - gamma^T) / ((1 - gamma) T)

(``cost_limit`` is a budget per episode of ``T = episode_length`` steps spread
evenly and discounted, as OSRL and V-OCBF's FISOR baseline convert it).

Defaults: TD3+BC's (alpha 2.5, sigma 0.2, c 0.5, policy frequency 2, tau
0.005, Adam 3e-4, 256x256), cost critics like the reward critics, multiplier
learning rate 3e-4 from 0. Deviations from OSRL: plain dual ascent instead of
its PID Lagrangian, and a TD3+BC backbone (OSRL's Lagrangian baselines are
BCQ-L and BEAR-L).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from offrl.algos import td3_bc
from offrl.algos.common import ensemble_mse, sample_mean, smoothed_target_actions
from offrl.core.state import create_train_state, polyak, update_if
from offrl.nn import DeterministicPolicy, QEnsemble

DEFAULT_REWARD_SCALING = "none"
#: Per-sample dataset weights reach the loss that regresses onto data actions.
USES_WEIGHTS = True
REQUIRED_FIELDS = ("actions", "rewards", "costs")


@dataclasses.dataclass(frozen=True)
class Config(td3_bc.Config):
    """TD3+BC-Lagrangian settings: TD3+BC's (:class:`offrl.algos.td3_bc.Config`, its
    critic settings applying to both the reward and the cost critic), plus the cost
    budget and the multiplier's dual ascent."""

    cost_limit: float = 10.0
    """Budget of cost per episode (e.g. steps in violation)."""
    episode_length: int = 1000
    """Episode length T used to turn the budget into a discounted per-state one."""
    lambda_learning_rate: float = 3e-4
    """Step size of the multiplier's dual ascent."""
    lambda_max: float = 100.0
    """Upper clip of the multiplier."""


@struct.dataclass
class State:
    actor: TrainState
    critic: TrainState
    cost_critic: TrainState
    target_actor_params: dict
    target_critic_params: dict
    target_cost_params: dict
    lagrange: jax.Array
    key: jax.Array
    step: jax.Array


def cost_threshold(config: Config) -> float:
    """The discounted per-state cost budget ``d``."""
    gamma, horizon = config.discount, config.episode_length
    return config.cost_limit * (1.0 - gamma**horizon) / ((1.0 - gamma) * horizon)


def init(config: Config, example_batch, key: jax.Array) -> State:
    key, actor_key, critic_key, cost_key = jax.random.split(key, 4)
    observations, actions = example_batch["observations"], example_batch["actions"]
    actor_module = DeterministicPolicy(actions.shape[-1], config.hidden_dims)
    critic_module = QEnsemble(config.hidden_dims, config.num_critics, config.critic_layer_norm)
    actor_params = actor_module.init(actor_key, observations)
    critic_params = critic_module.init(critic_key, observations, actions)
    cost_params = critic_module.init(cost_key, observations, actions)
    return State(
        actor=create_train_state(actor_module, actor_params, config.actor_learning_rate),
        critic=create_train_state(critic_module, critic_params, config.critic_learning_rate),
        cost_critic=create_train_state(critic_module, cost_params, config.critic_learning_rate),
        target_actor_params=actor_params,
        target_critic_params=critic_params,
        target_cost_params=cost_params,
        lagrange=jnp.zeros((), jnp.float32),
        key=key,
        step=jnp.zeros((), jnp.int32),
    )


def _next_actions(state: State, batch, config: Config, noise_key):
    return smoothed_target_actions(state, batch["next_observations"], config, noise_key)


def critic_losses(params, state: State, batch, config: Config, next_actions):
    """Reward and cost critic losses together; ``params = (reward, cost)``."""
    reward_params, cost_params = params
    not_done = 1.0 - batch["terminations"]
    next_r = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)
    next_c = state.cost_critic.apply_fn(
        state.target_cost_params, batch["next_observations"], next_actions
    ).max(axis=0)
    y_r = jax.lax.stop_gradient(batch["rewards"] + config.discount * not_done * next_r)
    y_c = jax.lax.stop_gradient(batch["costs"] + config.discount * not_done * next_c)
    q_r = state.critic.apply_fn(reward_params, batch["observations"], batch["actions"])
    q_c = state.cost_critic.apply_fn(cost_params, batch["observations"], batch["actions"])
    loss_r = ensemble_mse(q_r, y_r)
    loss_c = ensemble_mse(q_c, y_c)
    return loss_r + loss_c, {
        "critic/loss": loss_r,
        "critic/q_mean": q_r.mean(),
        "cost/loss": loss_c,
        "cost/qc_mean": q_c.mean(),
    }


def actor_loss(actor_params, state: State, batch, config: Config):
    actions = state.actor.apply_fn(actor_params, batch["observations"])
    q_r = state.critic.apply_fn(state.critic.params, batch["observations"], actions)[0]
    q_c = state.cost_critic.apply_fn(state.cost_critic.params, batch["observations"], actions)[0]
    objective = q_r - state.lagrange * q_c
    scale = jax.lax.stop_gradient(config.alpha / (jnp.abs(objective).mean() + 1e-6))
    bc_mse = sample_mean(jnp.mean((actions - batch["actions"]) ** 2, axis=-1), batch)
    loss = -scale * objective.mean() + bc_mse
    return loss, {
        "actor/loss": loss,
        "actor/bc_mse": bc_mse,
        "actor/q_pi": q_r.mean(),
        "actor/qc_pi": q_c.mean(),
    }


def _actor_multiplier_targets(state: State, batch, config: Config):
    grads, metrics = jax.grad(actor_loss, has_aux=True)(state.actor.params, state, batch, config)
    actor = state.actor.apply_gradients(grads=grads)
    violation = metrics["actor/qc_pi"] - cost_threshold(config)
    lagrange = jnp.clip(
        state.lagrange + config.lambda_learning_rate * violation, 0.0, config.lambda_max
    )
    state = state.replace(
        actor=actor,
        lagrange=lagrange,
        target_actor_params=polyak(state.target_actor_params, actor.params, config.tau),
        target_critic_params=polyak(state.target_critic_params, state.critic.params, config.tau),
        target_cost_params=polyak(state.target_cost_params, state.cost_critic.params, config.tau),
    )
    return state, {**metrics, "actor/lagrange": lagrange, "actor/budget_gap": violation}


def update(state: State, batch, config: Config):
    key, noise_key = jax.random.split(state.key)
    next_actions = _next_actions(state, batch, config, noise_key)
    grads, critic_metrics = jax.grad(critic_losses, has_aux=True)(
        (state.critic.params, state.cost_critic.params), state, batch, config, next_actions
    )
    state = state.replace(
        critic=state.critic.apply_gradients(grads=grads[0]),
        cost_critic=state.cost_critic.apply_gradients(grads=grads[1]),
        key=key,
    )

    do_actor = state.step % config.policy_frequency == 0
    state, actor_metrics = update_if(
        do_actor, lambda s: _actor_multiplier_targets(s, batch, config), state
    )
    metrics = {**critic_metrics, **actor_metrics, "_valid/actor": do_actor.astype(jnp.float32)}
    return state.replace(step=state.step + 1), metrics


def act(state: State, observations, key, deterministic: bool, config: Config):
    return state.actor.apply_fn(state.actor.params, observations)
