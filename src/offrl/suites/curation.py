"""Test beds for data quality and curation, on Pendulum: seconds to build, labeled with
named subsets (filter keys) that say where every episode came from.

- ``pendulum-operators``: robomimic's multi-human layout with scripted operators: six
  operators of 20 episodes each, two each ``better``, ``okay`` and ``worse``, all
  driving the swing-up controller (:class:`offrl.suites.pendulum.SwingUpController`)
  with their own Gaussian action noise and share of random actions (``OPERATORS``).
  Filter keys: each operator (``better_1`` ...), each level (``better``, ``okay``,
  ``worse``) and robomimic's pairs (``okay_better``, ``worse_okay``, ``worse_better``).
- ``pointmaze-operators``: the same six operators on PointMaze UMaze (dense reward, the
  evaluation task: a fixed target, 300 steps), driving the waypoint planner of
  :mod:`offrl.suites.maze`; the same filter keys.
- ``pendulum-noisy-mix``: 30 clean demonstrations (noise std 0.1) and 30 noisy ones
  (std 1.0 and 30% random actions); keys ``clean``, ``corrupted``.
- ``pendulum-dynamics-mix``: the same 30 clean demonstrations and 30 from a pendulum
  with 1.5 times the gravity, recorded by a controller tuned for that pendulum (right
  there, wrong here); keys ``clean``, ``corrupted``.

- ``pendulum-takeover``: 40 episodes of a novice (the controller with noise std 0.5 and
  40% random actions) watched by a supervisor who takes over with the clean controller
  for 25 steps whenever the pendulum falls out of the upright position (it was within
  25 degrees in the last 10 steps and is now beyond 37 degrees), or for 40 steps when
  it is still hanging after 100 steps; ``interventions`` flags the supervisor's steps.

- ``pendulum-detour-mix``: 30 clean demonstrations, 15 of them with a detour: 25 steps
  of full torque one way (a consistent but task-irrelevant motion), inserted at a step
  drawn from 40..119, after which the controller takes over again. Keys ``clean`` (no
  detour) and ``corrupted``; ``detour_rows`` gives the detour steps.

The corrupted half of each mixture resets from other seeds than the clean half, so
their start states differ as two operators' would.
"""

from __future__ import annotations

import numpy as np

from offrl.data.dataset import Dataset
from offrl.envs.registry import make_env
from offrl.suites.collect import record_episode, suite_dataset
from offrl.suites.maze import WaypointController
from offrl.suites.maze import env_id as maze_env_id
from offrl.suites.pendulum import _GRAVITY_TERM, ENV_ID, SwingUpController

BEHAVIOR = (
    "offrl.suites.curation: the scripted swing-up controller with per-operator Gaussian "
    "action noise and random actions"
)

#: name -> (level, action noise std, share of uniformly random actions)
OPERATORS = {
    "better_1": ("better", 0.1, 0.0),
    "better_2": ("better", 0.2, 0.0),
    "okay_1": ("okay", 0.5, 0.1),
    "okay_2": ("okay", 0.6, 0.15),
    "worse_1": ("worse", 1.0, 0.3),
    "worse_2": ("worse", 1.2, 0.4),
}
LEVELS = ("worse", "okay", "better")

RECIPES = {
    "pendulum-operators": {"episodes_per_operator": 20},
    "pointmaze-operators": {"episodes_per_operator": 20, "maze": "umaze"},
    "pendulum-detour-mix": {"episodes": 30, "detours": 15, "detour_length": 25},
    "pendulum-takeover": {"episodes": 40, "novice_noise": 0.5, "novice_random": 0.4},
    "pendulum-noisy-mix": {"clean": 30, "corrupted": 30, "corruption": "noise"},
    "pendulum-dynamics-mix": {"clean": 30, "corrupted": 30, "corruption": "gravity=1.5"},
}


def collect(
    num_episodes: int,
    seed: int,
    noise_std: float,
    random_fraction: float,
    first_reset_seed: int,
    gravity: float = 1.0,
) -> list[dict[str, np.ndarray]]:
    """Episodes of the controller tuned for ``gravity`` in a pendulum with that gravity."""
    env_id = ENV_ID if gravity == 1.0 else f"{ENV_ID}@gravity={gravity}"
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    controller = SwingUpController(_GRAVITY_TERM * gravity)
    low, high = env.action_space.low, env.action_space.high

    def choose_action(observation):
        if rng.random() < random_fraction:
            return rng.uniform(low, high).astype(np.float32)
        action = controller(observation) + noise_std * rng.standard_normal(1)
        return np.clip(action, low, high).astype(np.float32)

    episodes = [
        record_episode(env, choose_action, first_reset_seed + i) for i in range(num_episodes)
    ]
    env.close()
    return episodes


def collect_maze(
    maze: str, num_episodes: int, seed: int, noise_std: float, random_fraction: float, first: int
) -> list[dict[str, np.ndarray]]:
    """Episodes of the waypoint planner with an operator's noise on the evaluation task."""
    env = make_env(maze_env_id(maze, dense=True))
    controller = WaypointController(env.unwrapped.maze)
    rng = np.random.default_rng(seed)

    def choose_action(observation):
        if rng.random() < random_fraction:
            return rng.uniform(-1.0, 1.0, 2).astype(np.float32)
        action = controller(observation) + noise_std * rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    episodes = [record_episode(env, choose_action, first + i) for i in range(num_episodes)]
    env.close()
    return episodes


def _operators(name: str, recipe: dict) -> Dataset:
    count = recipe["episodes_per_operator"]
    parts = []
    for i, (operator, (_, noise, share)) in enumerate(OPERATORS.items()):
        first = 10_000 * (i + 1)
        if "maze" in recipe:
            part = collect_maze(recipe["maze"], count, 100 + i, noise, share, first)
        else:
            part = collect(count, 100 + i, noise, share, first_reset_seed=first)
        parts.append((operator, part))
    groups = {level: [o for o, v in OPERATORS.items() if v[0] == level] for level in LEVELS}
    for first_level, second in (("okay", "better"), ("worse", "okay"), ("worse", "better")):
        groups[f"{first_level}_{second}"] = groups[first_level] + groups[second]
    env_id = maze_env_id(recipe["maze"], dense=True) if "maze" in recipe else ENV_ID
    return _labeled(name, parts, groups, env_id)


def _detours(recipe: dict) -> list[tuple[int, int, float]]:
    """``(episode, first step, torque)`` of each detour (deterministic)."""
    rng = np.random.default_rng(400)
    chosen = np.sort(rng.choice(recipe["episodes"], recipe["detours"], replace=False))
    return [(int(e), int(rng.integers(40, 120)), float(rng.choice([-2.0, 2.0]))) for e in chosen]


def collect_detours(recipe: dict) -> list[dict[str, np.ndarray]]:
    env = make_env(ENV_ID)
    rng = np.random.default_rng(401)
    controller = SwingUpController()
    detours = {e: (start, torque) for e, start, torque in _detours(recipe)}
    episodes = []
    for index in range(recipe["episodes"]):
        steps = {"t": 0}

        def choose_action(observation, index=index, steps=steps):
            t = steps["t"]
            steps["t"] += 1
            if index in detours:
                start, torque = detours[index]
                if start <= t < start + recipe["detour_length"]:
                    return np.asarray([torque], np.float32)
            action = controller(observation) + 0.1 * rng.standard_normal(1)
            return np.clip(action, -2.0, 2.0).astype(np.float32)

        episodes.append(record_episode(env, choose_action, 95_000 + index))
    env.close()
    return episodes


def detour_rows(dataset: Dataset, name: str = "pendulum-detour-mix") -> np.ndarray:
    """Boolean per step of the built ``pendulum-detour-mix``: inside a detour."""
    recipe = RECIPES[name]
    rows = np.zeros(dataset.size, bool)
    starts = np.asarray(dataset.episode_starts)
    for episode, start, _ in _detours(recipe):
        first = starts[episode] + start
        rows[first : first + recipe["detour_length"]] = True
    return rows


def collect_takeover(num_episodes: int, seed: int, noise_std: float, random_fraction: float):
    """A novice with a supervisor who takes over (see the module docstring)."""
    env = make_env(ENV_ID)
    rng = np.random.default_rng(seed)
    controller = SwingUpController()
    low, high = env.action_space.low, env.action_space.high
    episodes = []
    for index in range(num_episodes):
        state = {"left": 0, "flags": [], "upright": []}

        def choose_action(observation, state=state):
            cos_theta = float(observation[0])
            state["upright"].append(cos_theta > 0.9)
            step = len(state["flags"])
            if state["left"] == 0:
                fell = any(state["upright"][-10:]) and cos_theta < 0.8
                stuck = step >= 100 and cos_theta < 0.0 and not any(state["upright"])
                state["left"] = 25 if fell else 40 if stuck else 0
            if state["left"] > 0:
                state["left"] -= 1
                state["flags"].append(True)
                return controller(observation)
            state["flags"].append(False)
            if rng.random() < random_fraction:
                return rng.uniform(low, high).astype(np.float32)
            action = controller(observation) + noise_std * rng.standard_normal(1)
            return np.clip(action, low, high).astype(np.float32)

        episode = record_episode(env, choose_action, 90_000 + index)
        episode["interventions"] = np.asarray(state["flags"], np.float32)
        episodes.append(episode)
    env.close()
    return episodes


def _labeled(
    name: str, parts: list[tuple[str, list]], groups: dict[str, list[str]], env_id: str = ENV_ID
) -> Dataset:
    episodes, subsets, start = [], {}, 0
    for label, part in parts:
        episodes.extend(part)
        subsets[label] = list(range(start, start + len(part)))
        start += len(part)
    for group, members in groups.items():
        subsets[group] = [i for member in members for i in subsets[member]]
    return suite_dataset(name, env_id, episodes).with_subsets(subsets)


def build(name: str) -> Dataset:
    """Build a recipe into a host-side dataset (validated, with its subsets). Deterministic."""
    if name not in RECIPES:
        raise KeyError(f"unknown curation recipe '{name}'; available: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    if name.endswith("-operators"):
        return _operators(name, recipe)
    if name == "pendulum-detour-mix":
        episodes = collect_detours(recipe)
        with_detour = sorted({e for e, _, _ in _detours(recipe)})
        clean = [e for e in range(len(episodes)) if e not in with_detour]
        dataset = suite_dataset(name, ENV_ID, episodes)
        return dataset.with_subsets({"clean": clean, "corrupted": with_detour})
    if name == "pendulum-takeover":
        episodes = collect_takeover(
            recipe["episodes"], 300, recipe["novice_noise"], recipe["novice_random"]
        )
        return suite_dataset(name, ENV_ID, episodes)
    clean = collect(recipe["clean"], 200, 0.1, 0.0, first_reset_seed=70_000)
    if recipe["corruption"] == "noise":
        corrupted = collect(recipe["corrupted"], 201, 1.0, 0.3, first_reset_seed=80_000)
    else:
        gravity = float(recipe["corruption"].split("=")[1])
        corrupted = collect(recipe["corrupted"], 202, 0.1, 0.0, 80_000, gravity=gravity)
    return _labeled(name, [("clean", clean), ("corrupted", corrupted)], {})
