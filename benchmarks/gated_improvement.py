"""Uni-O4's gated improvement against the ungated one, and against no improvement.

Three runs of ``uni_o4`` on one dataset, all seeds under vmap, the same pre-fits
(V, Q, BC ensemble, dynamics model; same seeds so identical), differing only in what
happens to the PPO steps:

``bc``        learning rate 0: the BC ensemble's AM-Q-best policy, never improved;
``gated``     a PPO step is kept only when the policy's AM-Q beats its best (Uni-O4);
``ungated``   every PPO step is kept (multi-step BPPO with no OPE).

For each: the held-out score of the final policy (mean ± sample std over seeds), the
periodic evaluations (the curve, for the dips an ungated run can take), and for the
gated run how many gate decisions accepted and refused a step.

    python benchmarks/gated_improvement.py --dataset suite:pendulum-mixed --seeds 0 1 2 \\
      --steps 2000 --output benchmarks/results/gated-improvement-pendulum.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from offrl.algos import uni_o4
from offrl.run.rundir import load_run, sample_std
from offrl.run.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="suite:pendulum-mixed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--heldout-episodes", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=256, help="policy width (3 layers)")
    parser.add_argument("--critic-hidden", type=int, default=256, help="Q width (2 layers)")
    parser.add_argument("--value-hidden", type=int, default=256, help="V width (3 layers)")
    parser.add_argument("--fit-steps", type=int, default=10_000, help="V, Q and BC updates each")
    parser.add_argument("--model-max-epochs", type=int, default=30)
    parser.add_argument("--amq-horizon", type=int, default=100)
    parser.add_argument("--amq-starts", type=int, default=256)
    parser.add_argument("--gate-every", type=int, default=100)
    parser.add_argument("--variants", nargs="+", default=["bc", "gated", "ungated"])
    parser.add_argument("--runs-dir", default="runs/gated-improvement")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    base = uni_o4.Config(
        hidden_dims=(args.hidden,) * 3,
        critic_hidden_dims=(args.critic_hidden,) * 2,
        value_hidden_dims=(args.value_hidden,) * 3,
        bc_steps=args.fit_steps,
        value_steps=args.fit_steps,
        critic_steps=args.fit_steps,
        model_max_epochs=args.model_max_epochs,
        amq_horizon=args.amq_horizon,
        amq_starts=args.amq_starts,
        gate_every=args.gate_every,
    )
    variants = {
        "bc": {"learning_rate": 0.0},
        "gated": {},
        "ungated": {"gate": False},
    }
    train_config = TrainConfig(
        steps=args.steps,
        seeds=tuple(args.seeds),
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        checkpoint_every=args.steps,
        heldout_episodes=args.heldout_episodes,
        progress=False,
    )
    output = pathlib.Path(args.output)
    # Variants an earlier call measured (same output) are kept beside the new ones.
    earlier = json.loads(output.read_text())["variants"] if output.exists() else {}
    results = {"settings": vars(args), "variants": earlier}
    for name in args.variants:
        overrides = variants[name]
        run_dir = pathlib.Path(args.runs_dir) / name
        config = uni_o4.Config(**{**base.__dict__, **overrides})
        started = time.perf_counter()
        summary = (
            json.loads((run_dir / "summary.json").read_text())
            if (run_dir / "summary.json").exists()
            else train("uni_o4", args.dataset, run_dir, config, train_config)
        )
        states = load_run(run_dir).states
        curve = [
            (
                r["step"],
                float(np.mean(r.get("eval/normalized_per_seed", r["eval/return_per_seed"]))),
            )
            for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "eval/return_per_seed" in r
        ]
        final = summary["final_per_seed"]
        results["variants"][name] = {
            "final_per_seed": final,
            "final_mean": float(np.mean(final)),
            "final_std": sample_std(final),
            "curve": curve,
            "accepted": np.asarray(states.accepted).tolist(),
            "refused": np.asarray(states.refused).tolist(),
            "best_amq": np.asarray(states.best_amq).tolist(),
            "seconds": time.perf_counter() - started,
            "pretrain": json.loads((run_dir / "pretrain.json").read_text()),
        }
        print(name, final, "accepted", results["variants"][name]["accepted"],
              "refused", results["variants"][name]["refused"], flush=True)  # fmt: skip
        if output.exists():  # another process may have written its variants meanwhile
            for other, value in json.loads(output.read_text())["variants"].items():
                results["variants"].setdefault(other, value)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=1, default=float))
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = [
        "| variant | final (held-out) | periodic curve (mean over seeds) "
        "| gate accepted / refused |",
        "| --- | --- | --- | --- |",
    ]
    for name, v in results["variants"].items():
        curve = ", ".join(f"{s}: {x:.1f}" for s, x in v["curve"])
        std = "–" if v["final_std"] is None else f"{v['final_std']:.1f}"
        gate = f"{sum(v['accepted'])} / {sum(v['refused'])}"
        lines.append(f"| {name} | {v['final_mean']:.1f} ± {std} | {curve} | {gate} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
