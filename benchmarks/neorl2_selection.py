"""Choosing the checkpoint with the validation data, on the NeoRL-2-style tables.

For every finished ``offrl bench`` cell under ``--runs`` (trained with
``--validation-key validation``), :func:`offrl.evaluate.selection.analyze_run`
computes each checkpoint's offline signals; per seed, each selector picks a
checkpoint and the table reports that checkpoint's periodic evaluation score (10
episodes, reset seeds 10000..; no selector saw them), beside the last checkpoint's
and the oracle's (the best periodic score, chosen on those same episodes).

- ``validation``: the lowest action error on the dataset's ``validation`` subset
  (the fourth controller's episodes, never trained on);
- ``fqe``: the highest FQE estimate of the policy's value (fit on the dataset);
- ``last``: the final checkpoint.

    python benchmarks/neorl2_selection.py --runs OUT --algorithms bc td3_bc iql \\
        --datasets dmsd-pid pipeline-pi --output benchmarks/results/neorl2-selection.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import time

import numpy as np

from offrl.evaluate.selection import analyze_run, choose, true_table

SELECTORS = ("last", "validation", "fqe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True)
    parser.add_argument("--algorithms", nargs="+", required=True)
    parser.add_argument("--datasets", nargs="+", default=["dmsd-pid", "pipeline-pi"])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    path = pathlib.Path(args.output)
    out = json.loads(path.read_text()) if path.exists() else {"rows": []}
    done = {(r["algorithm"], r["dataset"]) for r in out["rows"]}
    for dataset in args.datasets:
        for algorithm in args.algorithms:
            run_dir = pathlib.Path(args.runs) / algorithm / dataset
            if (algorithm, dataset) in done or not (run_dir / "summary.json").exists():
                continue
            started = time.perf_counter()
            analysis = analyze_run(run_dir)
            truth, label = true_table(analysis)
            row = {"algorithm": algorithm, "dataset": dataset, "score": label,
                   "steps": analysis["steps"]}  # fmt: skip
            for selector in SELECTORS:
                picked = [truth[choose(analysis, selector, s)[0], s] for s in range(truth.shape[1])]
                row[selector] = {
                    "mean": float(np.mean(picked)),
                    "std": float(np.std(picked, ddof=1)),
                    "per_seed": [float(v) for v in picked],
                }
            oracle = np.nanmax(truth, axis=0)
            row["oracle"] = {"mean": float(oracle.mean()), "std": float(oracle.std(ddof=1))}
            row["seconds"] = round(time.perf_counter() - started, 1)
            out["rows"].append(row)
            out.update(
                command="python benchmarks/neorl2_selection.py " + " ".join(
                    f"--{k} " + (" ".join(v) if isinstance(v, list) else v)
                    for k, v in vars(args).items()),
                machine=f"{platform.machine()}, 2 CPU cores, python {platform.python_version()}",
                date=datetime.date.today().isoformat(),
            )  # fmt: skip
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=1) + "\n")
            print(dataset, algorithm, {k: round(row[k]["mean"], 1) for k in (*SELECTORS, "oracle")},
                  f"{row['seconds']} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
