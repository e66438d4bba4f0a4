"""A point robot with a hidden goal: the multi-task test bed of Meta-DT.

Meta-DT (Wang et al., 2024) evaluates offline meta-RL on a point robot whose
goal is one of several on a semicircle and is never observed: the policy must
infer the task from the rewards it receives. ``offrl/HiddenGoal-v0`` is that
task in NumPy.

State and observation: the robot's position ``(x, y)``, starting at the
origin; action ``a in [-1, 1]^2``, the step ``0.1 a``; reward ``-||p - g||``
after the step; 20 steps (truncation only). The goal ``g`` is one of
:data:`NUM_GOALS` points on the upper unit semicircle, ``g_k = (cos(pi k /
19), sin(pi k / 19))``; the reset seed chooses it: goal ``goals[seed %
len(goals)]`` of the environment's goal set. So an episode's task is known from
its reset seed, and resets ``s, s + n, s + 2n, ...`` (``n`` the set's size) give
the same task again (a few-shot evaluation's later episodes).

Three ids share the dynamics and differ in the goal set: ``offrl/HiddenGoal-v0``
(all 20), ``offrl/HiddenGoalTrain-v0`` (the 15 training goals) and
``offrl/HiddenGoalTest-v0`` (the 5 held-out goals :data:`TEST_GOALS`, between
training goals, as Meta-DT's train-15 / test-5 split). ``info["goal"]`` and
``info["task"]`` (the goal's index among all 20) say which goal an episode had.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

NUM_GOALS = 20
#: The held-out goals (indices among all 20): interleaved with the training goals.
TEST_GOALS = (2, 6, 10, 13, 17)
TRAIN_GOALS = tuple(k for k in range(NUM_GOALS) if k not in TEST_GOALS)
STEPS = 20
STEP_SIZE = 0.1
GOAL_SETS = {"all": tuple(range(NUM_GOALS)), "train": TRAIN_GOALS, "test": TEST_GOALS}
ENV_IDS = {
    "offrl/HiddenGoal-v0": "all",
    "offrl/HiddenGoalTrain-v0": "train",
    "offrl/HiddenGoalTest-v0": "test",
}


def goal_position(index: int) -> np.ndarray:
    """Goal ``index`` of the 20 on the upper unit semicircle."""
    angle = np.pi * index / (NUM_GOALS - 1)
    return np.array([np.cos(angle), np.sin(angle)])


def task_of_seed(seed: int, goals: str = "all") -> int:
    """The goal index (among all 20) a reset ``seed`` draws in goal set ``goals``."""
    members = GOAL_SETS[goals]
    return members[seed % len(members)]


class HiddenGoalEnv(gym.Env):
    """See the module docstring; ``goals`` is ``"all"``, ``"train"`` or ``"test"``."""

    metadata = {"render_modes": []}

    def __init__(self, goals: str = "all"):
        if goals not in GOAL_SETS:
            raise ValueError(f"goals must be one of {', '.join(GOAL_SETS)}, not {goals!r}")
        self.goals = goals
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = np.zeros(2)
        self.task = GOAL_SETS[goals][0]
        self.goal = goal_position(self.task)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self.task = task_of_seed(int(seed), self.goals)
        self.goal = goal_position(self.task)
        self.position = np.zeros(2)
        return self.position.astype(np.float32), self._info()

    def _info(self) -> dict:
        return {"goal": self.goal.copy(), "task": self.task}

    def step(self, action):
        step = STEP_SIZE * np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self.position = self.position + step
        reward = -float(np.linalg.norm(self.position - self.goal))
        return self.position.astype(np.float32), reward, False, False, self._info()


def register() -> None:
    """Register the three goal sets with Gymnasium (idempotent)."""
    for env_id, goals in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="offrl.envs.goals:HiddenGoalEnv",
                max_episode_steps=STEPS,
                kwargs={"goals": goals},
            )
