"""D4RL-style locomotion datasets on Gymnasium MuJoCo v5 (Hopper, HalfCheetah, Walker2d).

Levels follow D4RL: ``random`` (uniform random actions), and, once offrl's SAC
behavior policies are trained and shipped, ``medium``, ``expert``,
``medium-replay`` and ``medium-expert`` (see :mod:`offrl.suites.policies` for
the collection from a run). Only ``random`` is buildable today.

Collection is deterministic: episode ``i`` resets with ``seed * 1_000_003 + i``
and actions come from ``numpy.random.default_rng(seed)``; episodes end at the
environment's termination or its 1,000-step time limit, and the last one is cut
at the dataset size (a truncation).
"""

from __future__ import annotations

import numpy as np

from offrl.data.dataset import Dataset, DatasetInfo, from_episodes
from offrl.envs.registry import make_env
from offrl.suites.collect import record_steps

ENVIRONMENTS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
BEHAVIOR = "offrl.suites.locomotion: uniform random actions over the action space"

RECIPES = {
    f"{task}-random": dict(task=task, level="random", num_steps=1_000_000, seed=11)
    for task in ENVIRONMENTS
}


def collect_random(env_id: str, num_steps: int, seed: int) -> list[dict[str, np.ndarray]]:
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high

    def choose_action(observation):
        return rng.uniform(low, high).astype(np.float32)

    episodes = record_steps(env, choose_action, num_steps, seed)
    env.close()
    return episodes


def build(name: str, num_steps: int | None = None) -> Dataset:
    """Build a recipe (``num_steps`` overrides its size, for tests). Deterministic."""
    from offrl.data.validate import validate

    if name not in RECIPES:
        raise KeyError(f"unknown locomotion recipe '{name}'; available: {', '.join(RECIPES)}")
    recipe = dict(RECIPES[name])
    env_id = ENVIRONMENTS[recipe["task"]]
    episodes = collect_random(env_id, num_steps or recipe["num_steps"], recipe["seed"])
    env = make_env(env_id)
    info = DatasetInfo(
        name=name,
        env_id=env_id,
        action_low=tuple(env.action_space.low.astype(float).tolist()),
        action_high=tuple(env.action_space.high.astype(float).tolist()),
        source=f"suite:{name}",
    )
    dataset = validate(from_episodes(episodes, info), env.observation_space, env.action_space)
    env.close()
    return dataset
