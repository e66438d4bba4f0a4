"""D4RL-style locomotion datasets on Gymnasium MuJoCo v5 (Hopper, HalfCheetah, Walker2d).

Levels follow D4RL:

- ``random``: 1M transitions of uniform random actions;
- ``medium`` / ``expert``: 1M transitions of the shipped SAC policy at that
  level (:mod:`offrl.suites.behavior`), actions sampled from the policy's
  tanh-Gaussian (as D4RL collected them), 16 environments in lock step;
- ``medium-replay``: the SAC run's replay buffer up to its medium checkpoint,
  regenerated from the shipped action log and checked against its SHA-256;
- ``medium-expert``: ``medium`` then ``expert`` (2M transitions).

Collection is deterministic: episode ``i`` resets with ``seed * 1_000_003 + i``;
random actions come from ``numpy.random.default_rng(seed)``, policy actions
from ``jax.random.PRNGKey(seed)``; episodes end at the environment's
termination or its 1,000-step time limit, and the last one is cut at the
dataset size (a truncation). A level whose policy is not shipped yet raises
:class:`~offrl.suites.behavior.BehaviorError` naming the missing file.
"""

from __future__ import annotations

import numpy as np

from offrl.data.dataset import Dataset, DatasetInfo, from_episodes
from offrl.envs.registry import make_env
from offrl.suites.collect import record_steps

ENVIRONMENTS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
BEHAVIOR = "offrl.suites.locomotion: uniform random actions over the action space"

RECIPES: dict[str, dict] = {}
for _task in ENVIRONMENTS:
    RECIPES[f"{_task}-random"] = dict(task=_task, level="random", num_steps=1_000_000, seed=11)
    for _level, _seed in (("medium", 21), ("expert", 31)):
        RECIPES[f"{_task}-{_level}"] = dict(
            task=_task,
            level=_level,
            policy=f"{_level}.npz",
            num_steps=1_000_000,
            seed=_seed,
            num_envs=16,
            deterministic=False,
        )
    RECIPES[f"{_task}-medium-replay"] = dict(
        task=_task, level="medium-replay", action_log="medium_replay_actions.npz"
    )
    RECIPES[f"{_task}-medium-expert"] = dict(
        task=_task, level="medium-expert", parts=[f"{_task}-medium", f"{_task}-expert"]
    )


def behavior(name: str) -> str:
    """The dataset card's description of who acted in recipe ``name``."""
    from offrl.suites.behavior import read_manifest

    recipe = RECIPES[name]
    level = recipe["level"]
    if level == "random":
        return BEHAVIOR
    manifest = read_manifest(recipe["task"])
    run = f"offrl SAC run `{manifest['command']}`"
    if level == "medium-replay":
        log = manifest["medium_replay"]
        return (
            f"the replay buffer of the {run} up to step {log['steps']} (its medium "
            f"checkpoint), regenerated from the shipped action log {recipe['action_log']} "
            f"and checked against SHA-256 {log['array_sha256'][:16]}"
        )
    if level == "medium-expert":
        return " + ".join(behavior(part) for part in recipe["parts"])
    policy = manifest[level]
    return (
        f"{level} policy {recipe['policy']}: checkpoint step {policy['step']} of the {run}; "
        f"stochastic actions; its return over {policy['episodes']} episodes: "
        f"{policy['return_mean']:.1f} ± {policy['return_std']:.1f}"
    )


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
    from offrl.data.dataset import concatenate
    from offrl.data.validate import validate
    from offrl.suites import behavior as shipped

    if name not in RECIPES:
        raise KeyError(f"unknown locomotion recipe '{name}'; available: {', '.join(RECIPES)}")
    recipe = dict(RECIPES[name])
    env_id = ENVIRONMENTS[recipe["task"]]
    env = make_env(env_id)
    info = DatasetInfo(
        name=name,
        env_id=env_id,
        action_low=tuple(env.action_space.low.astype(float).tolist()),
        action_high=tuple(env.action_space.high.astype(float).tolist()),
        source=f"suite:{name}",
    )
    level = recipe["level"]
    if level == "random":
        episodes = collect_random(env_id, num_steps or recipe["num_steps"], recipe["seed"])
        dataset = from_episodes(episodes, info)
    elif level in ("medium", "expert"):
        shipped.read_manifest(recipe["task"])
        policy = shipped.load_policy_file(shipped.behavior_dir(recipe["task"]) / recipe["policy"])
        dataset = shipped.collect_with_policy(
            policy,
            num_steps or recipe["num_steps"],
            recipe["seed"],
            name,
            deterministic=recipe["deterministic"],
            env_id=env_id,
            num_envs=recipe["num_envs"],
        ).replace(info=info)
    elif level == "medium-replay":
        shipped.read_manifest(recipe["task"])
        path = shipped.behavior_dir(recipe["task"]) / recipe["action_log"]
        dataset = shipped.replay_action_log(path, name).replace(info=info)
    else:  # medium-expert: the cached parts, or fresh ones of half the size each
        from offrl.suites import load_suite_dataset

        parts = [
            load_suite_dataset(part) if num_steps is None else build(part, num_steps // 2)
            for part in recipe["parts"]
        ]
        dataset = concatenate(parts, info)
    dataset = validate(dataset, env.observation_space, env.action_space)
    env.close()
    return dataset


def measure_references(task: str, num_episodes: int = 100) -> dict[str, float | None]:
    """Mean returns of a uniform random policy (resets ``0..num_episodes-1``) and,
    when shipped, of the expert policy file (stochastic actions, resets from
    ``REFERENCE_SEED``, disjoint from the periodic and the held-out evaluations);
    ``*_value`` are the same episodes' discounted (0.99) returns."""
    from offrl.envs.rollout import REFERENCE_SEED, evaluate
    from offrl.suites.behavior import (
        BehaviorError,
        behavior_dir,
        evaluate_policy_file,
        load_policy_file,
    )

    env_id = ENVIRONMENTS[task]
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    rng = np.random.default_rng(0)

    def random_policy(observations, key):
        return rng.uniform(low, high, size=(*observations.shape[:2], low.shape[0]))

    random = evaluate(random_policy, env_id, 1, num_episodes, seed=0, max_parallel=25)
    out = {
        "random_return": float(random.returns.mean()),
        "random_value": float(random.discounted.mean()),
        "expert_return": None,
        "expert_value": None,
        "discount": random.discount,
    }
    try:
        policy = load_policy_file(behavior_dir(task) / "expert.npz")
    except BehaviorError:
        return out
    expert = evaluate_policy_file(policy, num_episodes, seed=REFERENCE_SEED)
    out["expert_return"], out["expert_value"] = expert["return_mean"], expert["discounted_mean"]
    return out


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure-references", action="store_true")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--tasks", default=",".join(ENVIRONMENTS))
    args = parser.parse_args()
    if args.measure_references:
        for task in args.tasks.split(","):
            print(task, measure_references(task, args.episodes), flush=True)


if __name__ == "__main__":
    main()
