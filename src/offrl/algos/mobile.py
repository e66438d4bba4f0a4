"""MOBILE (Sun et al., 2023, "Model-Bellman Inconsistency for Model-based Offline
RL"), as OfflineRL-Kit's ``run_mobile.py`` runs it.

MOPO's machinery (:mod:`offrl.algos.mopo`: the dynamics ensemble, rollouts of
``h`` steps from data states, batches of 5% data and 95% model rows) with the
penalty moved from the model's reward into the critic's target. The penalty is
the spread across the elite models of the Bellman target: with ``M`` next states
drawn from each elite ``k``, ``s'_{k,m} ~ N(mu_k(s, a), sigma_k(s, a))``, and
``a'_{k,m} ~ pi(.|s'_{k,m})``::

    u(s, a) = std_k [ mean_m min_i Q_targ_i(s'_{k,m}, a'_{k,m}) ]    (sample std)
    y = max(r - beta u(s, a) + gamma (1 - terminated) min_i Q_targ_i(s', a'), 0)

with ``u = 0`` on the data's rows, a deterministic backup (no entropy term) and the
target clamped at 0 (the released code's clamp; offrl lifts it when the data has
negative rewards, where it would erase every target). Actor and temperature are
SAC's.

Defaults are OfflineRL-Kit's: beta = 1.5, M = 10, h = 1, two critics, the dynamics
fit capped at 30 epochs, and MOPO's other settings; the per-dataset h and beta of
its suggested settings are in :data:`PRESETS` (Hopper-medium also fixes alpha at
0.2). Deviations: MOPO's (rollouts spread over the updates, no clamp of alpha), and
the clamp's lifting above.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from offrl.algos import mopo, sac
from offrl.algos.common import ensemble_mse
from offrl.model import ensemble
from offrl.nn import sample_tanh_gaussian

DEFAULT_REWARD_SCALING = "none"
State = mopo.State
act = mopo.act

#: OfflineRL-Kit's suggested (rollout_length, penalty_coef) per dataset (run_mobile.py).
PRESETS = {
    "halfcheetah-random": (5, 0.5),
    "hopper-random": (5, 5.0),
    "walker2d-random": (5, 2.0),
    "halfcheetah-medium": (5, 0.5),
    "hopper-medium": (5, 1.5),
    "walker2d-medium": (5, 0.5),
    "halfcheetah-medium-replay": (5, 0.1),
    "hopper-medium-replay": (5, 0.1),
    "walker2d-medium-replay": (1, 0.5),
    "halfcheetah-medium-expert": (5, 2.0),
    "hopper-medium-expert": (5, 1.5),
    "walker2d-medium-expert": (1, 1.5),
}


@dataclasses.dataclass(frozen=True)
class Config(mopo.Config):
    """MOBILE settings (OfflineRL-Kit's defaults); MOPO's fields with these values."""

    penalty_coef: float = 1.5
    """beta: weight of the Bellman-target spread in the critic target (PRESETS)."""
    num_samples: int = 10
    """M: next states drawn from each elite model for the penalty."""
    backup_entropy: bool = False
    """Deterministic backup: no alpha log pi term in the critic target."""
    model_max_epochs: int | None = 30
    """Most epochs of the dynamics fit."""

    @classmethod
    def preset(cls, dataset: str, **overrides) -> Config:
        """OfflineRL-Kit's h and beta for a suite dataset (hopper-medium also alpha 0.2)."""
        name = dataset.removeprefix("suite:")
        if name not in PRESETS:
            raise KeyError(f"no MOBILE preset for '{dataset}'; presets: {', '.join(PRESETS)}")
        length, coef = PRESETS[name]
        fixed = {"initial_temperature": 0.2, "temperature_learning_rate": 0.0}
        settings = {"rollout_length": length, "penalty_coef": coef}
        if name == "hopper-medium":
            settings.update(fixed)
        return cls(**{**settings, **overrides})


def init(config: Config, example_batch, key: jax.Array) -> State:
    return mopo.init(config, example_batch, key)


def bellman_penalty(state: State, observations, actions, key, config: Config) -> jax.Array:
    """``u(s, a)`` ``[B]``: the sample std over elites of the mean over ``M`` draws of
    the target critics' minimum at the drawn next state and a policy action there."""
    spec = mopo.model_spec(config)
    draw_key, act_key = jax.random.split(key)
    mean, std = ensemble.distribution(spec, state.model, observations, actions)
    mean, std = mean[state.model.elites], std[state.model.elites]  # [K, B, D + 1]
    noise = jax.random.normal(draw_key, (config.num_samples, *mean.shape))
    next_obs = (mean + std * noise)[..., :-1]  # [M, K, B, D]
    flat = next_obs.reshape(-1, next_obs.shape[-1])
    a_mean, a_log_std = state.actor.apply_fn(state.actor.params, flat)
    next_actions, _ = sample_tanh_gaussian(a_mean, a_log_std, act_key)
    q = state.critic.apply_fn(state.target_critic_params, flat, next_actions).min(axis=0)
    q = q.reshape(next_obs.shape[:-1])  # [M, K, B]
    return q.mean(axis=0).std(axis=0, ddof=1)


def penalized_target(batch, u, next_q, config: Config, floor) -> jax.Array:
    """``max(r - beta u + gamma (1 - terminated) next_q, floor)``."""
    target = (
        batch["rewards"]
        - config.penalty_coef * u
        + config.discount * (1.0 - batch["terminations"]) * next_q
    )
    return jnp.maximum(target, floor)


def critic_loss(critic_params, state: State, batch, real: int, config: Config, key):
    penalty_key, next_key = jax.random.split(key)
    u = bellman_penalty(state, batch["observations"], batch["actions"], penalty_key, config)
    u = u.at[:real].set(0.0)  # the data's rows are not penalized
    mean, log_std = state.actor.apply_fn(state.actor.params, batch["next_observations"])
    next_actions, next_log_prob = sample_tanh_gaussian(mean, log_std, next_key)
    next_q = state.critic.apply_fn(
        state.target_critic_params, batch["next_observations"], next_actions
    ).min(axis=0)
    if config.backup_entropy:
        next_q = next_q - jnp.exp(state.log_alpha.params["log_alpha"]) * next_log_prob
    target = penalized_target(batch, u, next_q, config, state.target_floor)
    q = state.critic.apply_fn(critic_params, batch["observations"], batch["actions"])
    loss = ensemble_mse(q, target)
    return loss, {
        "critic/loss": loss,
        "critic/q_mean": q.mean(),
        "critic/penalty": u[real:].mean(),
    }


def update(state: State, batch, config: Config):
    state, mixed, real, info = mopo.rollout_and_mix(state, batch, config, 0.0)

    def loss(critic_params, state, batch, config, key):
        return critic_loss(critic_params, state, batch, real, config, key)

    state, metrics = sac.update(state, mixed, config, loss)
    return state, {**metrics, **info}


def pretrain(states: State, config: Config, dataset, pre, keys, log=None):
    """MOPO's (fit the ensemble, fill the buffer), with unpenalized model rewards."""
    return mopo.fit_and_fill(states, config, dataset, pre, keys, log, 0.0)
