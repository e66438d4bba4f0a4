"""The tiny Pendulum suite: seconds to build, for tests and the quickstart.

The expert is a scripted swing-up controller (energy pumping far from the top,
a PD law near it) on Gymnasium's ``Pendulum-v1`` (``theta'' = 15 sin(theta) +
3 u``, ``|u| <= 2``): about -145 mean return over 100 episodes, against about
-1,200 for a uniform random policy.

Recipes (each 100 episodes of 200 steps unless stated):

- ``pendulum-expert``: the controller.
- ``pendulum-random``: uniform random actions.
- ``pendulum-mixed``: 30% controller with Gaussian action noise (std 0.3),
  30% controller acting at random 50% of the time, 40% uniform random; the
  data offline RL should beat BC on.

``python -m offrl.suites.pendulum --measure-references`` measures the reference
returns recorded in :mod:`offrl.envs.registry`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from offrl.data.dataset import Dataset
from offrl.envs.registry import make_env
from offrl.suites.collect import record_episode, references_main, suite_dataset

ENV_ID = "Pendulum-v1"
BEHAVIOR = (
    "offrl.suites.pendulum: scripted swing-up controller (SwingUpController) and uniform "
    "random actions"
)
_GRAVITY_TERM = 15.0  # 3 g / (2 l) with g = 10, l = 1


class SwingUpController:
    """Energy-pumping swing-up with a PD catch near the upright position
    (``gravity_term``: ``3 g / (2 l)`` of the pendulum it is tuned for)."""

    def __init__(self, gravity_term: float = _GRAVITY_TERM):
        self.gravity_term = gravity_term

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        cos_theta, sin_theta, velocity = (float(x) for x in observation)
        theta = np.arctan2(sin_theta, cos_theta)
        if cos_theta > 0.85:
            torque = -(12.0 * theta + 2.5 * velocity)
        else:
            energy = 0.5 * velocity**2 + self.gravity_term * cos_theta
            direction = np.sign(velocity) if abs(velocity) > 1e-3 else 1.0
            torque = 1.5 * (self.gravity_term - energy) * direction
        return np.clip(np.array([torque], np.float32), -2.0, 2.0)


def collect(
    behavior: str,
    num_episodes: int,
    seed: int,
    noise_std: float = 0.0,
    random_fraction: float = 0.0,
    first_reset_seed: int = 0,
    env_id: str = ENV_ID,
) -> list[dict[str, np.ndarray]]:
    """Roll out one behavior deterministically (in ``env_id``: Pendulum, or Pendulum
    with modifiers such as ``@delay=3``).

    Episode ``i`` resets with ``first_reset_seed + i``.
    """
    env = make_env(env_id) if env_id != ENV_ID else gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    controller = SwingUpController()
    low, high = env.action_space.low, env.action_space.high

    def choose_action(observation):
        if behavior == "random" or rng.random() < random_fraction:
            return rng.uniform(low, high).astype(np.float32)
        action = controller(observation[:3])  # (a delayed task appends pending actions)
        if noise_std > 0:
            action = action + noise_std * rng.standard_normal(action.shape)
        return np.clip(action, low, high).astype(np.float32)

    episodes = [
        record_episode(env, choose_action, first_reset_seed + i) for i in range(num_episodes)
    ]
    env.close()
    return episodes


RECIPES = {
    "pendulum-expert": [dict(behavior="expert", num_episodes=100, seed=1)],
    "pendulum-random": [dict(behavior="random", num_episodes=100, seed=2)],
    "pendulum-mixed": [
        dict(behavior="expert", num_episodes=30, seed=3, noise_std=0.3),
        dict(
            behavior="expert", num_episodes=30, seed=4, random_fraction=0.5, first_reset_seed=1000
        ),
        dict(behavior="random", num_episodes=40, seed=5, first_reset_seed=2000),
    ],
}
#: Pendulum whose torques act 3 steps (0.15 s) late, the observation carrying the
#: pending torques (offrl.envs.partial): the swing-up controller, noisy and mixed with
#: random torques as in pendulum-mixed, but blind to the delay (it reads the angle and
#: velocity only), so its catch often overshoots.
DELAYED_ENV_ID = "Pendulum-v1@delay=3"
RECIPES["pendulum-delayed-mixed"] = [
    {**part, "env_id": DELAYED_ENV_ID} for part in RECIPES["pendulum-mixed"]
]


def build(name: str) -> Dataset:
    """Build a recipe into a host-side dataset (validated). Deterministic."""

    if name not in RECIPES:
        raise KeyError(f"unknown Pendulum recipe '{name}'; available: {', '.join(RECIPES)}")
    episodes = [ep for part in RECIPES[name] for ep in collect(**part)]
    return suite_dataset(name, RECIPES[name][0].get("env_id", ENV_ID), episodes)


def measure_references(num_episodes: int = 100) -> dict[str, float]:
    expert = collect("expert", num_episodes, seed=0)
    random = collect("random", num_episodes, seed=0)
    discounts = 0.99 ** np.arange(200)

    def value(episodes):
        return float(
            np.mean([np.sum(ep["rewards"] * discounts[: len(ep["rewards"])]) for ep in episodes])
        )

    return {
        "expert_return": float(np.mean([ep["rewards"].sum() for ep in expert])),
        "random_return": float(np.mean([ep["rewards"].sum() for ep in random])),
        "expert_value": value(expert),
        "random_value": value(random),
        "discount": 0.99,
    }


def main() -> None:
    references_main(__doc__.splitlines()[0], measure_references)


if __name__ == "__main__":
    main()
