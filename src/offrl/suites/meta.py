"""Multi-task data for offline meta-RL: the hidden-goal point robot (Meta-DT's test bed).

``hidden-goal``: 60 episodes of 20 steps on each of the 15 training goals of
``offrl/HiddenGoalTrain-v0`` (:mod:`offrl.envs.goals`), 18k transitions. The
behavior knows the goal: it first moves in a random direction for 0 to 6 steps
(drawn per episode; an operator exploring), then heads straight for the goal, with
Gaussian action noise whose size is drawn per episode from ``{0.1, 0.3, 0.6,
1.0}``: returns from the expert's to far below, as Meta-DT's "medium" data mixes a
SAC learner's episodes. Without the probing, the data's actions would point at the
goal from the first step, and a policy could read the goal off its own actions
instead of the rewards, which fails as soon as its own first moves are wrong. Each
goal's episodes are the subset ``task-KK`` (``KK`` the goal's index among all
20), which is how a multi-task algorithm (:mod:`offrl.algos.meta_dt`) knows which
episodes share a task; the observations never say.

``python -m offrl.suites.meta --measure-references`` measures the references in
:mod:`offrl.envs.registry` (uniform random actions and the noise-free goal
seeker, 100 episodes each on the reference resets, all 20 goals).
"""

from __future__ import annotations

import numpy as np

from offrl.data.dataset import Dataset
from offrl.envs.goals import STEP_SIZE, goal_position, task_of_seed
from offrl.suites.collect import record_episode, references_main, suite_dataset

ENV_ID = "offrl/HiddenGoalTrain-v0"
NOISE_LEVELS = (0.1, 0.3, 0.6, 1.0)
#: The most steps an episode of the data probes in a random direction first.
MAX_PROBE = 6
BEHAVIOR = (
    "offrl.suites.meta: a goal seeker that knows the hidden goal, after 0-6 steps in a "
    f"random direction, with Gaussian action noise drawn per episode from {NOISE_LEVELS}"
)
RECIPES = {"hidden-goal": dict(episodes_per_task=60, seed=601, goals="train")}


class GoalSeeker:
    """Heads straight for ``goal`` as fast as the action box allows (stopping on it),
    after ``probe`` steps in a random direction (an exploring operator's first moves),
    plus Gaussian action noise of size ``noise``."""

    def __init__(self, goal: np.ndarray, noise: float = 0.0, seed: int = 0, probe: int = 0):
        self.goal = np.asarray(goal, np.float64)
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.probe = int(probe)
        angle = self.rng.uniform(0.0, 2.0 * np.pi)
        self.direction = np.array([np.cos(angle), np.sin(angle)])
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        self.t += 1
        if self.t <= self.probe:
            action = self.direction
        else:
            action = (self.goal - np.asarray(observation, np.float64)) / STEP_SIZE
        action = action / max(1.0, float(np.max(np.abs(action))))  # straight, fastest
        if self.noise:
            action = action + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def goal_episodes(env_id: str, goals: str, count: int, first_seed: int, noise=None, seed=0):
    """``count`` episodes of the goal seeker, episode ``i`` from reset ``first_seed +
    i`` (so on goal ``task_of_seed(first_seed + i)``); ``noise``: a fixed size, or
    ``None`` for :data:`NOISE_LEVELS` in turn. Returns ``(episodes, tasks)``."""
    from offrl.envs.registry import make_env

    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    episodes, tasks = [], []
    for i in range(count):
        task = task_of_seed(first_seed + i, goals)
        size = NOISE_LEVELS[i % len(NOISE_LEVELS)] if noise is None else noise
        probe = int(rng.integers(0, MAX_PROBE + 1)) if noise is None else 0
        policy = GoalSeeker(goal_position(task), size, int(rng.integers(2**31)), probe)
        episodes.append(record_episode(env, policy, first_seed + i))
        tasks.append(task)
    env.close()
    return episodes, tasks


def build(name: str, num_steps: int | None = None) -> Dataset:
    """Build a recipe (deterministic); ``num_steps`` shrinks it (tests)."""
    if name not in RECIPES:
        raise KeyError(f"unknown meta-RL recipe '{name}'; available: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    from offrl.envs.goals import GOAL_SETS

    num_tasks = len(GOAL_SETS[recipe["goals"]])
    count = num_tasks * recipe["episodes_per_task"]
    if num_steps is not None:
        count = max(num_tasks, num_steps // 20)
    episodes, tasks = goal_episodes(
        ENV_ID, recipe["goals"], count, recipe["seed"] * 100_000, seed=recipe["seed"]
    )
    subsets: dict[str, list[int]] = {}
    for episode, task in enumerate(tasks):
        subsets.setdefault(f"task-{task:02d}", []).append(episode)
    return suite_dataset(name, ENV_ID, episodes).with_subsets(subsets)


def measure_references(num_episodes: int = 100) -> dict:
    from offrl.envs.registry import make_env
    from offrl.envs.rollout import REFERENCE_SEED

    weights = 0.99 ** np.arange(20)
    out = {}
    rng = np.random.default_rng(0)
    env = make_env("offrl/HiddenGoal-v0")
    random = [
        record_episode(env, lambda _: rng.uniform(-1, 1, 2).astype(np.float32), REFERENCE_SEED + i)
        for i in range(num_episodes)
    ]
    env.close()
    expert, _ = goal_episodes("offrl/HiddenGoal-v0", "all", num_episodes, REFERENCE_SEED, 0.0)
    for label, episodes in (("random", random), ("expert", expert)):
        out[f"{label}_return"] = float(np.mean([ep["rewards"].sum() for ep in episodes]))
        out[f"{label}_value"] = float(np.mean([float(ep["rewards"] @ weights) for ep in episodes]))
    return out


def main() -> None:
    references_main(__doc__.splitlines()[0], measure_references)


if __name__ == "__main__":
    main()
