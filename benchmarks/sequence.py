"""Sequence and history policies, and chunked TD, against their memoryless and
one-step counterparts, on the fast tasks (issue 22's tables at a CPU budget).

    python benchmarks/sequence.py --only masked   # hidden velocities: BC vs BC-RNN,
                                                  #   IQL vs history IQL (bisim 0 / 0.5)
    python benchmarks/sequence.py --only delayed  # torques 3 steps late: IQL vs
                                                  #   chunked IQL h = 1 / 4
    python benchmarks/sequence.py --only dt       # BC, DT, MO-DT, Decision Mamba on
                                                  #   pendulum-mixed (target returns)
    python benchmarks/sequence.py --only speed    # updates/s of each new method

Every cell: 3 seeds trained together, held-out episodes (reset seeds 900000000..)
for the final policy and the best periodic one; scores are normalized (100 = the
scripted expert). Settings are CPU-sized and stated in each result file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

import numpy as np

from offrl.core import registry
from offrl.core.history import bind_policy
from offrl.core.trainer import build_policy
from offrl.envs.rollout import HELDOUT_SEED, evaluate
from offrl.run.rundir import load_run
from offrl.run.settings import TrainConfig
from offrl.run.train import train

RESULTS = pathlib.Path(__file__).parent / "results"
SEEDS = (0, 1, 2)


def cell(out: pathlib.Path, label: str, name: str, dataset: str, steps: int, batch: int,
         heldout: int = 20, **overrides) -> dict:  # fmt: skip
    algo = registry.get(name)
    config = TrainConfig(
        steps=steps, steps_per_call=min(steps, 1000), eval_every=max(steps // 4, 1),
        checkpoint_every=steps, eval_episodes=5, heldout_episodes=heldout, seeds=SEEDS,
        progress=False, batch_size=batch,
    )  # fmt: skip
    started = time.perf_counter()
    summary = train(name, dataset, out / label, algo.Config(**overrides), config)
    row = {
        "label": label,
        "algorithm": name,
        "dataset": dataset,
        "steps": steps,
        "batch_size": batch,
        "settings": overrides,
        "final_per_seed": summary["final_per_seed"],
        "best_per_seed": summary["best_per_seed"],
        "final": f"{np.mean(summary['final_per_seed']):.1f} ± {np.std(summary['final_per_seed'], ddof=1):.1f}",  # noqa: E501
        "best": f"{np.mean(summary['best_per_seed']):.1f} ± {np.std(summary['best_per_seed'], ddof=1):.1f}",  # noqa: E501
        "wall_seconds": time.perf_counter() - started,
        "updates_per_second_per_seed": summary["updates_per_second_per_seed"],
    }
    print(
        json.dumps({k: row[k] for k in ("label", "dataset", "final", "best", "wall_seconds")}),
        flush=True,
    )  # noqa: E501
    return row


def masked(out):
    rows = []
    for dataset in ("suite:pendulum-expert", "suite:pendulum-expert@novel"):
        rows.append(cell(out, f"bc {dataset}", "bc", dataset, 3000, 64,
                         hidden_dims=(64, 64), learning_rate=1e-3))  # fmt: skip
        rows.append(cell(out, f"bc_rnn {dataset}", "bc_rnn", dataset, 3000, 64, hidden_dim=64,
                         num_layers=1, context_length=5, learning_rate=1e-3))  # fmt: skip
    for dataset in ("suite:pendulum-mixed", "suite:pendulum-mixed@novel"):
        rows.append(cell(out, f"iql {dataset}", "iql", dataset, 4000, 256,
                         hidden_dims=(64, 64)))  # fmt: skip
        for weight in (0.0, 0.5):
            rows.append(cell(out, f"iql_history bisim={weight} {dataset}", "iql_history",
                             dataset, 4000, 64, encoder_dim=32, hidden_dims=(64, 64),
                             context_length=4, bisim_weight=weight))  # fmt: skip
    return rows


def delayed(out):
    rows = []
    dataset = "suite:pendulum-delayed-mixed"
    rows.append(cell(out, "iql", "iql", dataset, 4000, 256, hidden_dims=(128, 128)))
    for h in (1, 4):
        rows.append(cell(out, f"chunked_iql h={h}", "chunked_iql", dataset, 4000, 256,
                         hidden_dims=(128, 128), chunk_length=h, bc_steps=500))  # fmt: skip
    return rows


def target_scores(run_dir: pathlib.Path, targets, episodes: int = 20) -> dict:
    """The final policy of every seed conditioned on each target return (held-out resets)."""
    context = load_run(run_dir)
    out = {}
    for target in targets:
        config = dataclasses.replace(context.algo_config, target_return=float(target))
        policy = bind_policy(build_policy(context.algo, config), context.states,
                             context.preprocessor)  # fmt: skip
        result = evaluate(policy, context.env_id, len(context.seeds), episodes, HELDOUT_SEED)
        out[str(target)] = result.normalized.mean(axis=1).tolist()
    return out


def sequence_models(out):
    rows = []
    dataset = "suite:pendulum-mixed"
    rows.append(cell(out, "bc", "bc", dataset, 3000, 64, hidden_dims=(64, 64),
                     learning_rate=1e-3))  # fmt: skip
    small = dict(embedding_dim=32, num_layers=1, context_length=5, warmup_steps=100,
                 learning_rate=1e-3, dropout=0.0)  # fmt: skip
    for name, extra in (("dt", {}), ("mo_dt", {}), ("dmamba", {"ssm_state_dim": 4})):
        row = cell(out, name, name, dataset, 3000, 64, **small, **extra)
        # Returns in pendulum-mixed: about -1,400 (random) to 0; the default target is
        # the best episode's.
        row["final_by_target"] = target_scores(out / name, (-150.0, -300.0, 0.0))
        rows.append(row)
    return rows


def speed(out):
    """Updates per second per seed of each new method at its default size (batch 256;
    DT's CORL default batch is 64 at lr 1e-4, its configs 4096), on pendulum-mixed."""
    rows = []
    for name in ("rebrac", "awac", "edac", "sac_n", "dt", "mo_dt", "dmamba", "bc_rnn",
                 "iql_history", "chunked_iql"):  # fmt: skip
        algo = registry.get(name)
        batch = 64 if name in ("dt", "mo_dt", "dmamba", "bc_rnn", "iql_history") else 256
        config = TrainConfig(steps=400, steps_per_call=200, eval_every=0, checkpoint_every=400,
                             heldout_episodes=0, seeds=(0,), progress=False, batch_size=batch,
                             env_id=None)  # fmt: skip
        summary = train(name, "suite:pendulum-mixed", out / f"speed-{name}", algo.Config(), config)
        rows.append({"algorithm": name, "batch_size": batch,
                     "updates_per_second": 200 / max(summary["wall_seconds"] - summary["compile_seconds"], 1e-9)})  # fmt: skip  # noqa: E501
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("masked", "delayed", "dt", "speed"), required=True)
    parser.add_argument("--output", default="runs/sequence")
    args = parser.parse_args()
    out = pathlib.Path(args.output) / args.only
    started = time.perf_counter()
    rows = {"masked": masked, "delayed": delayed, "dt": sequence_models, "speed": speed}[args.only](
        out
    )  # noqa: E501
    result = {
        "command": f"python benchmarks/sequence.py --only {args.only}",
        "date": time.strftime("%Y-%m-%d"),
        "machine": "2-core CPU (no GPU)",
        "seeds": list(SEEDS),
        "scores": "normalized; final = last policy, best = best periodic evaluation, both on "
        "held-out episodes (reset seeds 900000000..); ± = sample std over seeds",
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"sequence-{args.only}.json"
    path.write_text(json.dumps(result, indent=2))
    print(path)


if __name__ == "__main__":
    main()
