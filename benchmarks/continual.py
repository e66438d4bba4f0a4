"""Continual offline RL on PointMaze goals: OER (MBES + dual BC) against experience
replay with a random buffer and against sequential fine-tuning.

Tasks: the suite's ``pointmaze-umaze`` data (its first ``--rows`` transitions), split by
where the goal lies: task A = goals in the top row's two left cells, B = the right
column, C = the bottom row's two left cells (rows whose goal is elsewhere are dropped;
contiguous rows of one task form its episodes). The tasks are learned in order A, B,
C with TD3+BC; after each task every task so far is scored on ``--episodes`` episodes
per seed whose goal cell is the task's (cycled over its cells), normalized with the
maze's reference returns.

    python benchmarks/continual.py --steps 5000 --seeds 0 1 2 \\
      --output benchmarks/results/continual-pointmaze.json

Variants (``--variants``): ``oer`` (replay mbes, dual BC), ``er`` (random buffer into
the learner), ``er_dbc`` (random buffer, dual BC), ``finetune`` (no buffer, no clone).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import numpy as np

from offrl.algos import td3_bc
from offrl.continual import ContinualConfig, run_sequence
from offrl.data.dataset import Dataset, DatasetInfo
from offrl.data.loading import load_dataset
from offrl.envs.registry import make_env, normalized_score
from offrl.evaluate.policy import load_policy
from offrl.model.ensemble import ModelSpec

ENV_ID = "PointMaze_UMaze-v3"
#: Goal cells (row, column) of each task in UMaze's 5x5 map.
TASK_CELLS = {"A": [(1, 1), (1, 2)], "B": [(1, 3), (2, 3), (3, 3)], "C": [(3, 1), (3, 2)]}
VARIANTS = {
    "oer": {"replay": "mbes", "dual_bc": True},
    "er": {"replay": "random", "dual_bc": False},
    "er_dbc": {"replay": "random", "dual_bc": True},
    "finetune": {"replay": "none", "dual_bc": False},
}


def cell_of(xy: np.ndarray) -> np.ndarray:
    """UMaze's (row, column) of positions (cell size 1, centred map of 5x5)."""
    column = np.floor(xy[:, 0] + 2.5).astype(int)
    row = np.floor(2.5 - xy[:, 1]).astype(int)
    return np.stack([row, column], axis=-1)


def task_datasets(rows: int) -> list[Dataset]:
    data = load_dataset("suite:pointmaze-umaze").to_numpy()
    rows = min(rows, data.size)
    goals = cell_of(np.asarray(data.observations[:rows, 4:6]))
    out = []
    for name, cells in TASK_CELLS.items():
        mine = np.zeros(rows, bool)
        for cell in cells:
            mine |= (goals[:, 0] == cell[0]) & (goals[:, 1] == cell[1])
        index = np.flatnonzero(mine)
        # Contiguous rows of the task are its episodes; each ends where the run of rows does.
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        starts_in_index = np.concatenate([[0], breaks])
        lengths = np.diff(np.concatenate([starts_in_index, [len(index)]]))
        fields = {k: np.asarray(v)[:rows][index] for k, v in data.step_fields().items()}
        ends = starts_in_index + lengths - 1
        truncations = np.zeros(len(index), bool)
        truncations[ends] = ~fields["terminations"][ends].astype(bool)
        fields["truncations"] = truncations
        info = DatasetInfo(
            name=f"pointmaze-umaze-goals-{name}",
            env_id=ENV_ID,
            action_low=data.info.action_low,
            action_high=data.info.action_high,
        )
        out.append(
            Dataset(
                **fields,
                episode_starts=np.cumsum(np.concatenate([[0], lengths[:-1]])).astype(np.int64),
                episode_lengths=lengths.astype(np.int64),
                info=info,
            )
        )
    return out


def goal_evaluator(episodes: int, horizon: int = 300):
    names = list(TASK_CELLS)

    def score(run_dir: pathlib.Path, task: int) -> float:
        policy, _ = load_policy(run_dir)
        env = make_env(ENV_ID)
        cells = TASK_CELLS[names[task]]
        returns = []
        for e in range(episodes):
            cell = np.asarray(cells[e % len(cells)])
            obs, _ = env.reset(seed=900_000 + e, options={"goal_cell": cell})
            total = 0.0
            for _ in range(horizon):
                action = np.asarray(policy(obs[None, None].astype(np.float32),
                                           jax.random.PRNGKey(0)))[0, 0]  # fmt: skip
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                if terminated or truncated:
                    break
            returns.append(total)
        env.close()
        return float(np.mean(normalized_score(np.asarray(returns), ENV_ID)))

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--clone-steps", type=int, default=5000)
    parser.add_argument("--replay-size", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--model-max-epochs", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--runs-dir", default="runs/continual")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()

    tasks = task_datasets(args.rows)
    sizes = {t.info.name: t.size for t in tasks}
    print("tasks:", sizes, flush=True)
    output = pathlib.Path(args.output)
    # Variants measured by an earlier call (same output) are kept beside the new ones.
    earlier = json.loads(output.read_text())["variants"] if output.exists() else {}
    results = {"settings": vars(args), "task_sizes": sizes, "variants": earlier}
    for name in args.variants:
        started = time.perf_counter()
        config = ContinualConfig(
            algo_config=td3_bc.Config(),
            steps=args.steps,
            clone_steps=args.clone_steps,
            replay_size=args.replay_size,
            seeds=tuple(args.seeds),
            model=ModelSpec(max_epochs=args.model_max_epochs),
            **VARIANTS[name],
        )
        result = run_sequence(
            tasks,
            pathlib.Path(args.runs_dir) / name,
            config,
            goal_evaluator(args.episodes),
            progress=lambda m, name=name: print(name, m, flush=True),
        )
        result["seconds"] = time.perf_counter() - started
        results["variants"][name] = result
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=1, default=str))
    print(markdown(results))


def markdown(results: dict) -> str:
    names = list(TASK_CELLS)
    lines = [
        "| variant | final average over tasks | "
        + " | ".join(f"task {n} final" for n in names)
        + " | forgetting | minutes |",
        "|" + " --- |" * (len(names) + 4),
    ]
    for variant, r in results["variants"].items():
        finals = np.asarray([s["scores"][-1] for s in r["per_seed"].values()])
        std = r["final_average_std"]
        cells = [f"{finals[:, j].mean():.1f}" for j in range(len(names))]
        lines.append(
            f"| {variant} | {r['final_average_mean']:.1f} ± {0 if std is None else std:.1f} | "
            + " | ".join(cells)
            + f" | {r['forgetting_mean']:.1f} | {r['seconds'] / 60:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
