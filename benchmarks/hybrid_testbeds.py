"""The theory test beds of issue 26 (``offrl.hybrid_testbeds``): samples to an
epsilon-optimal policy with and without offline data.

- Linear bandit (FTPedel's setting, the coverage-aware bonus): ``d = 8`` (plus
  200 random arms and the 8 axes), offline pulls only along the first 4
  directions, 1,000 online rounds; ``coverage`` (offline + online Gram matrix in
  the bonus and the estimate) against ``optimism`` (LinUCB, online only) and
  ``offline`` (the offline estimate's greedy arm, no learning).
- Combination lock (HNPG's): ``H`` levels of 10 actions, offline data from the
  optimal policy with epsilon ``1/H``; ``npg`` (on-policy), ``hnpg`` (critic on
  on-policy returns and offline FQE targets) and ``hyq`` (fitted Q iteration on
  both, epsilon-greedy collection); 20 online episodes per iteration.

    python benchmarks/hybrid_testbeds.py --seeds 10 --output benchmarks/results/hybrid-testbeds
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from offrl import hybrid_testbeds as hb


def bandit_table(seeds: int, rounds: int, offline_pulls: int, epsilon: float) -> list[dict]:
    rows = []
    for method in ("coverage", "optimism", "offline"):
        samples, regret, final_gap = [], [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            bandit = hb.LinearBandit.make(8, 200, rng)
            offline = hb.offline_pulls(bandit, 4, offline_pulls, rng)
            run = hb.run_bandit(
                bandit, method, offline, rounds, np.random.default_rng(1000 + seed),
                epsilon=epsilon,
            )  # fmt: skip
            samples.append(run["samples"])
            regret.append(float(run["regret"][-1]))
            final_gap.append(float(run["gaps"][-1]))
        rows.append(
            {"method": method, "samples": samples, "regret": regret, "final_gap": final_gap}
        )
    return rows


def lock_table(seeds: int, horizon: int, offline_episodes: int, iterations: int) -> list[dict]:
    rows = []
    for method in ("npg", "hnpg", "hyq"):
        samples, final = [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            lock = hb.Lock.make(horizon, 10, rng)
            offline = hb.epsilon_greedy_data(lock, offline_episodes, rng)
            run = hb.run_lock(
                lock, method, offline, iterations, 20, np.random.default_rng(seed + 7)
            )
            samples.append(run["samples"])
            final.append(float(run["values"][-1]))
        rows.append({"method": method, "samples": samples, "final_value": final})
    return rows


def _spread(values) -> str:
    values = np.asarray(values, np.float64)
    spread = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.2f} ± {spread:.2f}"


def _samples(values, budget: int) -> str:
    solved = [v for v in values if v is not None and v <= budget]
    # An unsolved run counts as infinitely many samples: a median above the budget is
    # written "> budget", never a number halfway to it.
    median = np.median([np.inf if v is None or v > budget else v for v in values])
    median_text = f"> {budget}" if not np.isfinite(median) else f"{median:.0f}"
    return f"{median_text} ({len(solved)}/{len(values)} solved)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--offline-pulls", type=int, default=2000)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--horizons", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--offline-episodes", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bandit = bandit_table(args.seeds, args.rounds, args.offline_pulls, args.epsilon)
    locks = {
        h: lock_table(args.seeds, h, args.offline_episodes, args.iterations) for h in args.horizons
    }
    lines = [
        f"Linear bandit, d = 8, {args.offline_pulls} offline pulls along 4 directions, "
        f"{args.rounds} online rounds, epsilon {args.epsilon}, {args.seeds} seeds "
        "(samples: the median over seeds, an unsolved seed counting as infinite; "
        "regret and gap: mean ± sample std):",
        "",
        "| method | samples to epsilon-optimal | cumulative regret | final gap |",
        "|---|---|---|---|",
    ]
    for row in bandit:
        lines.append(
            f"| {row['method']} | {_samples(row['samples'], args.rounds)} | "
            f"{_spread(row['regret'])} | {_spread(row['final_gap'])} |"
        )
    budget = args.iterations * 20
    for horizon, rows in locks.items():
        lines += [
            "",
            f"Combination lock, H = {horizon}, 10 actions, {args.offline_episodes} offline "
            f"episodes (epsilon 1/H), {args.iterations} iterations x 20 episodes, "
            f"{args.seeds} seeds (online episodes to a value within 0.1 of the optimum 1):",
            "",
            "| method | episodes to epsilon-optimal | final value |",
            "|---|---|---|",
        ]
        for row in rows:
            lines.append(
                f"| {row['method']} | {_samples(row['samples'], budget)} | "
                f"{_spread(row['final_value'])} |"
            )
    table = "\n".join(lines) + "\n"
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "bandit": bandit,
                "locks": {str(h): rows for h, rows in locks.items()},
                "wall_seconds": time.perf_counter() - started,
            },
            indent=1,
        )
    )
    (output / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
