"""Meta-DT on unseen tasks: DT, DT with the context, and Meta-DT, zero- and few-shot.

Meta-DT's protocol (row 8 of CAPABILITIES.md) on the hidden-goal point robot
(offrl.envs.goals): trained on ``suite:hidden-goal`` (15 goals, 60 episodes each,
the goal never observed), evaluated on the 5 held-out goals of
``offrl/HiddenGoalTest-v0``. Each variant trains 3 seeds in parallel; then, per
seed and test goal, episode 1 is zero-shot and episode 2 carries the prompt cut
from episode 1 (the segment with the largest world-model error,
offrl.evaluate.meta.few_shot). The rows (final checkpoint):

- ``dt``: the Decision Transformer (it can infer the goal only from the
  returns-to-go it is fed);
- ``dt+context``: Meta-DT with ``prompt_length = 0``: the world model's task
  embedding, no prompt (Meta-DT's zero-shot variant);
- ``meta-dt``: the embedding and the prompt (zero-shot = episode 1 without one,
  few-shot = episode 2 with one).

Small networks fit the machine (embedding 64, 2 layers, K = 10, batch 64, lr 1e-3
with a 200-update warm-up, 6000 updates):

    python benchmarks/meta_dt.py --output benchmarks/results/meta-dt
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import time

import numpy as np

from offrl.bench import algorithm_settings, behavior_score
from offrl.core import registry
from offrl.envs.goals import TEST_GOALS
from offrl.evaluate.meta import few_shot
from offrl.run.train import TrainConfig, train_or_reuse

VARIANTS = {
    "dt": ("dt", ()),
    "dt+context": ("meta_dt", ("prompt_length=0",)),
    "meta-dt": ("meta_dt", ()),
}
COMMON = ("embedding_dim=64", "num_layers=2", "context_length=10", "return_scale=0.1",
          "learning_rate=1e-3", "warmup_steps=200")  # fmt: skip


def _stats(values) -> dict:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)),
            "per_seed": values.tolist()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default="benchmarks/results/meta-dt")
    args = parser.parse_args()
    output = pathlib.Path(args.output)
    results_path = output / "results.json"
    rows = json.loads(results_path.read_text())["rows"] if results_path.exists() else []
    done = {r["variant"] for r in rows}
    train = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, eval_every=args.steps // 3,
        eval_episodes=15, checkpoint_every=args.steps // 3, heldout_episodes=15,
        seeds=tuple(args.seeds), progress=False,
    )  # fmt: skip
    for variant in args.variants:
        if variant in done:
            continue
        algorithm, extra = VARIANTS[variant]
        base = registry.get(algorithm).Config()
        algo_config = algorithm_settings(algorithm, base, COMMON + extra)[0]
        started = time.perf_counter()
        run_dir = output / "runs" / variant
        summary = train_or_reuse(algorithm, "suite:hidden-goal", run_dir, algo_config, train)
        trained = time.perf_counter() - started
        # per seed: the mean over the 5 test goals of each episode's normalized score
        shots = few_shot(run_dir, "offrl/HiddenGoalTest-v0", len(TEST_GOALS), episodes=2)
        zero = np.mean(shots["normalized"][0], axis=1)
        few = np.mean(shots["normalized"][1], axis=1)
        rows.append({
            "variant": variant, "algorithm": algorithm, "settings": list(COMMON + extra),
            "train_goals_final": _stats(summary["final_per_seed"]),
            "test_zero_shot": _stats(zero), "test_few_shot": _stats(few),
            "prompt_starts": shots["prompt_starts"],
            "train_seconds": round(trained, 1),
            "seconds": round(time.perf_counter() - started, 1),
        })  # fmt: skip
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps({
            "command": f"python benchmarks/meta_dt.py --steps {args.steps} --batch-size "
            f"{args.batch_size} --seeds {' '.join(map(str, args.seeds))} --output {args.output}",
            "machine": f"{platform.machine()}, 2 CPU cores, python {platform.python_version()}",
            "date": datetime.date.today().isoformat(),
            "scores": "normalized (offrl/HiddenGoal references), final checkpoint; "
            "train_goals_final = the run's held-out episodes on the 15 training goals; "
            "test = the 5 unseen goals, zero-shot = episode 1, few-shot = episode 2 "
            "(with the prompt from episode 1 where the variant has prompts); "
            "std = sample std across seeds",
            "behavior": behavior_score("suite:hidden-goal"),
            "rows": rows,
        }, indent=1) + "\n")  # fmt: skip
        print(f"{variant:11s} train {np.mean(summary['final_per_seed']):6.1f}  zero-shot "
              f"{zero.mean():6.1f} ± {zero.std(ddof=1):4.1f}  few-shot {few.mean():6.1f} ± "
              f"{few.std(ddof=1):4.1f}  ({time.perf_counter() - started:.0f} s)",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
