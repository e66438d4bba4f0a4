"""The full locomotion protocol in one command on one accelerator: every offline
algorithm on the suite's nine locomotion datasets (Hopper, HalfCheetah, Walker2d x
medium, medium-replay, medium-expert), seeds **and** the three datasets of a task
batched under ``jax.vmap`` (one compiled call trains 3 datasets x S seeds).

Each dataset is preprocessed on its own (standardization, the algorithm's reward
scaling, its derived fields), zero-padded to the largest of the three with an
empty episode after its last, and stacked (``offrl.data.dataset.stack_padded``:
the samplers draw real rows only). Periodic evaluations (``--eval-every``) choose each
seed's best policy; the final and best policies are then scored on held-out
episodes nothing was chosen on, as ``offrl train`` does. The table has the same
rows and files as ``offrl bench`` (results.md / .csv / .json under ``--output``)
plus ``device.json`` with the accelerator's name.

    python benchmarks/gpu_protocol.py --output runs/gpu-protocol            # the protocol
    python benchmarks/gpu_protocol.py --tiny --output /tmp/gpu-tiny         # a CPU check

``--tiny`` runs the same code at a size a CPU finishes in seconds (one algorithm,
Pendulum's expert, mixed and random datasets cut to 12, 8 and 5 episodes so that
the padding is used, 200 updates, 2 seeds, 2 evaluation episodes; building
Hopper's datasets alone takes minutes on a CPU); the test suite runs it. The
budget is the caller's: at 1M updates the wall time is what the table reports,
per cell.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.bench import BenchConfig, table, write_tables
from offrl.core import registry
from offrl.core.trainer import (
    build_chunk,
    build_policy,
    chunk_length,
    fill_from_data,
    fill_run_length,
    init_states,
    resolve_reward_scaling,
    seed_keys,
)
from offrl.data.dataset import stack_padded
from offrl.data.loading import load_dataset
from offrl.data.preprocess import apply_preprocessor, fit_preprocessor
from offrl.envs.rollout import HELDOUT_SEED, PERIODIC_SEED
from offrl.run.rundir import run_evaluation

TASKS = ("hopper", "halfcheetah", "walker2d")
LEVELS = ("medium", "medium-replay", "medium-expert")
#: Offline algorithms of the protocol: every one but the safety-constrained ones
#: (V-OCBF learns a barrier, TD3+BC-Lag needs costs) and those for other tasks
#: (chunked IQL: delayed actions; history IQL: hidden velocities).
SKIP = ("vocbf", "td3_bc_lag", "chunked_iql", "iql_history")


def default_algorithms() -> tuple[str, ...]:
    return tuple(n for n in registry.OFFLINE_ALGORITHMS if n not in SKIP)


def device_info() -> dict:
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": getattr(device, "device_kind", str(device)),
        "devices": len(jax.devices()),
        "jax": jax.__version__,
    }


def prepared_task(algo, config, task: str, levels, max_episodes):
    """The task's datasets in network units, padded and stacked on a leading axis,
    with their preprocessors and raw datasets. ``max_episodes``: ``None``, or the first
    episodes to keep of every dataset (one number) or of each (one per level)."""
    raws, pres, prepared = [], [], []
    if max_episodes is not None and len(max_episodes) == 1:
        max_episodes = list(max_episodes) * len(levels)
    for index, level in enumerate(levels):
        data = load_dataset(f"suite:{task}-{level}")
        if max_episodes is not None:
            keep = min(max_episodes[index], data.num_episodes)
            data = data.select_episodes(range(keep))
        scaling = resolve_reward_scaling(algo, "auto", data.info.env_id)
        pre = fit_preprocessor(data, True, scaling)
        prepare = getattr(algo, "prepare_dataset", lambda d, c: d)
        raws.append(data)
        pres.append(pre)
        prepared.append(prepare(apply_preprocessor(data, pre), config))
    return stack_padded(prepared), pres, raws, prepared


def run_task(name: str, task: str, args) -> dict[str, dict]:
    """Train ``name`` on the task's datasets together; summaries per dataset."""
    algo = registry.get(name)
    config = fill_run_length(algo.Config(**json.loads(args.config or "{}")), args.steps)
    stacked, pres, raws, prepared = prepared_task(
        algo, config, task, args.levels, args.max_episodes
    )
    # A data-dependent setting (DT's target return) from each dataset: the protocol
    # keeps one config per task, so the best over the three levels.
    configs = [fill_from_data(config, raw) for raw in raws]
    config = max(configs, key=lambda c: getattr(c, "target_return", 0.0) or 0.0)
    seeds = tuple(args.seeds)
    obs_dim, act_dim = raws[0].observation_dim, raws[0].action_dim
    init_keys, keys = seed_keys(seeds)
    states = init_states(algo, config, obs_dim, act_dim, init_keys)
    count = len(args.levels)
    if hasattr(algo, "pretrain"):  # a model-based method fits its model to each dataset
        fitted = [
            algo.pretrain(
                states,
                config,
                prepared[d].to_device(),
                jax.tree_util.tree_map(jnp.asarray, pres[d]),
                jax.vmap(lambda k, d=d: jax.random.fold_in(k, 1000 + d))(init_keys),
            )[0]
            for d in range(count)
        ]
        states = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *fitted)  # [D, S, ...]
    else:
        states = jax.tree_util.tree_map(lambda x: jnp.stack([x] * count), states)  # [D, S, ...]
    keys = jnp.stack(
        [jax.vmap(lambda k, d=d: jax.random.fold_in(k, d))(keys) for d in range(count)]
    )  # noqa: E501
    length = chunk_length(args.steps, args.steps_per_call, args.eval_every)
    chunk = jax.jit(
        jax.vmap(build_chunk(algo, config, args.batch_size, length, jit=False), in_axes=0)
    )
    policy = build_policy(algo, config)
    env_ids = [raw.info.env_id for raw in raws]
    best_scores = np.full((count, len(seeds)), -np.inf)
    best_states = states
    evaluations: list[list[dict]] = [[] for _ in range(count)]
    started = time.perf_counter()
    step = 0
    while step < args.steps:
        states, keys, _ = chunk(states, keys, stacked)
        step += length
        if step % args.eval_every == 0 or step == args.steps:
            for d in range(count):
                one = jax.tree_util.tree_map(lambda x, d=d: x[d], states)
                pre = jax.tree_util.tree_map(jnp.asarray, pres[d])
                result = run_evaluation(
                    policy, one, pre, env_ids[d], len(seeds), args.eval_episodes, PERIODIC_SEED
                )
                scores = (
                    result.normalized if result.normalized is not None else result.returns
                ).mean(1)  # noqa: E501
                evaluations[d].append({"step": step, "per_seed": scores.tolist()})
                better = scores > best_scores[d]
                best_scores[d] = np.where(better, scores, best_scores[d])
                best_states = jax.tree_util.tree_map(
                    lambda b, s, d=d, better=better: b.at[d].set(
                        jnp.where(
                            jnp.asarray(better).reshape((-1,) + (1,) * (s.ndim - 2)), s[d], b[d]
                        )  # noqa: E501
                    ),
                    best_states,
                    states,
                )
    jax.block_until_ready(states)
    seconds = time.perf_counter() - started
    summaries = {}
    for d, level in enumerate(args.levels):
        pre = jax.tree_util.tree_map(jnp.asarray, pres[d])
        final, best = (
            run_evaluation(
                policy,
                jax.tree_util.tree_map(lambda x, d=d: x[d], tree),
                pre,
                env_ids[d],
                len(seeds),
                args.heldout_episodes,
                HELDOUT_SEED,
            )
            for tree in (states, best_states)
        )

        def per_seed(result):
            return (
                (result.normalized if result.normalized is not None else result.returns)
                .mean(1)
                .tolist()
            )  # noqa: E501

        summaries[f"suite:{task}-{level}"] = {
            "score": "normalized",
            "steps": step,
            "final_per_seed": per_seed(final),
            "best_per_seed": per_seed(best),
            "scores_on": "heldout",
            "evaluations": evaluations[d],
            "wall_seconds": seconds,
            # every dataset of the task trains in the same call: seconds are shared
            "updates_per_second_per_seed": step / seconds,
        }
    return summaries


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", nargs="+", default=None)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--levels", nargs="+", default=list(LEVELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--steps-per-call", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--heldout-episodes", type=int, default=100)
    parser.add_argument("--max-episodes", type=int, nargs="+", default=None,
                        help="keep the first N episodes of every dataset, or of each")  # fmt: skip
    parser.add_argument("--config", default=None, help="algorithm settings as JSON")
    parser.add_argument("--output", default="runs/gpu-protocol")
    parser.add_argument("--tiny", action="store_true",
                        help="a CPU-sized check of the same code (see the docstring)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.tiny:  # Pendulum's three levels, cut to three sizes (the padding is used)
        args.algorithms = args.algorithms or ["td3_bc"]
        args.tasks, args.levels, args.seeds = ["pendulum"], ["expert", "mixed", "random"], [0, 1]
        args.steps, args.steps_per_call, args.eval_every = 200, 100, 100
        args.eval_episodes, args.heldout_episodes, args.max_episodes = 2, 2, [12, 8, 5]
        args.batch_size = 64
    algorithms = tuple(args.algorithms or default_algorithms())
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    info = {**device_info(), "command": " ".join(sys.argv), "args": vars(args)}
    (output / "device.json").write_text(json.dumps(info, indent=2))
    print(f"device: {info['device_kind']} ({info['platform']})", flush=True)
    summaries = {}
    for name in algorithms:
        for task in args.tasks:
            started = time.perf_counter()
            for dataset, summary in run_task(name, task, args).items():
                summaries[(name, dataset)] = summary
            print(f"{name} {task}: {time.perf_counter() - started:.0f} s", flush=True)
    datasets = tuple(f"suite:{t}-{lv}" for t in args.tasks for lv in args.levels)
    config = BenchConfig(
        algorithms=algorithms,
        datasets=datasets,
        seeds=tuple(args.seeds),
        steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        heldout_episodes=args.heldout_episodes,
        output=str(output),
    )
    result = table(config, summaries)
    result["device"] = info
    result["files"] = [str(p) for p in write_tables(config, result)]
    (output / "results.json").write_text(
        json.dumps({"config": dataclasses.asdict(config), **result}, indent=2)
    )
    return result


if __name__ == "__main__":
    main()
