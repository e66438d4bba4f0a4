"""Planning in a learned model: the cross-entropy method and goal-reaching MPC.

DINO-WM plans to a goal state with CEM in a learned world model and no reward; on
states (offrl's tasks) the latent is the state itself, so the world model is the
dynamics ensemble (:mod:`offrl.model.ensemble`). :func:`cem` minimizes any batched
cost over action sequences; :func:`goal_cost` scores a sequence by rolling the
elites' mean prediction forward from the current state and summing the distance of
the chosen coordinates to the goal; :func:`mpc_action` replans every step and
returns the first action (model-predictive control).

CEM (Rubinstein, 1999) as DINO-WM and PETS run it: a Gaussian over the ``H x A``
sequence, ``population`` samples clipped to the action box, the ``elites``
lowest-cost samples refit the mean and standard deviation, ``iterations`` times;
the mean is the plan. Warm start: the next step's initial mean is the plan shifted
by one step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from offrl.model import ensemble as ens


@dataclasses.dataclass(frozen=True)
class CEMConfig:
    horizon: int = 20
    population: int = 256
    elites: int = 32
    iterations: int = 5
    initial_std: float = 0.5
    min_std: float = 0.05


def cem(
    cost: Callable[[jax.Array], jax.Array],
    mean: jax.Array,
    key: jax.Array,
    config: CEMConfig,
    low: float = -1.0,
    high: float = 1.0,
) -> jax.Array:
    """The sequence ``[H, A]`` that minimizes ``cost(sequences [P, H, A]) -> [P]``,
    starting from ``mean``; pure and jit-able."""

    def iteration(carry, key):
        mean, std = carry
        noise = jax.random.normal(key, (config.population, *mean.shape))
        samples = jnp.clip(mean + std * noise, low, high)
        costs = cost(samples)
        best = samples[jnp.argsort(costs)[: config.elites]]
        return (best.mean(axis=0), jnp.maximum(best.std(axis=0), config.min_std)), costs.min()

    std = jnp.full_like(mean, config.initial_std)
    (mean, _), _ = jax.lax.scan(iteration, (mean, std), jax.random.split(key, config.iterations))
    return mean


def goal_cost(
    spec: ens.ModelSpec,
    model: ens.Ensemble,
    observation: jax.Array,
    sequences: jax.Array,
    goal: jax.Array,
    coordinates: tuple[int, ...],
) -> jax.Array:
    """``[P]``: the sum over the horizon of ``||s_t[coordinates] - goal||`` along the
    elites' mean prediction from ``observation`` under each sequence ``[P, H, A]``."""
    index = jnp.asarray(coordinates)
    start = jnp.broadcast_to(observation, (sequences.shape[0], observation.shape[-1]))

    def step(states, actions):
        mean, _ = ens.distribution(spec, model, states, actions)
        nxt = mean[model.elites, :, :-1].mean(axis=0)
        return nxt, jnp.linalg.norm(nxt[:, index] - goal, axis=-1)

    _, distances = jax.lax.scan(step, start, jnp.swapaxes(sequences, 0, 1))
    return distances.sum(axis=0)


@functools.lru_cache(maxsize=8)
def mpc_planner(spec: ens.ModelSpec, config: CEMConfig, coordinates: tuple[int, ...]):
    """A jitted ``(model, observation, goal, previous_plan, key) -> (action, plan)``."""

    def plan(model, observation, goal, previous, key):
        warm = jnp.concatenate([previous[1:], previous[-1:]], axis=0)
        sequence = cem(
            lambda s: goal_cost(spec, model, observation, s, goal, coordinates), warm, key, config
        )
        return sequence[0], sequence

    return jax.jit(plan)
