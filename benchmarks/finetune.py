"""Offline-to-online fine-tuning table: offline score -> score after N online steps.

For every dataset it trains the offline starting points once (IQL, Cal-QL and
BC runs, ``--offline-steps`` updates, all seeds under vmap), then fine-tunes
each method for ``--online-steps`` environment steps per seed:

- ``iql``: IQL fine-tuning from the IQL run (offline data in the buffer);
- ``calql``: Cal-QL from the Cal-QL run (50/50 batches);
- ``rlpd``: RLPD from scratch with the data in every batch (50/50);
- ``resfit``: ResFiT's residual on the frozen BC run (50/50, UTD 4).

With ``--sim ENV`` (e.g. ``Hopper-v5@gravity=2``) it runs the H2O comparison
instead: H2O (real data + the simulator), SAC on the simulator alone, and the
offline IQL run (real data only); all are evaluated in the real task.

Every cell is a resumable run directory under ``--output``; finished cells are
skipped, so an interrupted benchmark continues where it stopped. The table
(``table.md``) and the raw summaries (``results.json``) are written at the end.

A cell too slow for one process can be split by seeds across processes (one
core each): ``--seeds 0 1`` in one and ``--seeds 2`` in the other write their
own cells (``...-seeds-0-1``, ``...-seeds-2``, with their own offline starts)
and ``results-seeds-*.json``; ``--combine`` then joins the parts' per-seed
numbers into one row per dataset and method. Split seeds are independent runs
of the same seeds, not bit-identical to running them together (the exploration
noise generator is seeded by the whole seed list).

    python benchmarks/finetune.py --combine OUT/results-seeds-0-1.json \
        OUT/results-seeds-2.json --output OUT

    python benchmarks/finetune.py --datasets suite:hopper-medium \\
        --methods iql calql rlpd resfit --seeds 0 1 2 \\
        --offline-steps 10000 --online-steps 20000 --output benchmarks/results/finetune-hopper
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from offrl.algos import bc, calql, iql
from offrl.data.normalization import REWARD_SCALINGS
from offrl.finetune import FinetuneConfig, finetune
from offrl.run import checkpoint
from offrl.run.train import TrainConfig, train

DEFAULT_SEEDS = [0, 1, 2]

STARTS = {
    "iql": ("iql", iql.Config()),
    "calql": ("calql", calql.Config()),
    "resfit": ("bc", bc.Config()),
}


def _done(run_dir: pathlib.Path) -> dict | None:
    path = run_dir / "summary.json"
    if path.exists():
        summary = json.loads(path.read_text())
        if not summary.get("interrupted"):
            return summary
    return None


def _resume(run_dir: pathlib.Path) -> bool:
    """Whether the cell continues from a checkpoint.

    A cell stopped before its first checkpoint holds only a config and the step-0
    evaluation; nothing there can be resumed, so it is moved aside (never deleted)
    and the cell starts over.
    """
    has_checkpoint = checkpoint.latest(run_dir / "checkpoints") is not None
    if (run_dir / "config.json").exists() and has_checkpoint:
        return True
    if run_dir.exists() and any(run_dir.iterdir()):
        n = 1
        while (aside := run_dir.with_name(f"{run_dir.name}.unresumable-{n}")).exists():
            n += 1
        run_dir.rename(aside)
        print(f"{run_dir} had no checkpoint to resume; moved it to {aside}", file=sys.stderr)
    return False


def offline_run(name: str, dataset: str, args, output: pathlib.Path) -> pathlib.Path:
    from offrl.bench import algorithm_settings

    algorithm, config = STARTS[name]
    config = algorithm_settings(algorithm, config, args.settings)[0]
    run_dir = output / f"offline-{algorithm}-{dataset.removeprefix('suite:')}{_suffix(args)}"
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
                checkpoint_every=min(5000, args.offline_steps),
                reward_scaling=args.reward_scaling,
                progress=False,
            ),
            resume=_resume(run_dir),
        )
    return run_dir


def _suffix(args) -> str:
    """Run-directory suffix for a non-default reward scaling or a part of the seeds, so
    each can sit beside the default cell."""
    suffix = "" if args.reward_scaling == "auto" else f"-rs-{args.reward_scaling}"
    return suffix + _seeds_suffix(args)


def _seeds_suffix(args) -> str:
    seeds = list(args.seeds)
    return "" if seeds == DEFAULT_SEEDS else "-seeds-" + "-".join(map(str, seeds))


def _tag(args) -> str:
    """The table's note on a non-default reward scaling."""
    return "" if args.reward_scaling == "auto" else f" (rewards: {args.reward_scaling})"


def online(name, run_dir, config, args, **kwargs) -> dict:
    summary = _done(run_dir)
    if summary is None:
        summary = finetune(name, run_dir, config, resume=_resume(run_dir), **kwargs)
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--methods", nargs="+", default=["iql", "calql", "rlpd", "resfit"])
    parser.add_argument("--seeds", nargs="+", type=int, default=DEFAULT_SEEDS)
    parser.add_argument("--offline-steps", type=int, default=10_000)
    parser.add_argument("--online-steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--utd", type=int, default=None, help="default: each method's own")
    parser.add_argument("--sim", default=None, help="H2O comparison: the simulator's env id")
    parser.add_argument(
        "--reward-scaling",
        default="auto",
        choices=["auto", *REWARD_SCALINGS],
        help="reward scaling of the offline starts and of the methods that start from "
        "scratch (fine-tuning keeps its start's); default: each algorithm's own, per task",
    )
    parser.add_argument(
        "--combine",
        nargs="+",
        default=None,
        metavar="RESULTS",
        help="join the results.json of runs split by seeds into one table; trains nothing",
    )
    parser.add_argument(
        "--settings",
        nargs="*",
        default=[],
        help="FIELD=VALUE set in the offline starts' configs that have FIELD (as offrl bench "
        "--settings), e.g. hidden_dims=64,64; fine-tuning keeps its start's networks",
    )
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    output = pathlib.Path(args.output)
    if args.combine:
        rows = combine([json.loads(pathlib.Path(p).read_text()) for p in args.combine])
        output.mkdir(parents=True, exist_ok=True)
        (output / "results.json").write_text(json.dumps(rows, indent=1))
        table = render(rows, args)
        (output / "table.md").write_text(table)
        print(table)
        return
    if not args.datasets:
        parser.error("--datasets is required (unless --combine joins finished results)")
    output.mkdir(parents=True, exist_ok=True)
    base = dict(
        online_steps=args.online_steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        checkpoint_every=args.eval_every,
        seeds=tuple(args.seeds),
        utd=args.utd,
        reward_scaling=args.reward_scaling,  # methods from scratch; the others keep the start's
        progress=True,
    )
    rows = []
    for dataset in args.datasets:
        label = dataset.removeprefix("suite:")
        if args.sim:
            start = offline_run("iql", dataset, args, output)
            offline = json.loads((start / "summary.json").read_text())
            rows.append(
                {
                    "dataset": label,
                    "method": "iql (offline, real data only)",
                    **{
                        "offline_per_seed": offline["final_per_seed"],
                        "final_per_seed": offline["final_per_seed"],
                        "wall_seconds": offline["wall_seconds"],
                        "wall_seconds_this_process": offline.get("wall_seconds_this_process"),
                    },
                }
            )
            for method in ("h2o", "sac"):
                cell = output / f"{method}-{label}-sim{_suffix(args)}"
                summary = online(
                    method, cell, FinetuneConfig(**base, env=args.sim), args, dataset=dataset
                )
                rows.append({**summary, "dataset": label, "method": f"{method} ({args.sim})"})
            continue
        for method in args.methods:
            cell = output / f"{method}-{label}{_suffix(args)}"
            if method in STARTS:
                start = offline_run(method, dataset, args, output)
                summary = online(method, cell, FinetuneConfig(**base), args, from_run=start)
            else:
                summary = online(method, cell, FinetuneConfig(**base), args, dataset=dataset)
            rows.append({**summary, "dataset": label, "method": method + _tag(args)})
    (output / f"results{_seeds_suffix(args)}.json").write_text(json.dumps(rows, indent=1))
    table = render(rows, args)
    (output / f"table{_seeds_suffix(args)}.md").write_text(table)
    print(table)


def combine(parts: list[list[dict]]) -> list[dict]:
    """One row per (dataset, method) from runs split by seeds: per-seed lists are
    concatenated in seed order and wall times summed (core-seconds when the parts ran
    side by side). A seed in two parts is an error, not an average."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for rows in parts:
        for row in rows:
            method = row["method"]
            groups.setdefault((row["dataset"], method), []).append(row)
    merged = []
    for (dataset, method), rows in groups.items():
        seeds = [s for row in rows for s in row.get("seeds", [])]
        if len(set(seeds)) != len(seeds):
            raise SystemExit(
                f"--combine: {dataset} / {method}: seed(s) "
                f"{sorted({s for s in seeds if seeds.count(s) > 1})} appear in more than one "
                "part; pass each seed's results once"
            )
        order = sorted(range(len(rows)), key=lambda i: min(rows[i].get("seeds") or [0]))
        rows = [rows[i] for i in order]
        row = dict(rows[0])
        for key in rows[0]:
            if key.endswith("_per_seed") and all(r.get(key) is not None for r in rows):
                row[key] = [v for r in rows for v in r[key]]
            elif key.endswith("_per_seed"):
                row[key] = None
        for key in [k for k in row if k.endswith("_per_seed")]:
            name, values = key.removesuffix("_per_seed"), row[key]
            for stat, fn in (("mean", np.mean), ("std", _sample_std)):
                if f"{name}_{stat}" in row:  # the parts' own statistics would mislead
                    row[f"{name}_{stat}"] = None if values is None else float(fn(values))
        row["seeds"] = [s for r in rows for s in r.get("seeds", [])]
        for key in ("wall_seconds", "wall_seconds_this_process"):
            values = [r.get(key) for r in rows]
            row[key] = None if None in values else float(sum(values))
        row["parts"] = len(rows)
        merged.append(row)
    return merged


def _sample_std(values) -> float:
    """The sample standard deviation (ddof 1; 0 for one value). Tables rendered before
    2026-12-06 printed the population one (ddof 0), smaller by sqrt(2/3) at 3 seeds."""
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def _cell(values, digits: int = 1) -> str:
    if values is None:
        return "-"
    values = np.asarray(values, np.float64)
    return f"{values.mean():.{digits}f} ± {_sample_std(values):.{digits}f}"


def _wall(row) -> str:
    """Wall seconds across resumes; a cell resumed from a checkpoint that predates that
    record shows the resumed process's time only, marked as a lower bound."""
    parts = f" (sum of {row['parts']} parts)" if row.get("parts", 1) > 1 else ""
    if row.get("wall_seconds") is not None:
        return f"{row['wall_seconds']:.0f}{parts}"
    this_process = row.get("wall_seconds_this_process")
    return "-" if this_process is None else f"> {this_process:.0f}"


def render(rows, args) -> str:
    seeds = sorted({s for row in rows for s in row.get("seeds", [])}) or args.seeds
    steps = {row["online_steps"] for row in rows if "online_steps" in row}
    online_steps = steps.pop() if len(steps) == 1 else args.online_steps
    starts = {row["from_step"] for row in rows if row.get("from_step") is not None}
    offline_steps = starts.pop() if len(starts) == 1 else args.offline_steps
    lines = [
        f"Online steps per seed: {online_steps}; offline updates before: "
        f"{offline_steps}; seeds: {', '.join(map(str, seeds))}; "
        f"{args.eval_episodes} evaluation episodes per seed and evaluation.",
        "",
        "| dataset | method | offline | after online | best | initial drop | regret "
        "| return regret | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        regret = row.get("regret_per_seed")
        kind = {"success": " (success)", "normalized_return": ""}.get(row.get("regret_kind"), "")
        return_regret = row.get("return_regret_per_seed")
        if return_regret is None and row.get("regret_kind") == "normalized_return":
            return_regret = regret  # summaries written before return_regret existed
        lines.append(
            f"| {row['dataset']} | {row['method']} | {_cell(row.get('offline_per_seed'))} | "
            f"{_cell(row.get('final_per_seed'))} | {_cell(row.get('best_per_seed'))} | "
            f"{_cell(row.get('initial_drop_per_seed'))} | "
            f"{_cell(regret, 2) if regret else '-'}{kind} | "
            f"{_cell(return_regret, 2) if return_regret else '-'} | "
            f"{_wall(row)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
