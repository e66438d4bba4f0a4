"""ReBRAC (Tarasov et al. 2023, "Revisiting the Minimalist Approach to Offline RL").

TD3+BC with the design choices that make it strong: deeper networks (3 hidden
layers), LayerNorm in the critics, large batches and learning rates, and a
behaviour-cloning penalty in the critic's target as well as in the actor.

Critic (both members; ``a'_D`` is the dataset's next action)::

    a' = clip(pi_targ(s') + clip(eps, -c, c), -1, 1),   eps ~ N(0, sigma^2)
    y  = r + gamma (1 - terminated) (min_i Q_targ_i(s', a') - beta_c ||a' - a'_D||^2)
    L_Q = sum_i E_D (Q_i(s, a) - y)^2

Actor (every ``policy_frequency`` updates)::

    lambda = 1 / E_D |min_i Q_i(s, pi(s))|      (no gradient; 1 without normalize_q)
    L_pi = E_D [beta_a ||pi(s) - a||^2 - lambda min_i Q_i(s, pi(s))]

Targets (actor and critics) move by Polyak averaging with ``tau`` on actor updates.

Defaults are CORL's ``rebrac.py``: 3x256 networks, LayerNorm in the critics only,
Adam 1e-3 for both, gamma 0.99, tau 0.005, sigma 0.2, c 0.5, policy frequency 2,
normalize_q on, beta_a = beta_c = 1 (its base config; the per-dataset values of its
configs are in :data:`PRESETS`, e.g. hopper-medium 0.01 / 0.01, and
``Config.preset(name)``). CORL trains at batch 1024 (256 on maze2d): pass
``--batch-size 1024``. Deviations: the trainer standardizes observations (CORL's
ReBRAC configs do not: pass ``--no-normalize-observations``); flax's default
initializers instead of CORL's PyTorch-style uniform ones with bias 0.1; the critics'
LayerNorm sits before the ReLU (offrl's MLP) rather than after it; the last step of a
truncated episode has no recorded next action and uses its own
(:func:`offrl.data.returns.next_actions`), where CORL drops that row.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from offrl.algos import td3_bc
from offrl.algos.common import (
    delayed_actor_update,
    ensemble_mse,
    sample_mean,
    smoothed_target_actions,
)
from offrl.data.returns import next_actions

DEFAULT_REWARD_SCALING = "none"
#: Per-sample dataset weights reach the actor's behaviour-cloning term.
USES_WEIGHTS = True

#: CORL's per-dataset (actor_bc_coef, critic_bc_coef), by the suite's dataset names.
PRESETS = {
    "halfcheetah-random": (0.001, 0.1),
    "halfcheetah-medium": (0.001, 0.01),
    "halfcheetah-expert": (0.01, 0.01),
    "halfcheetah-medium-expert": (0.01, 0.1),
    "halfcheetah-medium-replay": (0.01, 0.001),
    "hopper-random": (0.001, 0.01),
    "hopper-medium": (0.01, 0.01),
    "hopper-expert": (0.1, 0.1),
    "hopper-medium-expert": (0.1, 0.01),
    "hopper-medium-replay": (0.05, 0.5),
    "walker2d-random": (0.01, 0.0),
    "walker2d-medium": (0.05, 0.1),
    "walker2d-expert": (0.01, 0.5),
    "walker2d-medium-expert": (0.01, 0.01),
    "walker2d-medium-replay": (0.05, 0.01),
    "pointmaze-umaze": (0.003, 0.001),  # CORL's maze2d values (batch 256)
    "pointmaze-medium": (0.003, 0.001),
    "pointmaze-large": (0.003, 0.001),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """ReBRAC settings (CORL's base config)."""

    actor_learning_rate: float = 1e-3
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the critics."""
    hidden_dims: tuple[int, ...] = (256, 256, 256)
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
    actor_bc_coef: float = 1.0
    """beta_a: weight of ||pi(s) - a||^2 in the actor loss (PRESETS: per dataset)."""
    critic_bc_coef: float = 1.0
    """beta_c: weight of ||a' - a'_D||^2 subtracted from the target Q (PRESETS)."""
    normalize_q: bool = True
    """Divide the actor's Q term by the batch's mean |Q| (no gradient)."""
    num_critics: int = 2
    """Size of the critic ensemble (the min is taken over all members)."""
    critic_layer_norm: bool = True
    """LayerNorm after each hidden layer of the critics."""
    actor_layer_norm: bool = False
    """LayerNorm after each hidden layer of the actor."""

    @classmethod
    def preset(cls, dataset: str, **overrides) -> Config:
        """CORL's coefficients for a suite dataset (``hopper-medium``, ``suite:...``)."""
        name = dataset.removeprefix("suite:").removesuffix("-dense")
        if name not in PRESETS:
            raise KeyError(f"no ReBRAC preset for '{dataset}'; presets: {', '.join(PRESETS)}")
        actor, critic = PRESETS[name]
        return cls(actor_bc_coef=actor, critic_bc_coef=critic, **overrides)


State = td3_bc.State


def prepare_dataset(dataset, config: Config):
    """The training data with each step's next action (the critic's penalty)."""
    return dataset.replace(next_actions=next_actions(dataset))


def init(config: Config, example_batch, key: jax.Array) -> State:
    """TD3+BC's networks and targets, with ReBRAC's depth and LayerNorm settings."""
    return td3_bc.init(config, example_batch, key, config.actor_layer_norm)


def critic_loss(critic_params, state: State, batch, config: Config, noise_key):
    next_actions = smoothed_target_actions(state, batch["next_observations"], config, noise_key)
    penalty = jnp.sum((next_actions - batch["next_actions"]) ** 2, axis=-1)  # [B]
    next_q = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)  # [B]
    next_q = next_q - config.critic_bc_coef * penalty
    not_done = 1.0 - batch["terminations"]
    target = jax.lax.stop_gradient(batch["rewards"] + config.discount * not_done * next_q)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])  # [E, B]
    loss = ensemble_mse(q, target)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/target_mean": target.mean(),
        "critic/next_action_penalty": penalty.mean(),
    }


def actor_loss(actor_params, state: State, batch, config: Config):
    actions = state.actor.apply_fn(actor_params, batch["observations"])  # [B, A]
    q = state.critic.apply_fn(state.critic.params, batch["observations"], actions).min(axis=0)
    lam = jax.lax.stop_gradient(1.0 / jnp.abs(q).mean()) if config.normalize_q else 1.0
    bc = jnp.sum((actions - batch["actions"]) ** 2, axis=-1)  # [B]
    bc_term = sample_mean(bc, batch)
    loss = config.actor_bc_coef * bc_term - lam * q.mean()
    return loss, {
        "actor/loss": loss,
        "actor/bc_mse": bc.mean() / actions.shape[-1],
        "actor/lambda": jnp.asarray(lam, jnp.float32),
        "actor/q_pi": q.mean(),
    }


def update(state: State, batch, config: Config):
    return delayed_actor_update(state, batch, config, critic_loss, actor_loss)


def act(state: State, observations, key, deterministic: bool, config: Config):
    return state.actor.apply_fn(state.actor.params, observations)
