"""Held-out contexts: BC against offline RL, diversity against size (row 27).

The protocol of "The Generalization Gap in Offline RL" (Mediratta et al., 2024) on
the DMSD (offrl.envs.industrial): a context is a level, everything a reset seed
draws (targets, masses, load); the ``dmsd-contexts-*`` datasets
(offrl.suites.industrial) hold the noisy expert on N training levels. Every cell is
an ``offrl bench`` cell (3 seeds in parallel); each run is scored on its training
levels (reset seeds 5000000.., min(N, 50) episodes per seed) and on unseen levels
(the run's own held-out episodes, resets 900000000..).

    python benchmarks/heldout_contexts.py --output benchmarks/results/heldout-contexts
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import time

import numpy as np

from offrl.bench import BenchConfig, behavior_score, cell_name, run_cell
from offrl.evaluate.policy import evaluate_run
from offrl.suites.industrial import CONTEXT_FIRST_LEVEL, RECIPES

DIVERSITY = [f"dmsd-contexts-{n}" for n in (1, 2, 4, 8, 16, 64, 200)]
SIZE = [f"dmsd-contexts-{n}{size}" for n in (4, 16) for size in ("-5k", "-80k")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=["bc", "td3_bc", "iql"])
    parser.add_argument("--datasets", nargs="+", default=DIVERSITY + SIZE)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="*", default=["hidden_dims=64,64"])
    parser.add_argument("--heldout-episodes", type=int, default=50)
    parser.add_argument("--output", default="benchmarks/results/heldout-contexts")
    args = parser.parse_args()
    output = pathlib.Path(args.output)
    config = BenchConfig(
        algorithms=tuple(args.algorithms),
        datasets=tuple(f"suite:{d}" for d in args.datasets),
        seeds=tuple(args.seeds),
        steps=args.steps,
        eval_every=args.steps // 5,
        eval_episodes=10,
        checkpoint_every=args.steps // 5,
        heldout_episodes=args.heldout_episodes,
        output=str(output / "runs"),
        settings=tuple(args.settings),
    )
    config.check()
    results_path = output / "results.json"
    rows = json.loads(results_path.read_text())["rows"] if results_path.exists() else []
    done = {(r["algorithm"], r["dataset"]) for r in rows}
    started = time.perf_counter()
    for dataset in config.datasets:
        name = dataset.removeprefix("suite:")
        contexts = RECIPES[name]["contexts"]
        behavior = behavior_score(dataset)
        for algorithm in config.algorithms:
            if (algorithm, name) in done:
                continue
            cell_started = time.perf_counter()
            summary = run_cell(config, algorithm, dataset)
            run_dir = pathlib.Path(config.output) / algorithm / cell_name(dataset)
            train = evaluate_run(run_dir, episodes=min(contexts, 50), seed=CONTEXT_FIRST_LEVEL)
            train_scores = train["normalized_per_seed"]
            unseen = summary["final_per_seed"]
            gap = np.asarray(train_scores) - np.asarray(unseen)
            rows.append({
                "dataset": name, "algorithm": algorithm, "contexts": contexts,
                "transitions": RECIPES[name]["episodes"] * 100,
                "behavior_mean": behavior["behavior_mean"],
                "train_per_seed": train_scores, "unseen_per_seed": unseen,
                "train_mean": float(np.mean(train_scores)),
                "train_std": float(np.std(train_scores, ddof=1)),
                "unseen_mean": float(np.mean(unseen)), "unseen_std": float(np.std(unseen, ddof=1)),
                "gap_mean": float(gap.mean()), "gap_std": float(gap.std(ddof=1)),
                "seconds": round(time.perf_counter() - cell_started, 1),
            })  # fmt: skip
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps({
                "command": "python benchmarks/heldout_contexts.py " + " ".join(
                    f"--{k.replace('_', '-')} " + (" ".join(map(str, v)) if isinstance(v, list)
                                                  else str(v))
                    for k, v in vars(args).items()),
                "machine": f"{platform.machine()}, 2 CPU cores, python {platform.python_version()}",
                "date": datetime.date.today().isoformat(),
                "scores": "normalized (offrl/DMSD-v0 references), final checkpoint; train = the "
                "dataset's own levels, unseen = held-out levels; std = sample std across seeds",
                "rows": rows,
            }, indent=1) + "\n")  # fmt: skip
            print(
                f"{name:22s} {algorithm:7s} train {np.mean(train_scores):6.1f} unseen "
                f"{np.mean(unseen):6.1f} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
