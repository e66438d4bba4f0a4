"""Put a learned barrier in front of any offrl policy.

A barrier run (``offrl safety fit``, algorithm ``vocbf``) holds ``B = Vc``,
``Qc`` and the control-affine model in its own standardized coordinates. The
shield maps the nominal policy's actions (environment units) and the
observations into those coordinates, filters, and maps the action back::

    z = (s - mean_B) / std_B,   u_nom = to_unit_B(pi(s))
    u = filter(z, u_nom),       a = from_unit_B(u)

When the nominal run and the barrier run have the same number of seeds, seed
``i`` of the policy is paired with seed ``i`` of the barrier (independent
repetitions of the whole pipeline); otherwise every policy seed uses the
barrier's first seed.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp

from offrl.algos import vocbf
from offrl.run.rundir import load_run
from offrl.run.settings import RunError

FILTERS = ("cbf", "qc", "none")


def load_barrier(run_dir: str | pathlib.Path, step: int | None = None):
    """The loaded barrier run (a :class:`~offrl.run.rundir.RunContext` of ``vocbf``)."""
    context = load_run(run_dir, step)
    if context.algo is not vocbf:
        raise RunError(
            f"{run_dir} was trained with '{context.algo.__name__.rsplit('.', 1)[-1]}', not a "
            "barrier; pass a run directory written by `offrl safety fit`"
        )
    return context


def filter_in_env(pre, state, config, observations, nominal, mode: str, margin=None, alpha=None):
    """One barrier seed's filter in environment units: observations ``[N, D]`` and
    nominal actions ``[N, A]`` in, ``(actions [N, A], info)`` out. The barrier run's
    preprocessor ``pre`` maps both into its coordinates and the action back; the
    shield and the exported ONNX graph (:mod:`offrl.export`) both call it."""
    z = pre.observation(observations)
    u_nom = jnp.clip(pre.action_from_env(nominal), -1.0, 1.0)
    u, info = vocbf.filter_actions(state, z, u_nom, config, mode, margin, alpha)
    return pre.action_to_env(u), info


def shielded_policy(
    policy: Callable,
    num_seeds: int,
    barrier_context,
    mode: str = "cbf",
    margin: float | None = None,
    alpha: float | None = None,
) -> tuple[Callable, Callable]:
    """``(policy, diagnose)``: the filtered batched policy and a function giving the
    filter's per-row info for the same inputs.

    ``policy(observations[S, N, D], key) -> actions[S, N, A]`` in environment units.
    ``margin`` and ``alpha`` override the barrier run's ``filter_margin`` (a safety
    buffer on B) and the CBF gain.
    """
    if mode not in FILTERS:
        raise ValueError(f"unknown filter '{mode}'; use one of {', '.join(FILTERS)}")
    pre = barrier_context.preprocessor
    states = barrier_context.states
    config = barrier_context.algo_config
    barrier_seeds = int(jax.tree_util.tree_leaves(states.step)[0].shape[0])
    if barrier_seeds != num_seeds:
        states = jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x[:1], (num_seeds, *x.shape[1:])), states
        )

    def one_seed(state, observations, nominal):
        return filter_in_env(pre, state, config, observations, nominal, mode, margin, alpha)

    filtered = jax.jit(jax.vmap(one_seed))

    def shielded(observations, key):
        observations = jnp.asarray(observations, jnp.float32)
        nominal = policy(observations, key)
        return filtered(states, observations, jnp.asarray(nominal))[0]

    def diagnose(observations, key):
        observations = jnp.asarray(observations, jnp.float32)
        return filtered(states, observations, jnp.asarray(policy(observations, key)))[1]

    if hasattr(policy, "record"):  # a sequence policy records the filtered actions taken
        shielded.reset_history = policy.reset_history
        shielded.record = policy.record
    return shielded, diagnose
