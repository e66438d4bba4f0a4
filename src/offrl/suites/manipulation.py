"""Data sources as D5RL names them, on the pushing task ``offrl/Push-v0``.

D5RL (Rafailov et al., 2024) collects its robot datasets the ways labs do and
asks how offline RL, then online fine-tuning, handles each. The same three
sources here, 500 episodes of 100 steps (50k transitions) each, on
:mod:`offrl.envs.push` (the effector must get behind the block to push it):

- ``push-scripted``: a scripted pusher (:class:`Pusher`: go around the block,
  get behind it, push along the line to the goal) with Gaussian action noise
  0.2: narrow, consistent, task-directed.
- ``push-play``: play-like exploration: the same primitives aimed at goals of
  the operator's own (a new random target for the block every 20 steps, and a
  quarter of the episodes spent reaching random points with the effector), never
  the task's goal; rewards are the task's. Broad coverage, little success.
- ``push-teleop``: a teleoperation-like noisy expert: the pusher's commands
  low-passed (a human's sluggish hand), temporally correlated noise
  (Ornstein-Uhlenbeck, sigma 0.15) and pauses (each step a 2% chance of letting go
  for 5-15 steps). Task-directed, but multimodal in time and slower: about 70% of
  its episodes end at the goal, against all of the scripted pusher's.

``python -m offrl.suites.manipulation --measure-references`` measures the
references in :mod:`offrl.envs.registry` (uniform random actions and the
noise-free pusher, 100 episodes each on the reference resets).
"""

from __future__ import annotations

import numpy as np

from offrl.data.dataset import Dataset
from offrl.envs.push import CONTACT
from offrl.suites.collect import references_main, run_controller, suite_dataset

ENV_ID = "offrl/Push-v0"
BEHAVIOR = "offrl.suites.manipulation: the scripted pusher, as scripted, play and teleop data"


class Pusher:
    """Scripted pushing: detour around the block when the effector is beside or in
    front of it, go to the point behind it on the line from the goal, then push
    along that line (``goal``: the block's target; the task's goal by default)."""

    def __init__(self, noise: float = 0.0, seed: int = 0):
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.goal = None

    def reset(self) -> None:
        self.goal = None

    def command(self, observation: np.ndarray, goal=None) -> np.ndarray:
        observation = np.asarray(observation, np.float64)
        effector, block = observation[:2], observation[2:4]
        target = observation[4:6] if goal is None else np.asarray(goal, np.float64)
        to_goal = target - block
        distance = float(np.linalg.norm(to_goal))
        if distance < 0.03:
            return np.zeros(2)
        u = to_goal / distance
        behind = block - (CONTACT + 0.02) * u
        relative = effector - block
        if np.dot(relative, u) > -0.5 * CONTACT and np.linalg.norm(relative) < CONTACT + 0.12:
            perpendicular = np.array([-u[1], u[0]])
            side = np.sign(np.dot(relative, perpendicular)) or 1.0
            waypoint = block + side * (CONTACT + 0.08) * perpendicular - 0.5 * CONTACT * u
            return np.clip((waypoint - effector) / 0.1, -1.0, 1.0)
        if np.linalg.norm(effector - behind) > 0.03:
            return np.clip((behind - effector) / 0.1, -1.0, 1.0)
        return np.clip(u * min(1.0, distance / 0.1 + 0.2) + 5.0 * (behind - effector), -1.0, 1.0)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        action = self.command(observation, self.goal)
        if self.noise:
            action = action + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class PlayOperator(Pusher):
    """Play: push the block to a target of its own, redrawn every ``period`` steps;
    in a quarter of the episodes wander with the effector between random points."""

    def __init__(self, period: int = 20, noise: float = 0.1, seed: int = 0):
        super().__init__(noise, seed)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self.t, self.wander = 0, bool(self.rng.random() < 0.25)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        if self.t % self.period == 0:
            self.goal = self.rng.uniform(-0.8, 0.8, 2)
        self.t += 1
        if self.wander:
            effector = np.asarray(observation[:2], np.float64)
            action = np.clip((self.goal - effector) / 0.1, -1.0, 1.0)
        else:
            action = self.command(observation, self.goal)
        action = action + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class Teleoperator(Pusher):
    """A human at the controls of the pusher: commands low-passed (``smoothing`` of
    the previous command kept), Ornstein-Uhlenbeck noise and random pauses."""

    def __init__(self, smoothing=0.5, sigma=0.15, theta=0.15, pause=0.02, seed=0):
        super().__init__(0.0, seed)
        self.smoothing, self.sigma, self.theta, self.pause = smoothing, sigma, theta, pause
        self.reset()

    def reset(self) -> None:
        self.previous, self.ou, self.paused = np.zeros(2), np.zeros(2), 0

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        self.ou = self.ou - self.theta * self.ou + self.sigma * self.rng.standard_normal(2)
        if self.paused == 0 and self.rng.random() < self.pause:
            self.paused = int(self.rng.integers(5, 16))
        if self.paused:
            self.paused -= 1
            self.previous = np.zeros(2)
            return np.zeros(2, np.float32)
        wanted = self.command(observation)
        self.previous = self.smoothing * self.previous + (1 - self.smoothing) * wanted
        return np.clip(self.previous + self.ou, -1.0, 1.0).astype(np.float32)


RECIPES = {
    "push-scripted": dict(source="scripted", episodes=500, seed=501),
    "push-play": dict(source="play", episodes=500, seed=502),
    "push-teleop": dict(source="teleop", episodes=500, seed=503),
}


SOURCES = {
    "scripted": "the scripted pusher with Gaussian action noise 0.2",
    "play": "play: the pusher's primitives aimed at the operator's own targets (redrawn "
    "every 20 steps; a quarter of the episodes wandering), noise 0.1",
    "teleop": "a teleoperated pusher: low-passed commands (0.5), Ornstein-Uhlenbeck noise "
    "(sigma 0.15, theta 0.15), 2% chance per step of a 5-15-step pause",
}


def behavior(name: str) -> str:
    return f"offrl.suites.manipulation, {SOURCES[RECIPES[name]['source']]}"


def operator(source: str, seed: int):
    if source == "scripted":
        return Pusher(noise=0.2, seed=seed)
    if source == "play":
        return PlayOperator(seed=seed)
    return Teleoperator(seed=seed)


def build(name: str, num_steps: int | None = None) -> Dataset:
    """Build a recipe (deterministic); ``num_steps`` shrinks it (tests)."""
    if name not in RECIPES:
        raise KeyError(f"unknown manipulation recipe '{name}'; available: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    count = recipe["episodes"] if num_steps is None else max(1, num_steps // 100)
    episodes = run_controller(
        ENV_ID,
        lambda: operator(recipe["source"], recipe["seed"]),
        count,
        first_reset_seed=recipe["seed"] * 100_000,
    )
    return suite_dataset(name, ENV_ID, episodes)


def measure_references(num_episodes: int = 100) -> dict:
    from offrl.envs.rollout import REFERENCE_SEED

    out = {}
    rng = np.random.default_rng(0)

    class Uniform:
        def reset(self):
            pass

        def __call__(self, observation):
            return rng.uniform(-1.0, 1.0, 2).astype(np.float32)

    for label, make in (("random", Uniform), ("expert", Pusher)):
        episodes = run_controller(ENV_ID, make, num_episodes, REFERENCE_SEED)
        weights = 0.99 ** np.arange(100)
        out[f"{label}_return"] = float(np.mean([ep["rewards"].sum() for ep in episodes]))
        out[f"{label}_value"] = float(np.mean([float(ep["rewards"] @ weights) for ep in episodes]))
    for name, recipe in RECIPES.items():
        episodes = run_controller(
            ENV_ID, lambda r=recipe: operator(r["source"], 0), num_episodes, REFERENCE_SEED
        )
        returns = np.array([ep["rewards"].sum() for ep in episodes])
        success = np.array([ep["rewards"][-1] > 0 for ep in episodes])
        out[name] = {
            "return": float(returns.mean()),
            "normalized": float(
                100
                * (returns.mean() - out["random_return"])
                / (out["expert_return"] - out["random_return"])
            ),
            "success_at_end": float(success.mean()),
        }
    return out


def main() -> None:
    references_main(__doc__.splitlines()[0], measure_references)


if __name__ == "__main__":
    main()
