"""LCB's sub-optimality curves (Rashidinejad et al., 2021) on offrl's tabular test bed.

Contextual bandit (20 contexts, 10 actions, Bernoulli rewards) and tabular MDP
(20 states, 10 actions... see --mdp-*), data from the expert/mediocre-operator
mixture of :func:`offrl.tabular.mixture` at several expert shares, N from 100 to
100,000; every point is the mean and sample std over independent instances and
datasets. The slope of log(sub-optimality) against log(N) is the empirical rate
(the paper: about -1 for near-expert data, about -1/2 otherwise, for LCB).

    python benchmarks/lcb.py --output benchmarks/results/lcb.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import time

from offrl.tabular import suboptimality_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[100, 300, 1000, 3000, 10000, 30000, 100000])  # fmt: skip
    parser.add_argument("--shares", type=float, nargs="+", default=[0.2, 0.6, 0.9, 1.0])
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--mdp-states", type=int, default=10)
    parser.add_argument("--mdp-actions", type=int, default=4)
    parser.add_argument("--output", default="benchmarks/results/lcb.json")
    args = parser.parse_args()
    started = time.perf_counter()
    runs = {
        "bandit": suboptimality_curve("bandit", args.sizes, args.shares, args.repetitions),
    }
    for scale in (1.0, 0.3):
        runs[f"mdp_c{scale:g}"] = suboptimality_curve(
            "mdp", args.sizes, args.shares, args.repetitions,
            num_states=args.mdp_states, num_actions=args.mdp_actions, scale=scale,
        )  # fmt: skip
    out = {
        "command": "python benchmarks/lcb.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        ),
        "machine": f"{platform.machine()}, 2 CPU cores, python {platform.python_version()}",
        "date": datetime.date.today().isoformat(),
        "seconds": round(time.perf_counter() - started, 1),
        "bandit": {"contexts": 20, "actions": 10, "delta": 0.1, "scale": 1.0},
        "mdp": {
            "states": args.mdp_states,
            "actions": args.mdp_actions,
            "gamma": 0.9,
            "delta": 0.1,
            "scales": [1.0, 0.3],
        },  # fmt: skip
        "runs": runs,
    }
    path = pathlib.Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    for name, run in runs.items():
        for share, curve in run["curves"].items():
            cells = {
                k: " ".join(f"{r['mean']:.3f}" for r in v) for k, v in curve["policies"].items()
            }
            slopes = {k: round(v, 2) for k, v in curve["log_log_slope"].items()}
            print(name, share, cells, slopes)


if __name__ == "__main__":
    main()
