"""NeoRL-2-style datasets: conservative controllers' logs with a validation split.

NeoRL-2's data come from the controllers a plant would run (PID loops,
conservative RL policies) at 50-80% of the expert's return: about 100k
training transitions from three policies and 20k validation transitions from a
fourth. Its question is whether offline RL beats the behavior at all. Each
recipe here follows that shape on a task of :mod:`offrl.envs.industrial`; the
validation episodes are the dataset's ``validation`` subset (``offrl train
--validation-key validation`` trains on the rest and keeps them for checkpoint
selection), and every policy's episodes are a subset of their own
(``behavior-0`` .. ``behavior-3``).

- ``dmsd-pid`` (``offrl/DMSD-v0``): three soft PID loops without feedforward
  (the springs leave them off target until the integral catches up), each with
  its own gains and Gaussian action noise (std 0.1), 1,000 episodes of 100
  steps; validation: a fourth PID loop, 200 episodes. The expert
  (:class:`DMSDController` with the static feedforward the springs need and
  stiffer gains) knows the nominal model.
- ``pipeline-pi`` (``offrl/Pipeline-v0``): three PI loops on the outlet error
  that feed forward a blend of the current demand and the forecast (so every
  demand change reaches the outlet partly late), 200 episodes of 500 steps;
  validation: a fourth, 40 episodes. The expert feeds the forecast and the
  off-take it infers from two successive observations forward.
- ``hopper-friction`` (``offrl/RandomFrictionHopper-v0``): the suite's shipped
  Hopper SAC policies (:mod:`offrl.suites.behavior`) under friction drawn per
  episode: the expert's deterministic actions with Gaussian noise 0.1 and 0.2
  and the medium policy's stochastic ones (100k steps together); validation: the
  expert with noise 0.15 (20k).

Held-out contexts (the protocol of "The Generalization Gap in Offline RL", Mediratta
et al., 2024, on a parameterized state task): a DMSD *level* is everything its
reset seed draws (targets, masses, load and its timing, start), so a set of reset
seeds is a set of contexts, like Procgen's levels. ``dmsd-contexts-N`` holds 200
episodes (20k transitions) of the expert with Gaussian action noise 0.3 on the
``N`` levels :data:`CONTEXT_FIRST_LEVEL` .. ``+ N - 1`` (episode ``i`` on level
``i mod N``), for N in 1, 2, 4, 8, 16, 64, 200 (diversity at a fixed size);
``dmsd-contexts-N-5k`` and ``-N-80k`` (N = 4, 16) hold 50 and 800 episodes (size
at a fixed diversity). Training-context scores evaluate on those levels
(``offrl eval RUN --seed 5000000 --episodes N``); every run's held-out
episodes (resets 900000000..) are unseen levels.

``python -m offrl.suites.industrial --measure-references`` measures the reference
returns recorded in :mod:`offrl.envs.registry` (uniform random actions and the
experts above, 100 episodes each on the reference reset seeds) and the behavior
policies' own returns.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from offrl.data.dataset import Dataset, concatenate
from offrl.envs import industrial as plants
from offrl.envs.registry import make_env
from offrl.suites.collect import record_episode, run_controller, suite_dataset

BEHAVIOR = "offrl.suites.industrial: scripted PID/PI controllers and noisy SAC policies"
DMSD = "offrl/DMSD-v0"
PIPELINE = "offrl/Pipeline-v0"
HOPPER = "offrl/RandomFrictionHopper-v0"


class DMSDController:
    """A PID loop per mass (``F = kp e - kd v + ki int e``, ``e = x* - x``), with the
    static forces that hold the targets against the springs when ``feedforward``
    (the nominal model: ``F2 = k2 (x2* - x1*)``, ``F1 = k1 x1* - F2``); Gaussian
    noise of std ``noise`` on the action."""

    def __init__(self, kp, kd, ki, feedforward=False, noise=0.0, seed=0):
        self.kp, self.kd, self.ki = float(kp), float(kd), float(ki)
        self.feedforward, self.noise = feedforward, float(noise)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.integral = np.zeros(2)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        observation = np.asarray(observation, np.float64)
        position, velocity, target = observation[:2], observation[2:4], observation[4:6]
        error = target - position
        self.integral = self.integral + error * plants.DMSD_DT
        force = self.kp * error - self.kd * velocity + self.ki * self.integral
        if self.feedforward:
            (k1, k2) = plants.DMSD_SPRINGS
            hold2 = k2 * (target[1] - target[0])
            force = force + np.array([k1 * target[0] - hold2, hold2])
        action = force / plants.DMSD_FORCE
        if self.noise:
            action = action + self.noise * self.rng.standard_normal(2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class PipelineController:
    """Inflow ``q = ref + d_hat + kp e + ki sum e`` with ``e = y* - y`` at the outlet:
    ``ref = w y*_{t+40} + (1 - w) y*_t`` weighs the forecast by ``w = forecast``;
    ``d_hat`` the off-take inferred from two successive observations when
    ``estimate_offtake`` (else 0, left to the integral); Gaussian noise of std
    ``noise`` on the action."""

    def __init__(self, kp=0.0, ki=0.0, forecast=0.0, estimate_offtake=False, noise=0.0, seed=0):
        self.kp, self.ki, self.noise = float(kp), float(ki), float(noise)
        self.forecast, self.estimate_offtake = float(forecast), estimate_offtake
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.integral, self.offtake, self.previous = 0.0, 0.0, None

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        observation = np.asarray(observation, np.float64)
        cells = observation[: plants.PIPE_CELLS]
        demand, forecast, outlet = observation[plants.PIPE_CELLS :]
        if self.estimate_offtake and self.previous is not None:
            # the off-take is what the cell lacks against the pipe's own step
            k = plants.PIPE_OFFTAKE_CELL
            self.offtake = plants.pipe_step(self.previous, 0.0)[k] - cells[k]
        self.previous = cells
        error = demand - outlet
        self.integral += error
        ref = self.forecast * forecast + (1.0 - self.forecast) * demand
        inflow = ref + self.offtake + self.kp * error + self.ki * self.integral
        action = np.array([inflow - 1.0])
        if self.noise:
            action = action + self.noise * self.rng.standard_normal(1)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def dmsd_expert(seed: int = 0, noise: float = 0.0) -> DMSDController:
    return DMSDController(kp=20.0, kd=6.0, ki=10.0, feedforward=True, noise=noise, seed=seed)


def pipeline_expert(seed: int = 0) -> PipelineController:
    return PipelineController(forecast=1.0, estimate_offtake=True, seed=seed)


#: The behavior controllers: three for training, the last for validation.
DMSD_BEHAVIORS = (
    dict(kp=3.0, kd=1.0, ki=0.2, noise=0.1),
    dict(kp=4.0, kd=2.0, ki=1.0, noise=0.1),
    dict(kp=6.0, kd=3.0, ki=0.5, noise=0.1),
    dict(kp=2.0, kd=1.0, ki=1.0, noise=0.1),
)
PIPELINE_BEHAVIORS = (
    dict(kp=0.3, ki=0.01, forecast=0.6, noise=0.05),
    dict(kp=0.1, ki=0.02, forecast=0.6, noise=0.05),
    dict(kp=0.5, ki=0.005, forecast=0.5, noise=0.05),
    dict(kp=0.2, ki=0.015, forecast=0.7, noise=0.05),
)
#: (episode noise, policy level, steps) of the Hopper behaviors; last for validation.
HOPPER_BEHAVIORS = (
    dict(level="expert", noise=0.1, steps=40_000),
    dict(level="expert", noise=0.2, steps=30_000),
    dict(level="medium", noise=0.0, steps=30_000),
    dict(level="expert", noise=0.15, steps=20_000),
)

#: The first level (reset seed) of the held-out-context datasets' training contexts.
CONTEXT_FIRST_LEVEL = 5_000_000
CONTEXT_NOISE = 0.3

RECIPES = {
    "dmsd-pid": dict(
        env_id=DMSD,
        behaviors=DMSD_BEHAVIORS,
        train_episodes=(334, 333, 333),
        validation_episodes=200,
        seed=101,
    ),
    "pipeline-pi": dict(
        env_id=PIPELINE,
        behaviors=PIPELINE_BEHAVIORS,
        train_episodes=(67, 67, 66),
        validation_episodes=40,
        seed=202,
    ),
    "hopper-friction": dict(env_id=HOPPER, behaviors=HOPPER_BEHAVIORS, seed=303),
}
for _contexts, _episodes, _suffix in (
    (1, 200, ""),
    (2, 200, ""),
    (4, 200, ""),
    (8, 200, ""),
    (16, 200, ""),
    (64, 200, ""),
    (200, 200, ""),
    (4, 50, "-5k"),
    (4, 800, "-80k"),
    (16, 50, "-5k"),
    (16, 800, "-80k"),
):
    RECIPES[f"dmsd-contexts-{_contexts}{_suffix}"] = dict(
        env_id=DMSD,
        contexts=_contexts,
        episodes=_episodes,
        first_level=CONTEXT_FIRST_LEVEL,
        noise=CONTEXT_NOISE,
        seed=400 + _contexts + _episodes,
    )


def behavior(name: str) -> str:
    recipe = RECIPES[name]
    if "contexts" in recipe:
        return (
            f"offrl.suites.industrial.dmsd_expert with Gaussian action noise {recipe['noise']} "
            f"on {recipe['contexts']} levels (reset seeds {recipe['first_level']}.."
            f"{recipe['first_level'] + recipe['contexts'] - 1}, episode i on level i mod "
            f"{recipe['contexts']})"
        )
    *training, validation = (json.dumps(b) for b in recipe["behaviors"])
    return f"{BEHAVIOR}: training {'; '.join(training)}; validation {validation}"


def controller(env_id: str, settings: dict, seed: int):
    if env_id == DMSD:
        return DMSDController(**settings, seed=seed)
    return PipelineController(**settings, seed=seed)


def _hopper_parts(recipe: dict, num_steps: int | None) -> list[Dataset]:
    import jax

    from offrl.suites.collect import record_steps_vectorized

    parts = []
    for index, part in enumerate(recipe["behaviors"]):
        seed = recipe["seed"] * 10 + index
        act = hopper_policy(part["level"], part["noise"], seed)
        key = [jax.random.PRNGKey(seed)]

        def choose(observations, act=act, key=key):
            key[0], act_key = jax.random.split(key[0])
            return act(observations[None], act_key)[0]

        steps = part["steps"] if num_steps is None else max(1, num_steps * part["steps"] // 120_000)
        episodes = record_steps_vectorized(lambda: make_env(HOPPER), choose, steps, seed)
        parts.append(suite_dataset("part", HOPPER, episodes))
    return parts


def context_episodes(recipe: dict, num_steps: int | None = None) -> list[dict]:
    """The noisy expert's episodes on the recipe's levels (episode ``i`` resets with
    ``first_level + i mod contexts``); ``num_steps`` shrinks it (tests)."""
    count = recipe["episodes"]
    if num_steps is not None:
        count = max(1, num_steps // plants.DMSD_STEPS)
    env = make_env(recipe["env_id"])
    policy = dmsd_expert(seed=recipe["seed"], noise=recipe["noise"])
    episodes = []
    for i in range(count):
        policy.reset()
        level = recipe["first_level"] + i % recipe["contexts"]
        episodes.append(record_episode(env, policy, level))
    env.close()
    return episodes


def build(name: str, num_steps: int | None = None) -> Dataset:
    """Build a recipe (deterministic); ``num_steps`` shrinks it (tests)."""
    if name not in RECIPES:
        raise KeyError(f"unknown industrial recipe '{name}'; available: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    env_id = recipe["env_id"]
    if "contexts" in recipe:
        return suite_dataset(name, env_id, context_episodes(recipe, num_steps))
    if env_id == HOPPER:
        parts = _hopper_parts(recipe, num_steps)
    else:
        counts = [*recipe["train_episodes"], recipe["validation_episodes"]]
        if num_steps is not None:  # a smaller build for tests, same proportions
            horizon = make_env(env_id).spec.max_episode_steps
            total = max(len(counts), num_steps // horizon)
            counts = [max(1, total * c // sum(counts)) for c in counts]
        parts = []
        for index, (settings, count) in enumerate(zip(recipe["behaviors"], counts, strict=True)):
            seed = recipe["seed"] * 10 + index
            episodes = run_controller(
                env_id,
                lambda settings=settings, seed=seed: controller(env_id, settings, seed),
                count,
                first_reset_seed=seed * 100_000,
            )
            parts.append(suite_dataset("part", env_id, episodes))
    data = concatenate(parts)
    subsets, start = {}, 0
    for index, part in enumerate(parts):
        subsets[f"behavior-{index}"] = list(range(start, start + part.num_episodes))
        start += part.num_episodes
    # the last policy's episodes are the validation set, all before them the training set
    subsets["validation"] = subsets[f"behavior-{len(parts) - 1}"]
    subsets["train"] = list(range(subsets["validation"][0]))
    return suite_dataset(name, env_id, data).with_subsets(subsets)


def _returns(env_id: str, policy, num_episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and discounted values (0.99) of a batched policy on the reference resets."""
    from offrl.envs.rollout import REFERENCE_SEED, evaluate

    result = evaluate(policy, env_id, 1, num_episodes, seed=REFERENCE_SEED, max_parallel=25)
    return result.returns[0], result.discounted[0]


def _scripted(env_id: str, make_controller):
    """A scripted controller as a batched policy (one controller per environment, reset
    whenever a new block of episodes starts)."""
    controllers: list = []

    class Batched:
        def reset_history(self):
            controllers.clear()

        def record(self, actions, rewards):
            pass

        def __call__(self, observations, key):
            rows = observations[0]
            while len(controllers) < len(rows):
                controllers.append(make_controller())
            return np.stack([c(o) for c, o in zip(controllers, rows, strict=False)])[None]

    return Batched()


def hopper_policy(level: str, noise: float, seed: int = 0):
    """The shipped Hopper SAC ``level`` as a batched policy: its stochastic actions
    (``noise == 0``) or its deterministic ones plus Gaussian noise."""
    from offrl.suites import behavior as shipped

    policy = shipped.load_policy_file(shipped.behavior_dir("hopper") / f"{level}.npz")
    rng = np.random.default_rng(seed)

    def act(observations, key):
        actions = np.asarray(policy.act(observations[0], key, noise > 0))
        if noise:
            actions = actions + noise * rng.standard_normal(actions.shape)
        return np.clip(actions, -1.0, 1.0)[None]

    return act


def measure_references(num_episodes: int = 100, tasks=(DMSD, PIPELINE)) -> dict:
    """Random and expert returns (and discounted values, 0.99) on the reference reset
    seeds, each behavior's mean return and normalized score on the same seeds, and on
    the DMSD the episodes' energy against the budget."""
    out = {}
    for env_id in tasks:
        env = make_env(env_id)
        rng = np.random.default_rng(0)
        shape = env.action_space.shape

        def random(observations, key, rng=rng, shape=shape):
            return rng.uniform(-1.0, 1.0, observations.shape[:2] + shape)

        if env_id == HOPPER:
            expert = hopper_policy("expert", 0.0)
            behaviors = [hopper_policy(b["level"], b["noise"]) for b in HOPPER_BEHAVIORS]
        else:
            recipe = next(r for r in RECIPES.values() if r["env_id"] == env_id)
            expert = _scripted(env_id, dmsd_expert if env_id == DMSD else pipeline_expert)
            behaviors = [
                _scripted(env_id, lambda s=s, e=env_id: controller(e, s, 0))
                for s in recipe["behaviors"]
            ]
        random_returns, random_values = _returns(env_id, random, num_episodes)
        expert_returns, expert_values = _returns(env_id, expert, num_episodes)
        low, high = float(random_returns.mean()), float(expert_returns.mean())
        out[env_id] = {
            "random_return": low,
            "expert_return": high,
            "random_value": float(random_values.mean()),
            "expert_value": float(expert_values.mean()),
            "behaviors": {},
        }
        for index, policy in enumerate(behaviors):
            mean = float(_returns(env_id, policy, num_episodes)[0].mean())
            out[env_id]["behaviors"][f"behavior-{index}"] = {
                "return": mean,
                "normalized": 100 * (mean - low) / (high - low),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure-references", action="store_true")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument(
        "--tasks", nargs="+", default=[DMSD, PIPELINE], choices=[DMSD, PIPELINE, HOPPER]
    )
    args = parser.parse_args()
    if args.measure_references:
        print(json.dumps(measure_references(args.episodes, tuple(args.tasks)), indent=2))


if __name__ == "__main__":
    main()
