"""The safety filter inside the exported graph against the JAX filter, in the task.

For each filter (``--modes``) and buffer (``--margins``) the nominal run
(``--policy``) is evaluated behind the barrier run's filter (``--barrier``) twice
on the same reset seeds: as ``offrl eval --filter`` runs it (JAX,
:func:`offrl.safety.shield.shielded_policy`) and as the ONNX files of
``offrl export --filter`` run it with onnxruntime (:mod:`offrl.deploy`), seed
``i`` of the policy with seed ``i`` of the barrier in both. Reported: the
violation rate (steps with ``h < 0``), episodes with a violation, the return, and
the largest action difference of the files from JAX on 1000 observations around
the data (the export's own check).

    python benchmarks/export_filter.py --barrier runs/vocbf --policy runs/td3bc \\
        --episodes 20 --output benchmarks/results/export-filter-pointrobot.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import tempfile
import time

import jax
import numpy as np

from offrl.deploy import load_policy
from offrl.envs.rollout import evaluate
from offrl.evaluate.policy import load_policy as load_jax_policy
from offrl.export import ExportConfig, export_run
from offrl.safety.shield import load_barrier, shielded_policy


def _summary(result) -> dict:
    safety = result.safety()
    return {
        "return_mean": float(result.returns.mean()),
        "return_per_seed": result.returns.mean(axis=1).tolist(),
        "violation_rate": safety["violation_rate"],
        "episodes_with_violation": safety["episodes_with_violation"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--barrier", required=True)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["cbf", "qc"])
    parser.add_argument("--margins", nargs="+", type=float, default=[0.0, 0.1])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    nominal, context = load_jax_policy(args.policy)
    barrier = load_barrier(args.barrier)
    seeds = len(context.seeds)
    env_id = context.env_id
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for mode in args.modes:
            for margin in args.margins:
                shielded, _ = shielded_policy(nominal, seeds, barrier, mode, margin)
                start = time.time()
                jax_result = evaluate(shielded, env_id, seeds, args.episodes, seed=10_000,
                                      key=jax.random.PRNGKey(10_000))  # fmt: skip
                jax_seconds = time.time() - start
                records = export_run(ExportConfig(
                    args.policy, output=f"{work}/{mode}-{margin}", filter=args.barrier,
                    filter_mode=mode, filter_margin=margin))  # fmt: skip
                files = [load_policy(r["path"]) for r in records]

                def onnx_policy(observations, key, files=files):
                    return np.stack([p(o) for p, o in zip(files, observations, strict=True)])

                start = time.time()
                onnx_result = evaluate(onnx_policy, env_id, seeds, args.episodes, seed=10_000)
                onnx_seconds = time.time() - start
                row = {
                    "mode": mode,
                    "margin": margin,
                    "jax": _summary(jax_result),
                    "onnx": _summary(onnx_result),
                    "max_abs_diff": max(r["max_diff"] for r in records),
                    "same_returns": bool(
                        np.allclose(jax_result.returns, onnx_result.returns, atol=1e-3)
                    ),  # fmt: skip
                    "jax_eval_seconds": round(jax_seconds, 1),
                    "onnx_eval_seconds": round(onnx_seconds, 1),
                    "bytes": records[0]["bytes"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = {
        "command": "python benchmarks/export_filter.py "
        + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        ),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "date": time.strftime("%Y-%m-%d"),
        "seeds": list(context.seeds),
        "episodes_per_seed": args.episodes,
        "env_id": env_id,
        "rows": rows,
    }
    pathlib.Path(args.output).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
