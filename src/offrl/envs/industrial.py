"""Tasks shaped like industrial deployments (NeoRL-2's challenges), offrl's own.

NeoRL-2 (Gao et al., 2025) collects its benchmark from tasks whose data look
like a plant's logs: conservative controllers, delays, exogenous disturbances
and global constraints. offrl does not use the ``neorl2`` package (it pins
Gymnasium 0.29 and PyTorch and omits its reward files); these tasks are written
here, each a small NumPy simulation with its challenge stated below. Every
random quantity of an episode (its *level*: targets, masses, loads) is drawn
from the reset seed, so ``reset(seed=s)`` reproduces an episode exactly and a
set of reset seeds is a set of contexts (the held-out-context protocol of
:mod:`offrl.suites.industrial`).

- ``offrl/DMSD-v0``: a double mass-spring-damper driven to target positions.
  Challenges: an **exogenous load** (a force on the second mass, unobserved,
  switched on at a random step) and a **global cost constraint** (the episode's
  actuator energy ``sum_t ||F_t||^2 dt`` against :data:`DMSD_ENERGY_BUDGET`,
  reported per step as ``info["cost"]``). Unobserved masses vary per episode.
- ``offrl/Pipeline-v0``: flow through a pipe with a **transport delay**: the
  inflow set at the inlet reaches the outlet :data:`PIPE_CELLS` steps later,
  with some dispersion and an unobserved off-take half-way (an exogenous
  withdrawal); the outlet flow must follow a demand that changes at random
  times.
- ``offrl/RandomFrictionHopper-v0``: Gymnasium's ``Hopper-v5`` whose sliding
  friction is drawn per episode (an **exogenous, unobserved** physical change).

Delays of the action on any task are the ``@delay=k`` modifier
(:mod:`offrl.envs.partial`), exogenous action disturbances on any task the
``@wind=s`` modifier (:mod:`offrl.envs.disturbance`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

# ------------------------------------------------------------------ DMSD
DMSD_DT = 0.05
DMSD_SUBSTEPS = 5
DMSD_SPRINGS = (2.0, 2.0)  # wall-mass 1, mass 1-mass 2 (N/m)
DMSD_DAMPERS = (0.3, 0.3)
DMSD_FORCE = 5.0  # |F_i| <= 5 N: action 1 is 5 N
DMSD_TARGET = 0.8  # targets are drawn from [-0.8, 0.8]
DMSD_MASSES = (0.7, 1.3)  # each mass drawn from this range (kg), unobserved
DMSD_LOAD = 1.0  # the load on mass 2: a force in [-1, 1] N
DMSD_LOAD_STEPS = (20, 60)  # switched on at a step drawn from this range
#: The episode's actuator-energy budget (J-like units, ``sum ||F||^2 dt``): the scripted
#: expert of :mod:`offrl.suites.industrial` stays within it on about half the episodes (its
#: median is 26), the soft PID loops of the behavior data on about 94% of theirs.
DMSD_ENERGY_BUDGET = 30.0
DMSD_STEPS = 100
#: The reward's tolerance: a mass 0.25 off its target earns exp(-1) of the step's reward.
DMSD_TOLERANCE = 0.25


class DMSDEnv(gym.Env):
    """Two masses on a line: a spring and a damper tie mass 1 to the wall and mass 2
        to mass 1; a force acts on each.

        Observation ``(x1, x2, v1, v2, x1*, x2*)``; action ``u in [-1, 1]^2``, the forces
        ``F = 5 u`` N. Every ``dt = 0.05`` s (five semi-implicit Euler substeps)::

            m1 a1 = F1 - k1 x1 - c1 v1 + k2 (x2 - x1) + c2 (v2 - v1)
            m2 a2 = F2 + L(t) - k2 (x2 - x1) - c2 (v2 - v1)

        with ``k = 2``, ``c = 0.3`` (lightly damped: a careless controller rings). Per
        episode (from the reset seed): targets ``x* ~ U[-0.8, 0.8]^2``, masses ``m ~
        U[0.7, 1.3]`` (unobserved), a load ``L ~ U[-1, 1]`` N on mass 2 switched on at a
        step drawn from ``[20, 60)`` (unobserved), start positions ``U[-0.2, 0.2]`` at
        rest. Reward ``mean_i exp(-((x_i - x_i*) / 0.25)^2) - 0.01 ||u||^2`` (at most 1 a
    step: precision pays, a random policy earns about 20 an episode). Each step's
        ``info["cost"]`` is its actuator energy ``||F||^2 dt``; the episode's budget is
        :data:`DMSD_ENERGY_BUDGET`. 100 steps (truncation only).
    """

    metadata = {"render_modes": []}

    def __init__(self):
        bound = np.float32(10.0)
        self.observation_space = gym.spaces.Box(-bound, bound, (6,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._state = np.zeros(4)
        self._target = np.zeros(2)
        self._masses = np.ones(2)
        self._load, self._load_step, self._t = 0.0, 0, 0

    def level(self) -> dict:
        """The episode's drawn context (for tests and the held-out-context tables)."""
        return {
            "target": self._target.tolist(),
            "masses": self._masses.tolist(),
            "load": self._load,
            "load_step": self._load_step,
        }

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._state, self._target]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._target = rng.uniform(-DMSD_TARGET, DMSD_TARGET, 2)
        self._masses = rng.uniform(*DMSD_MASSES, 2)
        self._load = float(rng.uniform(-DMSD_LOAD, DMSD_LOAD))
        self._load_step = int(rng.integers(*DMSD_LOAD_STEPS))
        self._state = np.concatenate([rng.uniform(-0.2, 0.2, 2), np.zeros(2)])
        self._t = 0
        return self._obs(), {"cost": 0.0}

    def step(self, action):
        u = np.clip(np.asarray(action, np.float64).reshape(2), -1.0, 1.0)
        force = DMSD_FORCE * u
        load = self._load if self._t >= self._load_step else 0.0
        (k1, k2), (c1, c2) = DMSD_SPRINGS, DMSD_DAMPERS
        x1, x2, v1, v2 = self._state
        h = DMSD_DT / DMSD_SUBSTEPS
        for _ in range(DMSD_SUBSTEPS):
            coupling = k2 * (x2 - x1) + c2 * (v2 - v1)
            a1 = (force[0] - k1 * x1 - c1 * v1 + coupling) / self._masses[0]
            a2 = (force[1] + load - coupling) / self._masses[1]
            v1, v2 = v1 + h * a1, v2 + h * a2
            x1, x2 = x1 + h * v1, x2 + h * v2
        self._state = np.clip(np.array([x1, x2, v1, v2]), -10.0, 10.0)
        self._t += 1
        error = self._state[:2] - self._target
        reward = float(np.mean(np.exp(-((error / DMSD_TOLERANCE) ** 2))) - 0.01 * np.sum(u**2))
        cost = float(np.sum(force**2) * DMSD_DT)
        return self._obs(), reward, False, False, {"cost": cost}


# ------------------------------------------------------------------ pipeline
PIPE_CELLS = 40
PIPE_DISPERSION = 0.15
PIPE_OFFTAKE_CELL = 20
PIPE_OFFTAKE = (0.0, 0.3)
PIPE_DEMAND = (0.3, 1.7)
PIPE_CHANGE_STEPS = (60, 140)
PIPE_STEPS = 500


def pipe_step(cells: np.ndarray, inflow: float) -> np.ndarray:
    """One step of the pipe without its off-take: the contents move one cell down
    (``inflow`` enters cell 0), then each cell mixes symmetrically with its
    neighbours, ``c_i <- (1 - D) c_i + D/2 (c_{i-1} + c_{i+1})`` (the end cells with
    themselves), so the contents still travel one cell a step on average and an
    inflow change reaches the outlet 40 steps later, spread over a few steps."""
    moved = np.concatenate([[inflow], cells[:-1]])
    padded = np.concatenate([moved[:1], moved, moved[-1:]])
    return (1.0 - PIPE_DISPERSION) * moved + PIPE_DISPERSION / 2 * (padded[:-2] + padded[2:])


class PipelineEnv(gym.Env):
    """Flow along a pipe of 40 cells: what enters at the inlet reaches the outlet 40
    steps later (a transport delay), the outlet flow must meet a changing demand.

    Observation (43 values): the flow in each cell (inlet first, 40 values), the
    demand ``y*_t``, the demand forecast ``y*_{t+40}`` (the production schedule
    is known one transport time ahead) and the outlet flow ``y_t``. Action ``u in
    [-1, 1]``: the inflow ``q = 1 + u`` (0..2). Each step the contents move one cell
    down (plug flow), then mix with their upstream neighbour (dispersion ``0.15``),
    and an unobserved off-take ``d ~ U[0, 0.3]`` (drawn per episode) leaves at cell
    20, so the outlet carries ``q`` of 40 steps ago, smoothed, minus ``d``. The
    demand starts at a level drawn from ``[0.3, 1.7]`` and jumps to a new one every
    60-140 steps (times and levels drawn from the reset seed); the pipe starts
    filled at another drawn level. Reward ``-|y - y*|``. 500 steps (truncation
    only). A controller that waits for the outlet's error reacts 40 steps late; one
    that reads the forecast and the pipe's contents acts on what is on its way.
    """

    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 3.0, (PIPE_CELLS + 3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._cells = np.zeros(PIPE_CELLS)
        self._schedule = np.zeros(PIPE_STEPS + PIPE_CELLS + 1)
        self._offtake, self._t = 0.0, 0

    def level(self) -> dict:
        changes = np.flatnonzero(np.diff(self._schedule[: PIPE_STEPS + 1])) + 1
        return {"offtake": self._offtake, "demand_changes": changes.tolist()}

    def _obs(self) -> np.ndarray:
        demand, forecast = self._schedule[self._t], self._schedule[self._t + PIPE_CELLS]
        return np.concatenate([self._cells, [demand, forecast, self._cells[-1]]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._offtake = float(rng.uniform(*PIPE_OFFTAKE))
        schedule, t = np.empty(self._schedule.size), 0
        while t < schedule.size:
            length = int(rng.integers(*PIPE_CHANGE_STEPS))
            schedule[t : t + length] = rng.uniform(*PIPE_DEMAND)
            t += length
        self._schedule = schedule
        fill = rng.uniform(*PIPE_DEMAND)
        self._cells = np.full(PIPE_CELLS, fill)
        self._cells[PIPE_OFFTAKE_CELL:] -= self._offtake
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        u = float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -1.0, 1.0))
        cells = pipe_step(self._cells, 1.0 + u)
        cells[PIPE_OFFTAKE_CELL] -= self._offtake
        self._cells = cells
        self._t = min(self._t + 1, PIPE_STEPS)
        reward = float(-abs(self._cells[-1] - self._schedule[self._t]))
        return self._obs(), reward, False, False, {}


# ------------------------------------------------------------------ random friction
HOPPER_FRICTION = (0.5, 1.5)


class RandomFriction(gym.Wrapper):
    """A MuJoCo task whose sliding friction is multiplied, at every reset, by a
    factor drawn from ``[0.5, 1.5]`` with the reset's generator (unobserved)."""

    def __init__(self, env: gym.Env, low: float = HOPPER_FRICTION[0], high: float = 1.5):
        super().__init__(env)
        self._base = env.unwrapped.model.geom_friction[:, 0].copy()
        self.low, self.high = float(low), float(high)
        self.factor = 1.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x5EED])
        elif not hasattr(self, "_rng"):
            self._rng = np.random.default_rng()
        self.factor = float(self._rng.uniform(self.low, self.high))
        self.env.unwrapped.model.geom_friction[:, 0] = self._base * self.factor
        observation, info = self.env.reset(seed=seed, options=options)
        return observation, {**info, "friction": self.factor}


def make_random_friction_hopper(**kwargs) -> gym.Env:
    return RandomFriction(gym.make("Hopper-v5", **kwargs))


#: Task ids, entry points and time limits.
INDUSTRIAL_ENVS = {
    "offrl/DMSD-v0": ("offrl.envs.industrial:DMSDEnv", DMSD_STEPS),
    "offrl/Pipeline-v0": ("offrl.envs.industrial:PipelineEnv", PIPE_STEPS),
    "offrl/RandomFrictionHopper-v0": (
        "offrl.envs.industrial:make_random_friction_hopper",
        1000,
    ),
}


def register() -> None:
    """Register the tasks with Gymnasium (idempotent), and the pushing task of
    :mod:`offrl.envs.push`."""
    from offrl.envs import push

    push.register()
    for env_id, (entry_point, steps) in INDUSTRIAL_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=steps)
