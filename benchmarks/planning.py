"""Goal planning in a learned model on PointMaze, with no reward (DINO-WM's idea on
states): fit the dynamics ensemble to the suite's logged transitions, then in the
real maze replan every step with CEM in the model (offrl.model.planning) toward the
episode's goal and apply the first action. Reported beside the scripted planner the
data was logged with (shortest-path waypoints plus a PD law, which knows the maze):
the share of episodes that reach the goal (within 0.45) and the steps it took.

    python benchmarks/planning.py --dataset suite:pointmaze-umaze --episodes 10 \\
        --output benchmarks/results/planning-pointmaze.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from offrl.data.loading import load_dataset
from offrl.envs import make_env
from offrl.envs.pointmaze import GOAL_RADIUS
from offrl.model import ModelSpec, planning
from offrl.model import ensemble as ens
from offrl.suites.maze import WaypointController


def run_episode(env, act, seed: int, horizon: int) -> tuple[bool, int, float]:
    """(reached the goal, steps to it or the horizon, closest distance)."""
    observation, _ = env.reset(seed=seed)
    closest = np.inf
    for step in range(horizon):
        distance = float(np.linalg.norm(observation[:2] - observation[4:6]))
        closest = min(closest, distance)
        if distance < GOAL_RADIUS:
            return True, step, closest
        observation, _, terminated, truncated, _ = env.step(act(observation))
        if terminated or truncated:
            break
    return False, horizon, closest


class MPCPolicy:
    """Replans every step toward the observation's goal (its last two entries), warm
    started from the previous plan."""

    def __init__(self, planner, model, horizon: int, seed: int):
        self.planner, self.model = planner, model
        self.plan = jnp.zeros((horizon, 2))
        self.key = jax.random.PRNGKey(seed)

    def __call__(self, observation):
        self.key, key = jax.random.split(self.key)
        observation = jnp.asarray(observation)
        action, self.plan = self.planner(self.model, observation, observation[4:6], self.plan, key)
        return np.asarray(action, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="suite:pointmaze-umaze")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--fit-episodes", type=int, default=300, help="logged episodes to fit on")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--horizon", type=int, default=300, help="steps per real episode")
    parser.add_argument("--plan-horizon", type=int, default=25)
    parser.add_argument("--population", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    data = load_dataset(args.dataset)
    data = data.select_episodes(range(min(args.fit_episodes, data.num_episodes)))
    spec = ModelSpec(max_epochs=args.max_epochs)
    fitted, fit_summary = ens.fit(
        spec, data.observations, data.actions, data.rewards, data.next_observations,
        jnp.stack([jax.random.PRNGKey(args.seed)]),
    )  # fmt: skip
    model = jax.tree_util.tree_map(lambda x: x[0], fitted)
    config = planning.CEMConfig(
        horizon=args.plan_horizon,
        population=args.population,
        elites=max(2, args.population // 10),
        iterations=args.iterations,
    )
    planner = planning.mpc_planner(spec, config, (0, 1))
    env = make_env(data.info.env_id)
    scripted = WaypointController(env.unwrapped.maze)
    results = {}
    for name in ("model CEM (no reward, no map)", "scripted planner (knows the maze)"):
        outcomes, seconds = [], time.perf_counter()
        for episode in range(args.episodes):
            act = (
                MPCPolicy(planner, model, args.plan_horizon, episode)
                if name.startswith("model")
                else scripted
            )
            outcomes.append(run_episode(env, act, 90_000 + episode, args.horizon))
        reached = [o[0] for o in outcomes]
        results[name] = {
            "success_rate": float(np.mean(reached)),
            "steps_when_reached": float(np.mean([o[1] for o in outcomes if o[0]]))
            if any(reached)
            else None,
            "closest_distance_mean": float(np.mean([o[2] for o in outcomes])),
            "seconds": time.perf_counter() - seconds,
        }
        print(name, results[name], flush=True)
    report = {
        "dataset": args.dataset,
        "fit_episodes": args.fit_episodes,
        "fit": fit_summary,
        "cem": {k: getattr(config, k) for k in ("horizon", "population", "elites", "iterations")},
        "episodes": args.episodes,
        "reset_seeds": f"90000..{90000 + args.episodes - 1}",
        "results": results,
        "seconds": time.perf_counter() - started,
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
