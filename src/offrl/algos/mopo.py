"""MOPO (Yu et al., 2020, "Model-based Offline Policy Optimization"), as
OfflineRL-Kit's ``run_mopo.py`` runs it.

Before the updates (:func:`pretrain`) a dynamics ensemble is fit to the data
(:mod:`offrl.model.ensemble`: 7 Gaussian models of 4x200, 5 held-out elites).
Every update then rolls the policy out in the model from data states for ``h``
steps, with the reward penalized by the model's uncertainty::

    r~(s, a) = r^(s, a) - lambda u(s, a),   u = max_i ||sigma_i(s, a)||_2   (MOPO)

(any of the five penalties of :data:`offrl.model.PENALTIES` with ``penalty``),
ending each rollout at the task's termination (:mod:`offrl.envs.termination`), and
trains SAC (:mod:`offrl.algos.sac`) on batches of 5% data and 95% model rows
(:mod:`offrl.model.rollouts`).

Defaults are OfflineRL-Kit's: SAC with 256x256 networks, actor Adam 1e-4 with a
cosine decay to 0 over the run, critics 3e-4, automatic temperature (Adam 1e-4,
initial alpha 1, target entropy -|A|), gamma 0.99, tau 0.005, batch 256; rollouts
from 50,000 data states every 1,000 updates, kept for 5 such batches; h = 1 and
lambda = 2.5, with the per-dataset h and lambda of its suggested settings in
:data:`PRESETS` (``Config.preset``; Hopper-medium: h = 5, lambda = 5).

Deviations: the rollouts are spread over the updates (50 states each update, see
:mod:`offrl.model.rollouts`) so the policy that rolls out is one update old, not up
to 1,000; the temperature is not clamped to at most 1 (OfflineRL-Kit clamps it; it
starts at 1 and falls in every run we have seen); the model's fit drops each
epoch's last partial batch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from offrl.algos import sac
from offrl.core.state import adam
from offrl.data.dataset import Dataset, num_rows
from offrl.envs.termination import RULES
from offrl.model import ensemble, rollouts
from offrl.nn import tanh_gaussian_action

DEFAULT_REWARD_SCALING = "none"

#: OfflineRL-Kit's suggested (rollout_length, penalty_coef) per dataset (run_mopo.py).
PRESETS = {
    "halfcheetah-medium": (5, 0.5),
    "hopper-medium": (5, 5.0),
    "walker2d-medium": (5, 0.5),
    "halfcheetah-medium-replay": (5, 0.5),
    "hopper-medium-replay": (5, 2.5),
    "walker2d-medium-replay": (1, 2.5),
    "halfcheetah-medium-expert": (5, 2.5),
    "hopper-medium-expert": (5, 5.0),
    "walker2d-medium-expert": (1, 2.5),
}


@dataclasses.dataclass(frozen=True)
class Config(ensemble.ModelFields, sac.Config):
    """MOPO settings (OfflineRL-Kit's defaults); SAC's fields with these values."""

    actor_learning_rate: float = 1e-4
    """Adam learning rate of the actor (cosine decay to 0 over the run)."""
    temperature_learning_rate: float = 1e-4
    """Adam learning rate of log alpha (0 keeps alpha at its initial value)."""
    decay_steps: int | None = None
    """Length of the actor's cosine decay; ``None``: the run's length."""
    rollout_length: int = 1
    """h: model steps per rollout (PRESETS: per dataset)."""
    penalty_coef: float = 2.5
    """lambda: weight of the uncertainty penalty on model rewards (PRESETS)."""
    penalty: str = "aleatoric"
    """The uncertainty u(s, a): aleatoric (MOPO), pairwise (MOReL), ensemble_std,
    ensemble_var or ll_var."""
    rollout_batch_size: int = 50_000
    """Data states rolled out per rollout_freq updates."""
    rollout_freq: int = 1000
    """Updates per rollout_batch_size states (each update rolls out
    rollout_batch_size / rollout_freq of them)."""
    model_retain_epochs: int = 5
    """The model buffer holds this many rollout_freq updates' rollouts."""
    real_ratio: float = 0.05
    """Share of each batch drawn from the data (the rest from the model buffer)."""

    def __post_init__(self):
        # bad settings fail here, before the model's fit, not at the first update
        if self.penalty not in ensemble.PENALTIES:
            choices = ", ".join(ensemble.PENALTIES)
            raise ValueError(f"penalty '{self.penalty}' is unknown; choose one of {choices}")
        if self.termination != "auto" and self.termination not in RULES:
            raise ValueError(
                f"termination '{self.termination}' is unknown; choose auto or one of "
                f"{', '.join(RULES)}"
            )
        if self.rollout_length < 1 or self.rollout_freq < 1 or self.rollout_batch_size < 1:
            raise ValueError("rollout_length, rollout_freq and rollout_batch_size must be >= 1")
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio}")
        model_spec(self).check()

    @classmethod
    def preset(cls, dataset: str, **overrides) -> Config:
        """OfflineRL-Kit's h and lambda for a suite dataset (``hopper-medium``, ``suite:...``)."""
        name = dataset.removeprefix("suite:")
        if name not in PRESETS:
            raise KeyError(f"no MOPO preset for '{dataset}'; presets: {', '.join(PRESETS)}")
        length, coef = PRESETS[name]
        return cls(rollout_length=length, penalty_coef=coef, **overrides)


@struct.dataclass
class State(sac.State):
    """SAC's state with the model, its buffer and what the rollouts need."""

    model: ensemble.Ensemble
    buffer: rollouts.ModelBuffer
    observation_mean: jax.Array  # the run's standardization, for the termination rule
    observation_std: jax.Array
    target_floor: jax.Array  # MOBILE's clamp of its target (0, or -inf for negative rewards)


def model_spec(config: Config) -> ensemble.ModelSpec:
    return config.model_spec()


def starts_per_update(config: Config) -> int:
    return max(1, math.ceil(config.rollout_batch_size / config.rollout_freq))


def buffer_capacity(config: Config) -> int:
    rows = starts_per_update(config) * config.rollout_length
    return rows * config.rollout_freq * config.model_retain_epochs


def init(config: Config, example_batch, key: jax.Array) -> State:
    agent_key, model_key = jax.random.split(key)
    agent = sac.init(config, example_batch, agent_key)
    # the actor's learning rate decays (OfflineRL-Kit's CosineAnnealingLR)
    tx = adam(config.actor_learning_rate, config.decay_steps)
    actor = agent.actor.replace(tx=tx, opt_state=tx.init(agent.actor.params))
    dim = example_batch["observations"].shape[-1]
    action_dim = example_batch["actions"].shape[-1]
    return State(
        actor=actor,
        critic=agent.critic,
        log_alpha=agent.log_alpha,
        target_critic_params=agent.target_critic_params,
        key=agent.key,
        step=agent.step,
        model=ensemble.init(model_spec(config), dim, action_dim, model_key),
        buffer=rollouts.empty(buffer_capacity(config), dim, action_dim),
        observation_mean=jnp.zeros(dim, jnp.float32),
        observation_std=jnp.ones(dim, jnp.float32),
        target_floor=jnp.zeros((), jnp.float32),
    )


def terminated_fn(state: State, config: Config) -> Callable:
    """The task's rule on the model's (standardized) observations."""
    if config.termination not in RULES:
        raise ValueError(
            f"termination '{config.termination}' is not resolved: the trainer sets it from "
            f"the data (offrl.core.trainer.fill_from_data); or pass one of {', '.join(RULES)}"
        )
    rule = RULES[config.termination]

    def terminated(observations, actions, next_observations):
        raw = next_observations * state.observation_std + state.observation_mean
        before = observations * state.observation_std + state.observation_mean
        return rule(before, actions, raw)

    return terminated


def policy_sampler(state: State) -> Callable:
    """The current policy, sampling (OfflineRL-Kit rolls out ``select_action`` with
    ``deterministic=False``)."""

    def act_fn(observations, key):
        mean, log_std = state.actor.apply_fn(state.actor.params, observations)
        return tanh_gaussian_action(mean, log_std, key, False)

    return act_fn


def model_rollout(state: State, starts, key, config: Config, penalty_coef: float):
    """Roll the policy out from ``starts`` and add the rows to the model buffer."""
    spec = model_spec(config)
    rows, valid, info = rollouts.rollout(
        spec,
        state.model,
        policy_sampler(state),
        starts,
        config.rollout_length,
        key,
        terminated_fn(state, config),
        config.penalty,
        penalty_coef,
    )
    return state.replace(buffer=rollouts.add(state.buffer, rows, valid)), info


def mixed_batch(state: State, batch, key, config: Config):
    """``real_ratio`` of the batch from the data, the rest from the model buffer."""
    size = batch["observations"].shape[0]
    real = int(size * config.real_ratio)
    reserved = starts_per_update(config) * config.rollout_length
    fake = rollouts.sample(state.buffer, key, size - real, reserved)
    mixed = {
        name: jnp.concatenate([batch[name][:real], fake[name]], axis=0) for name in rollouts.FIELDS
    }
    mixed["truncations"] = jnp.zeros(size, jnp.float32)
    return mixed, real


def rollout_and_mix(state: State, batch, config: Config, penalty_coef: float):
    """One update's model work: roll out from the batch's first states, then the
    mixed batch. Returns ``(state, mixed, real_rows, info)``."""
    starts = starts_per_update(config)
    if batch["observations"].shape[0] < starts:
        raise ValueError(
            f"batch size {batch['observations'].shape[0]} is below the {starts} rollout "
            "starts per update (rollout_batch_size / rollout_freq); raise the batch size "
            "or rollout_freq"
        )
    key, rollout_key, sample_key = jax.random.split(state.key, 3)
    state, info = model_rollout(
        state.replace(key=key), batch["observations"][:starts], rollout_key, config, penalty_coef
    )
    mixed, real = mixed_batch(state, batch, sample_key, config)
    return state, mixed, real, info


def update(state: State, batch, config: Config):
    state, mixed, _, info = rollout_and_mix(state, batch, config, config.penalty_coef)
    state, metrics = sac.update(state, mixed, config)
    return state, {**metrics, **info, "model/buffer_rows": state.buffer.count.astype(jnp.float32)}


act = sac.act


# ------------------------------------------------------------------ before training
def pretrain(
    states: State, config: Config, dataset: Dataset, pre, keys: jax.Array, log=None
) -> tuple[State, dict]:
    """Fit the dynamics ensemble of every seed (``keys [S, 2]``) on the (preprocessed)
    training data, then fill the model buffer with one full-size rollout
    (``rollout_batch_size`` data states) of the initial policy, rewards penalized.
    Returns the states and the fit's summary."""
    return fit_and_fill(states, config, dataset, pre, keys, log, config.penalty_coef)


def fit_and_fill(
    states: State, config: Config, dataset: Dataset, pre, keys, log, penalty_coef: float
) -> tuple[State, dict]:
    """:func:`pretrain` with the model rewards' penalty weight given (MOBILE: 0)."""
    rows = num_rows(dataset)
    fitted, summary = ensemble.fit_dataset(model_spec(config), dataset, keys, log=log)
    seeds = keys.shape[0]

    def tile(x):
        return jnp.broadcast_to(jnp.asarray(x, jnp.float32), (seeds, *jnp.shape(x)))

    floor = 0.0 if float(jnp.min(dataset.rewards[:rows])) >= 0.0 else -jnp.inf
    states = states.replace(
        model=fitted,
        observation_mean=tile(pre.observation_mean),
        observation_std=tile(pre.observation_std),
        target_floor=tile(floor),
    )
    fill_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    states = _initial_fill(config, penalty_coef)(states, fill_keys, dataset)
    summary["buffer_rows"] = [int(c) for c in states.buffer.count]
    return states, summary


@functools.lru_cache(maxsize=8)
def _initial_fill(config: Config, penalty_coef: float):
    starts = starts_per_update(config)

    def one_seed(state, key, dataset):
        def body(state, key):
            start_key, rollout_key = jax.random.split(key)
            rows = jax.random.randint(start_key, (starts,), 0, num_rows(dataset))
            state, _ = model_rollout(
                state, dataset.observations[rows], rollout_key, config, penalty_coef
            )
            return state, None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, config.rollout_freq))
        return state

    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, None)))
