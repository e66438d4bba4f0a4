"""The violation table: nominal policies with and without a learned safety filter,
beside a Lagrangian offline safe-RL baseline, and the filter's latency.

For each nominal run (``--policies``; seeds evaluated together) the script
evaluates, on the same reset seeds:

- the unfiltered policy (for a barrier run given as a policy: its
  behavior-cloned nominal, the released V-OCBF pipeline's; ``--policy-files``
  adds shipped policy files, e.g. the suite's SAC experts, acting
  deterministically);
- the policy behind the barrier run's CBF-QP filter (learned control-affine
  model) and behind its model-free Qc filter, each at every ``--margins``
  buffer;

then each ``--baselines`` run (e.g. TD3+BC-Lagrangian) unfiltered. Reported
per row: normalized score and return (mean ± std over seeds), the violation
rate (steps whose state has ``h < 0``), the share of episodes with a
violation, and, for filtered rows, the change against the same policy
unfiltered. With ``--latency`` it times one filtered action for a single state
and for a batch of 256 states (median of repeated jitted calls, after
compilation).

    python benchmarks/safety_filter.py --barrier runs/vocbf --policies runs/td3bc \\
        --baselines runs/lag --episodes 20 --output benchmarks/results/safety-pointrobot.json

Seeds: with as many barrier seeds as policy seeds, policy seed i is filtered by
barrier seed i (the whole pipeline repeated), see :mod:`offrl.safety.shield`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos import vocbf
from offrl.core.trainer import build_policy
from offrl.envs.rollout import evaluate
from offrl.evaluate.policy import load_policy
from offrl.safety.shield import load_barrier, shielded_policy


def _row(label: str, result, extra: dict | None = None) -> dict:
    safety = result.safety() or {}
    row = {
        "label": label,
        "return_per_seed": result.returns.mean(axis=1).tolist(),
        "violation_rate_per_seed": safety.get("violation_rate_per_seed"),
        "episodes_with_violation_per_seed": safety.get("episodes_with_violation_per_seed"),
        "violation_rate": safety.get("violation_rate"),
        "episodes_with_violation": safety.get("episodes_with_violation"),
    }
    if result.normalized is not None:
        row["normalized_per_seed"] = result.normalized.mean(axis=1).tolist()
    row.update(extra or {})
    return row


def nominal_policy(run: str):
    """A run's policy; for a barrier run its behavior-cloned nominal, unfiltered (the
    released V-OCBF pipeline filters that one)."""
    policy, context = load_policy(run)
    if context.algo is vocbf:
        states = context.states.replace(filter="none")
        batched, pre = build_policy(vocbf, context.algo_config), context.preprocessor

        def policy(observations, key):
            return batched(states, pre, jnp.asarray(observations, jnp.float32), key)

    return policy, context


def file_policy(path: str, num_seeds: int):
    """A shipped policy file (e.g. the suite's SAC expert) acting deterministically,
    replicated over ``num_seeds`` so that each barrier seed filters it once."""
    from offrl.suites.behavior import load_policy_file

    loaded = load_policy_file(path)

    def policy(observations, key):
        observations = np.asarray(observations, np.float32)
        flat = observations.reshape(-1, observations.shape[-1])
        actions = loaded.act(flat, key, deterministic=True)
        return actions.reshape(*observations.shape[:-1], -1)

    return policy


def evaluate_rows(args) -> list[dict]:
    barrier = load_barrier(args.barrier)
    barrier_seeds = len(barrier.seeds)
    rows = []
    nominals = [(run, *nominal_policy(run)) for run in args.policies]
    nominals += [(path, file_policy(path, barrier_seeds), None) for path in args.policy_files]
    for run, policy, context in nominals:
        seeds = len(context.seeds) if context else barrier_seeds
        env_id = context.env_id if context else (args.env_id or barrier.env_id)

        def run_eval(p, label, extra=None, seeds=seeds, env_id=env_id):
            started = time.perf_counter()
            result = evaluate(p, env_id, seeds, args.episodes, key=jax.random.PRNGKey(0))
            row = _row(label, result, extra)
            row["seconds"] = round(time.perf_counter() - started, 1)
            print(_format(row), flush=True)
            return row

        if context is None:
            name = f"{pathlib.Path(run).parent.name}/{pathlib.Path(run).name}"
        else:
            name = pathlib.Path(run).name + (" BC nominal" if context.algo is vocbf else "")
        base = run_eval(policy, f"{name} (unfiltered)", {"policy": run, "filter": None})
        rows.append(base)
        variants = [
            (mode, margin, alpha)
            for mode in args.filters
            for margin in args.margins
            for alpha in (args.alphas if mode == "cbf" else [None])
        ]
        for mode, margin, alpha in variants:
            shielded, _ = shielded_policy(policy, seeds, barrier, mode, margin, alpha)
            setting = f"buffer {margin:g}" + ("" if alpha is None else f", alpha {alpha:g}")
            row = run_eval(
                shielded,
                f"{name} + {mode} filter ({setting})",
                {"policy": run, "filter": mode, "margin": margin, "alpha": alpha},
            )
            row["violation_reduction"] = (
                1 - row["violation_rate"] / base["violation_rate"]
                if base["violation_rate"]
                else None
            )
            if "normalized_per_seed" in row:
                row["normalized_change"] = float(
                    np.mean(row["normalized_per_seed"]) - np.mean(base["normalized_per_seed"])
                )
            row["return_change_relative"] = float(
                np.mean(row["return_per_seed"]) / np.mean(base["return_per_seed"]) - 1
            )
            rows.append(row)
    for run in args.baselines:
        policy, context = load_policy(run)
        result = evaluate(
            policy,
            context.env_id,
            len(context.seeds),
            args.episodes,
            key=jax.random.PRNGKey(0),
        )
        row = _row(f"{pathlib.Path(run).name} (baseline)", result, {"policy": run})
        print(_format(row), flush=True)
        rows.append(row)
    return rows


def _mean_std(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.1f} ± {values.std():.1f}"


def _format(row: dict) -> str:
    parts = [row["label"]]
    if "normalized_per_seed" in row:
        parts.append(f"score {_mean_std(row['normalized_per_seed'])}")
    parts.append(f"return {_mean_std(row['return_per_seed'])}")
    if row.get("violation_rate") is not None:
        parts.append(f"violations {100 * row['violation_rate']:.2f}% of steps")
        parts.append(f"{100 * row['episodes_with_violation']:.0f}% of episodes")
    if row.get("violation_reduction") is not None:
        parts.append(f"{100 * row['violation_reduction']:.0f}% fewer")
    return " | ".join(parts)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| policy | normalized score | violation rate (steps) | episodes with a violation "
        "| violations vs unfiltered | return vs unfiltered |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        reduction = row.get("violation_reduction")
        change = row.get("return_change_relative")
        lines.append(
            f"| {row['label']} | {_mean_std(row.get('normalized_per_seed', [np.nan]))} "
            f"| {100 * row['violation_rate']:.2f}% "
            f"(± {100 * np.std(row['violation_rate_per_seed']):.2f}) "
            f"| {100 * row['episodes_with_violation']:.0f}% "
            f"| {'' if reduction is None else f'{-100 * reduction:+.0f}%'} "
            f"| {'' if change is None else f'{100 * change:+.1f}%'} |"
        )
    return "\n".join(lines)


def latency(barrier_dir: str, repeats: int = 200) -> dict:
    """Median seconds per filtered action: one state, and a batch of 256 states."""
    context = load_barrier(barrier_dir)
    state = jax.tree_util.tree_map(lambda x: x[0], context.states)
    out = {}
    rng = np.random.default_rng(0)
    for mode in ("cbf", "qc"):
        fn = jax.jit(
            lambda s, z, u, mode=mode: vocbf.filter_actions(s, z, u, context.algo_config, mode)[0]
        )
        for batch in (1, 256):
            z = jnp.asarray(rng.normal(size=(batch, context.observation_dim)), jnp.float32)
            u = jnp.asarray(rng.uniform(-1, 1, (batch, context.action_dim)), jnp.float32)
            fn(state, z, u).block_until_ready()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                fn(state, z, u).block_until_ready()
                times.append(time.perf_counter() - started)
            out[f"{mode}_batch{batch}_ms"] = 1000 * float(np.median(times))
            out[f"{mode}_batch{batch}_ms_per_state"] = 1000 * float(np.median(times)) / batch
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--barrier", required=True, help="barrier run (offrl safety fit)")
    parser.add_argument("--policies", nargs="+", default=[], help="nominal policy runs")
    parser.add_argument("--baselines", nargs="*", default=[], help="runs evaluated unfiltered")
    parser.add_argument(
        "--policy-files", nargs="*", default=[], help="shipped policy files used as nominals"
    )
    parser.add_argument("--env-id", help="environment for policy files (default: the barrier's)")
    parser.add_argument("--filters", nargs="+", default=["cbf", "qc"])
    parser.add_argument("--margins", nargs="+", type=float, default=[0.0])
    parser.add_argument("--alphas", nargs="+", type=float, default=[1.0], help="CBF gains")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--output", type=pathlib.Path)
    args = parser.parse_args()
    results = {
        "command": "python benchmarks/safety_filter.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v not in (None, False, [])
        ),
        "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0].platform}",
        "date": time.strftime("%Y-%m-%d"),
        "episodes": args.episodes,
        "rows": evaluate_rows(args),
    }
    if args.latency:
        results["latency"] = latency(args.barrier)
        print(json.dumps(results["latency"], indent=2))
    print(markdown(results["rows"]))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
