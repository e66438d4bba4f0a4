"""Learning online with offline data (issue 26): each method against the baselines its
paper compares with, at the same number of environment steps, through ``offrl finetune``.

Tables (``--table``):

- ``moorl``: MOORL against RLPD and SAC with the offline data in its replay
  (``--mixing union``) and plain online SAC, all from scratch beside
  ``--dataset`` (default ``suite:pendulum-mixed``).
- ``demos``: the demonstration methods on a sparse-reward task: SAC from
  scratch, SAC from a BC run on the demonstrations (pre-training alone),
  concurrent BC (pre-training plus the BC loss online) and G-PAYN (pre-training
  plus the demonstrations in the replay).
- ``rmrl``: RM-RL (the maze planner labels every visited state) against SAC on
  the rewards and BC on the two demonstrations alone, PointMaze UMaze.
- ``arsq``: ARSQ against the same network with independent dimensions (CQN's
  baseline), from scratch with the noisy planner's PointMaze data (non-expert
  demonstrations) in half of every batch.
- ``safety``: on the point robot, SAC exploring freely against SAC gated by a
  V-OCBF safe set fit on ``suite:pointrobot-mixed`` (fixed, and with optimistic
  forgetting); violations while learning (the summed cost of the training
  episodes and the share of them with any) beside the scores.

Every cell is a resumable run directory under ``--output`` (a finished cell is
skipped); ``results.json`` and ``table.md`` are written after every cell, so a
stopped benchmark keeps what it finished. Scores are the held-out evaluation of
the final policy (``final``) and of the best periodic one (``best``), normalized;
``start`` is the policy before the first online step. Spreads are sample
standard deviations across seeds.

    python benchmarks/hybrid.py --table moorl --online-steps 8000 \\
        --output benchmarks/results/hybrid-moorl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from finetune import _done, _resume  # noqa: E402

from offrl.bench import algorithm_settings  # noqa: E402
from offrl.core import registry  # noqa: E402
from offrl.finetune import FinetuneConfig, finetune  # noqa: E402
from offrl.run.train import TrainConfig, train  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Cell:
    """One row: ``algorithm`` through ``offrl finetune`` with these loop settings,
    from scratch beside the dataset or from the BC start (``from_bc``)."""

    label: str
    algorithm: str
    loop: dict
    from_bc: bool = False
    settings: tuple[str, ...] = ()
    """FIELD=VALUE settings of this cell (after the command line's)."""


TABLES = {
    "moorl": (
        "suite:pendulum-mixed",
        None,
        [
            Cell("MOORL", "moorl", {}),
            Cell("RLPD", "rlpd", {}),
            Cell("SAC + offline data in the replay", "sac", {"mixing": "union"}),
            Cell("SAC, online only", "sac", {}),
        ],
    ),
    "demos": (
        "suite:pointmaze-umaze-demos",
        "demos-2",
        [
            Cell("SAC, no demonstrations", "sac", {}),
            Cell("BC pre-training alone (then SAC)", "concurrent_bc", {"mixing": "online"}, True),
            Cell("concurrent BC (pre-training + BC loss)", "concurrent_bc", {}, True),
            Cell("G-PAYN (pre-training + demos in the replay)", "gpayn", {}, True),
        ],
    ),
    # The start here is a V-OCBF run (the safe set), not BC.
    "safety": (
        "suite:pointrobot-mixed",
        None,
        [
            Cell("SAC, unrestricted exploration", "sac", {}),
            Cell("gated exploration, fixed set", "safe_set", {}, True, ("forget_steps=0",)),
            # Forgetting over 10k updates: the table's runs are 12k steps.
            Cell(
                "gated exploration + optimistic forgetting",
                "safe_set",
                {},
                True,
                ("forget_steps=10000",),
            ),
        ],
    ),
}
TABLES["rmrl"] = (
    "suite:pointmaze-umaze-demos",
    "demos-2",
    [
        Cell("SAC, rewards only", "sac", {}),
        Cell(
            "RM-RL (role-model labels, demos in the buffer)",
            "rm_rl",
            {"labeler": "pointmaze-planner"},
        ),
    ],
)
TABLES["arsq"] = (
    "suite:pointmaze-umaze",
    None,
    [
        Cell("ARSQ (auto-regressive dimensions)", "arsq", {"mixing": "ratio"}),
        Cell("CQN-style independent dimensions", "arsq", {"mixing": "ratio"}, False,
             ("autoregressive=false",)),
    ],
)  # fmt: skip
#: The run each table's from-start cells begin from: (algorithm, its settings).
STARTS = {
    "demos": ("bc", ("policy=gaussian",)),
    "safety": ("vocbf", ("filter=qc",)),
    "rmrl": ("bc", ()),
}
#: Tables that report their offline start as a row of its own (no online steps).
START_ROWS = {"rmrl": "BC on the demonstrations (no online steps)"}


def _settings(algorithm: str, settings: list[str]):
    return algorithm_settings(algorithm, registry.get(algorithm).Config(), settings)[0]


def offline_start(table: str, dataset: str, filter_key, args, output: pathlib.Path):
    """The offline run the table's from-start cells begin from, all seeds: BC
    pre-training (a tanh-Gaussian policy on the demonstrations) or the V-OCBF safe set."""
    algorithm, own = STARTS[table]
    config = _settings(algorithm, [*args.settings, *own])
    run_dir = output / f"{algorithm}-{filter_key or 'all'}"
    if _done(run_dir) is None:
        train(
            algorithm,
            dataset,
            run_dir,
            config,
            TrainConfig(
                seeds=tuple(args.seeds),
                steps=args.offline_steps,
                eval_every=args.offline_steps,
                eval_episodes=args.eval_episodes,
                checkpoint_every=args.offline_steps,
                filter_key=filter_key,
                normalize_observations=not args.raw_observations,
                progress=False,
            ),
            resume=_resume(run_dir),
        )
    return run_dir


def run_cell(cell: Cell, dataset: str, start, args, output: pathlib.Path) -> dict:
    run_dir = output / cell.label.split(" (")[0].replace(" ", "-").replace(",", "").lower()
    summary = _done(run_dir)
    if summary is not None:
        return summary
    loop = dict(
        online_steps=args.online_steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        checkpoint_every=args.eval_every,
        heldout_episodes=args.heldout_episodes,
        seeds=tuple(args.seeds),
        # A policy that starts from BC collects with itself from the first step.
        random_steps=0 if cell.from_bc else args.random_steps,
        learning_starts=args.learning_starts,
        normalize_observations=not args.raw_observations,
        progress=False,
    )
    loop.update(cell.loop)
    config = FinetuneConfig(**loop)
    algo_config = _settings(cell.algorithm, [*args.settings, *cell.settings])
    if cell.from_bc:
        # The actor's shape is the BC run's (config_for_base); the rest is this config.
        return finetune(
            cell.algorithm, run_dir, config, from_run=start, algo_config=algo_config,
            resume=_resume(run_dir),
        )  # fmt: skip
    return finetune(
        cell.algorithm, run_dir, config, dataset=dataset, algo_config=algo_config,
        resume=_resume(run_dir),
    )  # fmt: skip


def _stat(values, digits: int = 1) -> str:
    if values is None or not len(values):
        return "-"
    values = np.asarray(values, np.float64)
    spread = values.std(ddof=1) if values.size > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {spread:.{digits}f}"


def render(rows: list[dict], args) -> str:
    safety = any("training_cost_per_seed" in row for row in rows)
    lines = [
        f"Online steps per seed: {args.online_steps}; seeds: {', '.join(map(str, args.seeds))}; "
        f"settings: {' '.join(args.settings) or 'defaults'}; final and best scored on "
        f"{args.heldout_episodes} held-out episodes per seed; ± is the sample std across seeds.",
        "",
        "| method | start | final | best | initial drop | regret | return regret | wall (s) |"
        + (" training cost | episodes with a violation | final cost |" if safety else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if safety else ""),
    ]
    for row in rows:
        kind = " (success)" if row.get("regret_kind") == "success" else ""
        wall = row.get("wall_seconds")
        lines.append(
            f"| {row['method']} | {_stat(row.get('offline_per_seed'))} | "
            f"{_stat(row.get('final_per_seed'))} | {_stat(row.get('best_per_seed'))} | "
            f"{_stat(row.get('initial_drop_per_seed'))} | "
            f"{_stat(row.get('regret_per_seed'), 2)}{kind} | "
            f"{_stat(row.get('return_regret_per_seed'), 2)} | "
            f"{'-' if wall is None else f'{wall:.0f}'} |"
            + (
                f" {_stat(row.get('training_cost_per_seed'))} | "
                f"{_stat(row.get('training_violation_rate_per_seed'), 2)} | "
                f"{_stat(row.get('final_cost_per_seed'))} |"
                if safety
                else ""
            )
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=sorted(TABLES), required=True)
    parser.add_argument("--dataset", default=None, help="default: the table's")
    parser.add_argument("--filter-key", default=None, help="default: the table's")
    parser.add_argument("--methods", nargs="+", default=None, help="labels' first words")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--online-steps", type=int, default=10_000)
    parser.add_argument("--random-steps", type=int, default=1_000)
    parser.add_argument("--learning-starts", type=int, default=1_000)
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--heldout-episodes", type=int, default=50)
    parser.add_argument(
        "--offline-steps", type=int, default=5_000, help="updates of the BC or V-OCBF start"
    )
    parser.add_argument("--raw-observations", action="store_true")
    parser.add_argument("--settings", nargs="*", default=[], help="FIELD=VALUE for every method")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    dataset, filter_key, cells = TABLES[args.table]
    dataset = args.dataset or dataset
    filter_key = args.filter_key or filter_key
    if args.methods:
        cells = [c for c in cells if c.label.split(" ")[0].lower() in args.methods]
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    start = None
    if any(c.from_bc for c in cells) or args.table in START_ROWS:
        start = offline_start(args.table, dataset, filter_key, args, output)
    rows = []
    if args.table in START_ROWS:
        offline = json.loads((start / "summary.json").read_text())
        rows.append(
            {
                "method": START_ROWS[args.table],
                "offline_per_seed": offline["final_per_seed"],
                "final_per_seed": offline["final_per_seed"],
                "best_per_seed": offline.get("best_per_seed"),
                "wall_seconds": offline.get("wall_seconds"),
            }
        )
    for cell in cells:
        summary = run_cell(cell, dataset, start, args, output)
        rows.append({**summary, "method": cell.label, "dataset": dataset, "filter_key": filter_key})
        (output / "results.json").write_text(json.dumps(rows, indent=1))
        table = render(rows, args)
        (output / "table.md").write_text(table)
        print(table, flush=True)


if __name__ == "__main__":
    sys.exit(main())
