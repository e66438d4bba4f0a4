"""How well offline selectors rank checkpoints, and how far FQE is from the truth.

For every run directory given (offline runs with several checkpoints), this
script

1. runs :func:`offrl.evaluate.selection.analyze_run` (FQE for every checkpoint
   and seed, the run's own dataset Q and TD error, the held-out action error);
2. rolls every checkpoint out in the environment (``--episodes`` per seed,
   deterministic actions, on the held-out reset block that training never
   evaluates on) and records the return, the normalized score and the
   discounted return -- the quantity FQE estimates;
3. writes, per run and pooled per dataset, each selector's Spearman rank
   correlation with the true normalized score and its regret (best true score
   minus the chosen checkpoint's), plus FQE's error against the true discounted
   value (absolute, relative, and in normalized points where the task has
   discounted references).

    python benchmarks/offline_selection.py RUN_DIR... --output results/selection.json
    python benchmarks/offline_selection.py RUN_DIR... --thorough --output results/thorough.json

``--model-ope`` adds the model-based selectors (Uni-O4's AM-Q and the model's
discounted value, :mod:`offrl.evaluate.model_ope`), with one dynamics ensemble and
behavior critic per dataset shared by its runs; ``--thorough`` uses
:meth:`FQEConfig.thorough` (the setting of earlier versions) instead of the
default; ``--fqe-updates`` and ``--bootstrap`` override either. Each run's entry
records the FQE settings, the updates the fits ran and the analysis time.

The environment is used only for the ground truth; every selector sees the
data alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import jax
import numpy as np

from offrl.envs.registry import normalized_value
from offrl.envs.rollout import HELDOUT_SEED, evaluate
from offrl.evaluate.fqe import FQEConfig
from offrl.evaluate.model_ope import ModelOPEConfig
from offrl.evaluate.policy import load_policy
from offrl.evaluate.selection import (
    COMPARABLE_ACROSS_RUNS,
    SELECTORS,
    analyze_run,
    pooled_ranking,
    rank_selectors,
)
from offrl.evaluate.statistics import spearman
from offrl.run import checkpoint


def true_values(run_dir: pathlib.Path, steps: list[int], episodes: int) -> dict:
    returns, normalized, discounted = [], [], []
    for step in steps:
        policy, context = load_policy(run_dir, step)
        result = evaluate(policy, context.env_id, len(context.seeds), episodes, seed=HELDOUT_SEED)
        returns.append(result.returns.mean(axis=1).tolist())
        normalized.append(
            None if result.normalized is None else result.normalized.mean(axis=1).tolist()
        )
        discounted.append(result.discounted.mean(axis=1).tolist())
    return {"return": returns, "normalized": normalized, "discounted": discounted}


def jsonable(config: FQEConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def fqe_error(analysis: dict, truth: dict) -> dict:
    estimate = np.asarray(analysis["signals"]["fqe"])
    actual = np.asarray(truth["discounted"])
    error = estimate - actual
    out = {
        "mean_abs_error": float(np.abs(error).mean()),
        "mean_error": float(error.mean()),
        "relative_error": float((np.abs(error) / np.maximum(np.abs(actual), 1e-8)).mean()),
        "interval_coverage": float(
            np.mean(
                (np.asarray(analysis["fqe_low"]) <= actual)
                & (actual <= np.asarray(analysis["fqe_high"]))
            )
        ),
    }
    # FQE's own target is the discounted value: how well it ranks *that* separates
    # estimation error from the gap between discounted and undiscounted returns.
    per_seed = [spearman(estimate[:, s], actual[:, s]) for s in range(actual.shape[1])]
    out["spearman_vs_discounted"] = float(np.nanmean(per_seed))
    out["spearman_vs_discounted_pooled"] = spearman(estimate.ravel(), actual.ravel())
    true_norm = truth["normalized"]
    if true_norm and true_norm[0] is not None:
        out["spearman_discounted_truth_vs_normalized_truth"] = spearman(
            actual.ravel(), np.asarray(true_norm).ravel()
        )
    est_n = normalized_value(estimate, analysis["env_id"], analysis["discount"])
    act_n = normalized_value(actual, analysis["env_id"], analysis["discount"])
    if est_n is not None:
        out["mean_abs_error_normalized"] = float(np.abs(est_n - act_n).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="*")
    parser.add_argument(
        "--aggregate", nargs="*", default=[], help="also read these earlier --output files"
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--thorough", action="store_true", help="FQEConfig.thorough()")
    parser.add_argument("--fqe-updates", type=int, default=None)
    parser.add_argument("--bootstrap", type=int, default=None)
    parser.add_argument("--discount", type=float, default=0.99)
    parser.add_argument(
        "--stride", type=int, default=1, help="analyze every n-th checkpoint (the last always)"
    )
    parser.add_argument("--model-ope", action="store_true", help="also AM-Q and the model value")
    parser.add_argument("--model-horizon", type=int, default=100)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    model_ope = (
        ModelOPEConfig(horizon=args.model_horizon, discount=args.discount)
        if args.model_ope
        else None
    )
    fitted_models: dict = {}
    overrides = {"discount": args.discount}
    if args.fqe_updates is not None:
        overrides["updates"] = args.fqe_updates
    if args.bootstrap is not None:
        overrides["bootstrap"] = args.bootstrap
    config = FQEConfig.thorough(**overrides) if args.thorough else FQEConfig(**overrides)
    output = pathlib.Path(args.output)
    previous = json.loads(output.read_text()) if output.is_file() else {"runs": {}}
    runs = previous["runs"]
    for extra in args.aggregate:
        runs.update(json.loads(pathlib.Path(extra).read_text())["runs"])
    for run_dir in map(pathlib.Path, args.run_dirs):
        done = runs.get(str(run_dir))
        if (
            done
            and done["fqe_config"] == jsonable(config)
            and (done.get("model_ope") is not None or model_ope is None)
        ):
            continue
        started = time.perf_counter()
        available = checkpoint.steps(run_dir / "checkpoints")
        steps = available[::-1][:: args.stride][::-1]
        analysis = analyze_run(
            run_dir,
            fqe_config=config,
            steps=steps,
            progress=print,
            model_ope=model_ope,
            fitted_models=fitted_models,
        )
        analysis_seconds = time.perf_counter() - started
        truth = true_values(run_dir, analysis["steps"], args.episodes)
        # Score the selectors against the fresh rollouts (same protocol as training's).
        analysis["true_return"] = truth["return"]
        analysis["true_normalized"] = truth["normalized"]
        runs[str(run_dir)] = {
            "algorithm": analysis["algorithm"],
            "dataset": analysis["dataset"],
            "steps": analysis["steps"],
            "seeds": analysis["seeds"],
            "fqe_config": jsonable(config),
            "fqe_updates_run": analysis["fqe_updates_run"],
            "model_ope": analysis.get("model_ope"),
            "analysis_seconds": analysis_seconds,
            "ranking": rank_selectors(analysis),
            "fqe_error": fqe_error(analysis, truth),
            "truth": truth,
            "analysis": analysis,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"runs": runs}, indent=1, default=float))
        print(run_dir, json.dumps(runs[str(run_dir)]["ranking"]), runs[str(run_dir)]["fqe_error"])
    by_dataset: dict[str, list] = {}
    for entry in runs.values():
        by_dataset.setdefault(entry["dataset"], []).append(entry["analysis"])
    pooled = {name: pooled_ranking(analyses) for name, analyses in by_dataset.items()}
    output.write_text(json.dumps({"runs": runs, "pooled": pooled}, indent=1, default=float))
    print(markdown(runs, pooled))


def markdown(runs: dict, pooled: dict) -> str:
    lines = [
        "| run | dataset | "
        + " | ".join(f"{s} ρ / regret" for s in SELECTORS)
        + " | FQE abs. error (norm.) | interval coverage |",
        "| --- | --- | " + " | ".join("---" for _ in SELECTORS) + " | --- | --- |",
    ]
    for entry in runs.values():
        cells = []
        for name in SELECTORS:
            row = entry["ranking"]["selectors"].get(name)
            cells.append("–" if row is None else f"{row['spearman']:.2f} / {row['regret']:.1f}")
        error = entry["fqe_error"]
        lines.append(
            f"| {entry['algorithm']} | {entry['dataset']} | "
            + " | ".join(cells)
            + f" | {error.get('mean_abs_error_normalized', float('nan')):.1f} | "
            f"{error['interval_coverage']:.2f} |"
        )
    lines += [
        "",
        "| dataset (all runs pooled) | "
        + " | ".join(f"{s} ρ / regret" for s in COMPARABLE_ACROSS_RUNS)
        + " | candidates |",
        "| --- | " + " | ".join("---" for _ in COMPARABLE_ACROSS_RUNS) + " | --- |",
    ]
    for dataset, rows in pooled.items():
        cells = [
            "–"
            if name not in rows
            else f"{rows[name]['spearman']:.2f} / {rows[name]['regret']:.1f}"
            for name in COMPARABLE_ACROSS_RUNS
        ]
        count = max((r["candidates"] for r in rows.values()), default=0)
        lines.append(f"| {dataset} | " + " | ".join(cells) + f" | {count} |")
    return "\n".join(lines)


if __name__ == "__main__":
    jax.config.update("jax_platform_name", "cpu")
    main()
