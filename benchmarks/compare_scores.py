"""Side-by-side table: offrl bench results and d3rlpy_scores.py results.

    python benchmarks/compare_scores.py BENCH/results.json benchmarks/results/d3rlpy-scores.json

For every (dataset, algorithm) both ran: final normalized score (mean ± std
over seeds, the same evaluation protocol) and training time per 10k updates
per seed. offrl trains its seeds together under vmap, so its time per seed is
the cell's wall time divided by the number of seeds; d3rlpy trains one seed per
process. offrl's time includes its periodic evaluations; d3rlpy's does not.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np


def main() -> None:
    offrl = json.loads(pathlib.Path(sys.argv[1]).read_text())
    d3rlpy = json.loads(pathlib.Path(sys.argv[2]).read_text())
    lines = [
        "| dataset | algorithm | updates | offrl final | d3rlpy final "
        "| offrl s / 10k updates / seed | d3rlpy s / 10k updates / seed | speed ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in offrl["rows"]:
        name = row["dataset"].removeprefix("suite:")
        cells = [
            c
            for c in d3rlpy
            if c["dataset"] == name
            and c["algorithm"] == row["algorithm"]
            and c["updates"] == row["steps"]
        ]
        if not cells:
            continue
        scores = np.asarray([c["score"] for c in cells])
        ours = 1e4 / row["updates_per_second_per_seed"] / row["seeds"]
        theirs = float(np.median([c["train_seconds"] for c in cells])) * 1e4 / row["steps"]
        lines.append(
            f"| {name} | {row['algorithm']} | {row['steps']} | "
            f"{row['final_mean']:.1f} ± {row['final_std']:.1f} ({row['seeds']} seeds) | "
            f"{scores.mean():.1f} ± {scores.std():.1f} ({len(scores)} seeds) | "
            f"{ours:.0f} | {theirs:.0f} | {theirs / ours:.1f}x |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
