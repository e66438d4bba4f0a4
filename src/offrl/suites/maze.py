"""PointMaze navigation data, made the way D4RL made its maze2d data.

A waypoint planner (breadth-first search over the maze's free cells towards the
goal's cell) feeds a PD controller, ``a = clip(10 (w - p) - 1 v, -1, 1)`` with
``w`` the centre of the next cell on the shortest path (the goal itself once in
its cell): D4RL's ``WaypointController`` gains (p = 10, d = -1). As D4RL's
generator with ``--noisy``, Gaussian noise with std 0.5 is added to every
action before clipping. The task is continuing and the target moves to a new
random cell whenever it is reached (gymnasium-robotics' ``reset_target=True``),
so the data covers many start-goal pairs; episodes last the task's horizon
(UMaze 300, Medium 600, Large 800 steps) and the last one is cut at the
dataset size.

Recipes: ``pointmaze-{umaze,medium,large}`` (sparse reward: 1 within 0.45 of
the goal) and ``pointmaze-{umaze,medium,large}-dense`` (``exp(-distance)``),
1M transitions each. Observations are ``[x, y, vx, vy, goal_x, goal_y]``
(:class:`offrl.envs.pointmaze.GoalObservation`).

``pointmaze-umaze-demos``: demonstrations collected automatically, G-PAYN's way
(a scripted controller, only its successful episodes kept): the noise-free
planner on the evaluation task itself (fixed target, 300 steps), 20 episodes
that reach the goal, from reset seeds no evaluation uses. Subsets ``demos-N``
(N = 2, 5, 10, 20) are the first N episodes: ``--filter-key demos-2`` is two
demonstrations.

``python -m offrl.suites.maze --measure-references`` measures the reference
returns (uniform random actions and the noise-free planner, 100 episodes of
the evaluation task, which keeps its target fixed).
"""

from __future__ import annotations

import argparse

import numpy as np

from offrl.data.dataset import Dataset, DatasetInfo, from_episodes
from offrl.envs.pointmaze import (  # noqa: F401  (the planner's home is the environment's module)
    D_GAIN,
    HORIZONS,
    MAZES,
    P_GAIN,
    WaypointController,
)
from offrl.envs.registry import VALUE_DISCOUNT, make_env
from offrl.suites.collect import record_episode, record_steps

BEHAVIOR = (
    "offrl.suites.maze: BFS waypoint planner + PD controller (p=10, d=-1), Gaussian action "
    "noise std 0.5, target resampled when reached"
)


def env_id(maze: str, dense: bool) -> str:
    return f"PointMaze_{MAZES[maze]}{'Dense' if dense else ''}-v3"


def collect(
    maze: str,
    dense: bool,
    num_steps: int,
    seed: int,
    noise_std: float = 0.5,
    policy: str = "planner",
) -> list[dict[str, np.ndarray]]:
    """Deterministic collection: episode ``i`` resets with ``seed * 1_000_003 + i``."""
    env = make_env(env_id(maze, dense), continuing_task=True, reset_target=True)
    controller = WaypointController(env.unwrapped.maze)
    rng = np.random.default_rng(seed)

    def choose_action(observation):
        if policy == "random":
            return rng.uniform(-1.0, 1.0, 2).astype(np.float32)
        action = controller(observation)
        if noise_std > 0:
            action = np.clip(action + noise_std * rng.standard_normal(2), -1.0, 1.0)
        return action

    episodes = record_steps(env, choose_action, num_steps, seed, horizon=HORIZONS[maze])
    env.close()
    return episodes


RECIPES = {
    f"pointmaze-{maze}{'-dense' if dense else ''}": dict(
        maze=maze, dense=dense, num_steps=1_000_000, seed=7
    )
    for maze in MAZES
    for dense in (False, True)
}


#: Automatically collected demonstrations (see the module's docstring).
DEMO_RECIPES = {"pointmaze-umaze-demos": dict(maze="umaze", episodes=20, seed=11)}
RECIPES.update(DEMO_RECIPES)
#: The demonstrations' reset seeds start here (periodic evaluations use seeds from
#: 10,000, held-out ones from 900,000,000: offrl.envs.rollout).
DEMO_RESET_OFFSET = 800_000_000
DEMO_SUBSETS = (2, 5, 10, 20)


def collect_demonstrations(
    maze: str, episodes: int, seed: int, max_tries: int | None = None
) -> tuple[list[dict[str, np.ndarray]], int]:
    """Episodes of the noise-free planner on the evaluation task that reach the goal
    (a return above 0), with how many were tried. Episode ``i`` resets with
    ``DEMO_RESET_OFFSET + seed * 1_000 + i``."""
    env = make_env(env_id(maze, False))
    controller = WaypointController(env.unwrapped.maze)
    kept, tried = [], 0
    max_tries = 10 * episodes if max_tries is None else max_tries
    while len(kept) < episodes and tried < max_tries:
        episode = record_episode(env, controller, DEMO_RESET_OFFSET + seed * 1_000 + tried)
        tried += 1
        if float(np.sum(episode["rewards"])) > 0:
            kept.append(episode)
    env.close()
    if len(kept) < episodes:
        raise RuntimeError(f"the planner reached the goal in {len(kept)} of {tried} episodes")
    return kept, tried


def build(name: str, num_steps: int | None = None) -> Dataset:
    """Build a recipe (``num_steps`` overrides its size, for tests). Deterministic."""
    from offrl.data.validate import validate

    if name not in RECIPES:
        raise KeyError(f"unknown PointMaze recipe '{name}'; available: {', '.join(RECIPES)}")
    recipe = dict(RECIPES[name])
    if name in DEMO_RECIPES:
        return _build_demonstrations(name, recipe)
    if num_steps is not None:
        recipe["num_steps"] = num_steps
    episodes = collect(**recipe)
    env = make_env(env_id(recipe["maze"], recipe["dense"]))
    info = DatasetInfo(
        name=name,
        env_id=env_id(recipe["maze"], recipe["dense"]),
        action_low=(-1.0, -1.0),
        action_high=(1.0, 1.0),
        source=f"suite:{name}",
    )
    dataset = validate(from_episodes(episodes, info), env.observation_space, env.action_space)
    env.close()
    return dataset


def _build_demonstrations(name: str, recipe: dict) -> Dataset:
    from offrl.data.validate import validate

    episodes, tried = collect_demonstrations(recipe["maze"], recipe["episodes"], recipe["seed"])
    env = make_env(env_id(recipe["maze"], False))
    info = DatasetInfo(
        name=name,
        env_id=env_id(recipe["maze"], False),
        action_low=(-1.0, -1.0),
        action_high=(1.0, 1.0),
        source=f"suite:{name}",
    )
    dataset = validate(from_episodes(episodes, info), env.observation_space, env.action_space)
    env.close()
    return dataset.with_subsets(
        {f"demos-{n}": list(range(n)) for n in DEMO_SUBSETS if n <= len(episodes)}
    )


def controller_returns(
    maze: str, dense: bool, policy: str, episodes: int = 100, discount: float = VALUE_DISCOUNT
) -> tuple[float, float]:
    """Mean return and mean discounted return on the evaluation task (fixed target),
    reset seeds 0..episodes-1, from the same episodes."""
    env = make_env(env_id(maze, dense))
    controller = WaypointController(env.unwrapped.maze)
    rng = np.random.default_rng(0)
    returns, values = [], []
    for i in range(episodes):
        observation, _ = env.reset(seed=i)
        total, value, weight, done = 0.0, 0.0, 1.0, False
        while not done:
            action = (
                rng.uniform(-1, 1, 2).astype(np.float32)
                if policy == "random"
                else controller(observation)
            )
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            value += weight * float(reward)
            weight *= discount
            done = terminated or truncated
        returns.append(total)
        values.append(value)
    env.close()
    return float(np.mean(returns)), float(np.mean(values))


def evaluate_controller(maze: str, dense: bool, policy: str, episodes: int = 100) -> float:
    """Mean return on the evaluation task (fixed target) over reset seeds 0..episodes-1."""
    return controller_returns(maze, dense, policy, episodes)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure-references", action="store_true")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    if args.measure_references:
        for maze in MAZES:
            for dense in (False, True):
                name = f"pointmaze-{maze}{'-dense' if dense else ''}"
                random, random_value = controller_returns(maze, dense, "random", args.episodes)
                planner, planner_value = controller_returns(maze, dense, "planner", args.episodes)
                print(
                    f'    "{name}": ({random:.2f}, {planner:.2f}, {random_value:.2f}, '
                    f"{planner_value:.2f}),",
                    flush=True,
                )


if __name__ == "__main__":
    main()
