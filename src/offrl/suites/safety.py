"""Safety datasets: mixtures of constraint-ignoring, safe and random behaviour
with the safety margin ``h(s)`` and the cost stored at every step.

Built like the rest of the suite (deterministic, cached as Minari datasets,
with cards); the margin travels in ``infos["margin"]``, the cost in
``infos["cost"]`` (see :mod:`offrl.envs.safety`).

Point robot (``offrl/PointRobot-v0``), scripted behaviours:

- ``GoalSeeker``: a PD law straight at the goal, through the middle hazard
  (constraint-ignoring, the highest return).
- ``CautiousSeeker``: the goal seeker behind a hand-written braking-distance
  control barrier function (safe, slower: it brakes and slides around).
- uniform random actions.

Recipes (100 steps per episode):

- ``pointrobot-mixed``: 1,000 episodes (100k steps): 40% goal seeker and 40%
  safe navigator, each with Gaussian action noise (std 0.3), and 20% uniform
  random. The data a barrier is learned from and a nominal policy trained on.
- ``pointrobot-seeker`` / ``pointrobot-safe``: 200 episodes of one scripted
  behaviour each (noise 0.3), for comparisons.

Velocity-constrained locomotion (``offrl/<Task>Velocity-v0``), from the
suite's shipped SAC behavior policies (:mod:`offrl.suites.behavior`), which
ignore the limit:

- ``hopper-velocity-mixed``: 300k steps: 100k each of the suite's
  ``hopper-expert`` (far above the 0.74 m/s limit), ``hopper-medium`` and
  ``hopper-random`` recipes (the same collection, cut at 100k), with the margin
  and the cost computed from the observations exactly as the task's wrapper
  reports them.

``python -m offrl.suites.safety --measure-references`` measures the point
robot's reference returns recorded in :mod:`offrl.envs.registry`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from offrl.data.dataset import Dataset
from offrl.envs.safety import POINT_ROBOT_GOAL, POINT_ROBOT_HAZARDS, PointRobotEnv
from offrl.suites.collect import record_episode, references_main, suite_dataset

POINT_ROBOT = "offrl/PointRobot-v0"


def _pd(position, velocity, target, kp: float = 1.5, kd: float = 1.2) -> np.ndarray:
    return np.clip(kp * (target - position) - kd * velocity, -1.0, 1.0)


class GoalSeeker:
    """PD control straight at the goal, ignoring the hazards."""

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        position, velocity = np.asarray(observation[:2], np.float64), observation[2:]
        return _pd(position, velocity, POINT_ROBOT_GOAL).astype(np.float32)


class CautiousSeeker:
    """The goal seeker behind a hand-written control barrier function: a skilled,
    safe operator that brakes before the hazards and slides around them.

    The barrier is the braking-distance margin ``h - max(0, -r_dot)^2 / (2 b) -
    buffer`` (``r_dot``: the rate of change of the distance to a hazard's centre,
    ``b = 1.5`` m/s^2 of the robot's 2), smoothly minimized over the hazards, with
    the robot's true dynamics in the CBF-QP (:func:`offrl.safety.filter.cbf_filter`).
    """

    def __init__(self, brake: float = 1.5, buffer: float = 0.1):
        import jax
        import jax.numpy as jnp

        from offrl.safety.filter import cbf_filter

        hazards = jnp.asarray(POINT_ROBOT_HAZARDS, jnp.float32)

        def barrier(x):
            offset = x[:2] - hazards[:, :2]
            distance = jnp.linalg.norm(offset, axis=-1)
            closing = jnp.maximum(0.0, -(offset @ x[2:]) / distance)
            margin = distance - hazards[:, 2] - closing**2 / (2 * brake)
            return -jax.nn.logsumexp(-20.0 * margin) / 20.0 - buffer

        def dynamics(x):
            drift = jnp.concatenate([x[2:], -PointRobotEnv.damping * x[2:]])
            control = jnp.zeros((4, 2)).at[2:].set(PointRobotEnv.max_acceleration * jnp.eye(2))
            return drift, control

        self._filter = jax.jit(
            lambda x, u: cbf_filter(barrier, dynamics, x, u, -jnp.ones(2), jnp.ones(2))[0]
        )
        self._seeker = GoalSeeker()

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        nominal = self._seeker(observation)
        return np.asarray(self._filter(np.asarray(observation, np.float32), nominal), np.float32)


def collect_point_robot(
    behavior: str, num_episodes: int, seed: int, noise_std: float = 0.0, first_reset_seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """Roll out one point-robot behaviour deterministically (episode ``i`` resets
    with ``first_reset_seed + i``)."""
    env = gym.make(POINT_ROBOT)
    rng = np.random.default_rng(seed)
    controller = {"seeker": GoalSeeker, "safe": CautiousSeeker}.get(behavior)
    controller = controller() if controller else None
    episodes = []
    for i in range(num_episodes):

        def choose_action(observation):
            if controller is None:
                return rng.uniform(-1.0, 1.0, 2).astype(np.float32)
            action = controller(observation)
            if noise_std > 0:
                action = action + noise_std * rng.standard_normal(2)
            return np.clip(action, -1.0, 1.0).astype(np.float32)

        episodes.append(record_episode(env, choose_action, first_reset_seed + i))
    env.close()
    return episodes


RECIPES = {
    "hopper-velocity-mixed": {
        "task": "hopper-velocity",
        "env_id": "offrl/HopperVelocity-v0",
        "locomotion_parts": ["hopper-expert", "hopper-medium", "hopper-random"],
        "steps_per_part": 100_000,
    },
    "pointrobot-mixed": {
        "task": "pointrobot",
        "parts": [
            dict(behavior="seeker", num_episodes=400, seed=11, noise_std=0.3),
            dict(behavior="safe", num_episodes=400, seed=12, noise_std=0.3, first_reset_seed=1000),
            dict(behavior="random", num_episodes=200, seed=13, first_reset_seed=2000),
        ],
    },
    "pointrobot-seeker": {
        "task": "pointrobot",
        "parts": [dict(behavior="seeker", num_episodes=200, seed=21, noise_std=0.3)],
    },
    "pointrobot-safe": {
        "task": "pointrobot",
        "parts": [dict(behavior="safe", num_episodes=200, seed=22, noise_std=0.3)],
    },
}

BEHAVIOR = (
    "offrl.suites.safety: scripted GoalSeeker (constraint-ignoring) and CautiousSeeker "
    "(the seeker behind a hand-written braking-distance CBF) with Gaussian action noise, and "
    "uniform random actions"
)


def build(name: str) -> Dataset:
    """Build a recipe into a host-side dataset (validated). Deterministic."""

    if name not in RECIPES:
        raise KeyError(f"unknown safety recipe '{name}'; available: {', '.join(RECIPES)}")
    if "locomotion_parts" in RECIPES[name]:
        return _build_velocity(name)
    episodes = [ep for part in RECIPES[name]["parts"] for ep in collect_point_robot(**part)]
    return suite_dataset(name, POINT_ROBOT, episodes)


def _build_velocity(name: str) -> Dataset:
    """Locomotion parts with ``h = limit - v_x`` of each step's state and the cost of
    the state it reaches, as :class:`offrl.envs.safety.VelocityConstraint` reports."""
    from offrl.data.dataset import concatenate
    from offrl.envs.safety import margin_function
    from offrl.suites import locomotion

    recipe = RECIPES[name]
    parts = [
        locomotion.build(part, recipe["steps_per_part"]) for part in recipe["locomotion_parts"]
    ]
    dataset = concatenate(parts)
    margin = margin_function(recipe["env_id"])
    dataset = dataset.replace(
        margins=margin(dataset.observations).astype(np.float32),
        costs=(margin(dataset.next_observations) < 0).astype(np.float32),
    )
    return suite_dataset(name, recipe["env_id"], dataset)


def behavior(name: str) -> str:
    """The dataset card's description of who acted in recipe ``name``."""
    recipe = RECIPES[name]
    if "locomotion_parts" in recipe:
        from offrl.suites import locomotion

        return " + ".join(
            f"the first {recipe['steps_per_part']} steps of {part} ({locomotion.behavior(part)})"
            for part in recipe["locomotion_parts"]
        )
    return BEHAVIOR


def measure_references(num_episodes: int = 100) -> dict[str, float]:
    """Random and expert (the noiseless goal seeker) returns, plus the safe
    navigator's, and each one's violation rate, over ``num_episodes`` episodes."""
    discounts = 0.99 ** np.arange(100)
    out: dict[str, float] = {"discount": 0.99}
    for label, behavior in (("random", "random"), ("expert", "seeker"), ("safe", "safe")):
        episodes = collect_point_robot(behavior, num_episodes, seed=0)
        out[f"{label}_return"] = float(np.mean([ep["rewards"].sum() for ep in episodes]))
        out[f"{label}_value"] = float(
            np.mean([np.sum(ep["rewards"] * discounts[: len(ep["rewards"])]) for ep in episodes])
        )
        out[f"{label}_violation_rate"] = float(np.mean([ep["costs"].mean() for ep in episodes]))
    return out


def main() -> None:
    references_main(__doc__.splitlines()[0], measure_references)


if __name__ == "__main__":
    main()
