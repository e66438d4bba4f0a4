"""Evaluate a run directory's checkpoint (``offrl eval``)."""

from __future__ import annotations

import pathlib

import jax

from offrl.core.history import bind_policy
from offrl.core.trainer import build_policy
from offrl.envs.registry import EnvError, check_env_id
from offrl.envs.rollout import evaluate
from offrl.run.rundir import evaluation_record, load_run, write_json_atomic
from offrl.run.settings import RunError


def load_policy(run_dir: str | pathlib.Path, step: int | None = None):
    """``(policy, context)``: a batched act in environment units and the loaded run.

    ``policy(observations[S, N, obs_dim], key) -> actions[S, N, act_dim]``.
    """
    context = load_run(run_dir, step)
    batched = build_policy(context.algo, context.algo_config)
    return bind_policy(batched, context.states, context.preprocessor), context


def evaluate_run(
    run_dir,
    step: int | None = None,
    episodes: int = 10,
    env_id: str | None = None,
    seed: int = 10_000,
    filter_dir: str | pathlib.Path | None = None,
    filter_mode: str = "cbf",
    filter_margin: float | None = None,
) -> dict:
    """Evaluate every seed of a run; writes ``eval_step_<N>.json`` in the run directory
    (``eval_step_<N>_filtered_<mode>.json`` when a barrier run ``filter_dir`` filters
    the policy, see :mod:`offrl.safety.shield`)."""
    policy, context = load_policy(run_dir, step)
    if env_id is None and context.env_id is not None:
        try:
            check_env_id(context.env_id)
        except EnvError as error:
            raise RunError(f"{pathlib.Path(run_dir) / 'config.json'}: {error}") from error
    env_id = env_id or context.env_id
    if env_id is None:
        raise RunError(f"{run_dir} does not record an environment; pass --env-id")
    seeds = list(context.seeds)
    if filter_dir is not None:
        from offrl.safety.shield import load_barrier, shielded_policy

        barrier = load_barrier(filter_dir)
        if barrier.observation_dim != context.observation_dim:
            raise RunError(
                f"the barrier in {filter_dir} takes {barrier.observation_dim}-dimensional "
                f"observations but {run_dir}'s policy {context.observation_dim}; learn the "
                "barrier on data from the same task"
            )
        policy, _ = shielded_policy(policy, len(seeds), barrier, filter_mode, filter_margin)
    result = evaluate(policy, env_id, len(seeds), episodes, seed=seed, key=jax.random.PRNGKey(seed))
    out = {
        **evaluation_record(context.step, result),
        "run_dir": str(run_dir),
        "env_id": env_id,
        "seeds": seeds,
        "reset_seeds": f"{seed}..{seed + episodes - 1}",
        "returns": result.returns.tolist(),
        "lengths": result.lengths.tolist(),
    }
    safety = result.safety()
    if safety is not None:
        out.update(safety)
        out["violations"] = result.violations.tolist()
    name = f"eval_step_{context.step}.json"
    if filter_dir is not None:
        out["filter"] = {"run_dir": str(filter_dir), "mode": filter_mode, "margin": filter_margin}
        buffer = "" if filter_margin is None else f"_margin{filter_margin:g}"
        name = f"eval_step_{context.step}_filtered_{filter_mode}{buffer}.json"
    write_json_atomic(pathlib.Path(run_dir) / name, out)
    return out
