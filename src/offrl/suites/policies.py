"""Datasets from trained behavior policies, the way D4RL made its locomotion data.

- :func:`collect_from_run` rolls out a checkpoint of an offrl run (online SAC
  or offline) for a number of transitions, deterministically: episode ``i``
  resets with ``seed * 1_000_003 + i`` and stochastic actions are sampled with
  ``jax.random.PRNGKey(seed)``.
- :func:`replay_from_run` cuts an online run's replay buffer at a step (D4RL's
  ``medium-replay``: everything the agent saw until its medium checkpoint).
- :func:`medium_checkpoint` picks the first checkpoint whose evaluated return
  reaches a fraction (D4RL: one third) of the expert's.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from offrl.data.dataset import Dataset, DatasetInfo, from_episodes
from offrl.data.preprocess import scale_action
from offrl.envs.registry import make_env
from offrl.suites.collect import record_steps


def collect_from_run(
    run_dir: str | pathlib.Path,
    num_steps: int,
    seed: int,
    step: int | None = None,
    deterministic: bool = False,
    name: str = "policy-data",
    seed_index: int = 0,
) -> Dataset:
    """``num_steps`` transitions of the run's policy (seed ``seed_index`` of the run)."""
    from offrl.core.trainer import build_policy
    from offrl.run.rundir import load_run

    context = load_run(run_dir, step)
    if context.env_id is None:
        raise ValueError(f"{run_dir} records no environment to collect in")
    policy = build_policy(context.algo, context.algo_config, deterministic)
    if hasattr(policy, "window_length"):
        raise ValueError(
            f"{run_dir}: collecting data with a sequence policy ({context.algorithm}) is not "
            "supported yet; collect with a policy of single observations"
        )
    states = jax.tree_util.tree_map(lambda x: x[seed_index : seed_index + 1], context.states)
    env = make_env(context.env_id)
    key = [jax.random.PRNGKey(seed)]

    def choose_action(observation):
        key[0], act_key = jax.random.split(key[0])
        actions = policy(
            states, context.preprocessor, np.asarray(observation, np.float32)[None, None], act_key
        )
        return np.asarray(actions)[0, 0]

    episodes = record_steps(env, choose_action, num_steps, seed)
    env.close()
    low, high = env.action_space.low, env.action_space.high
    info = DatasetInfo(
        name=name,
        env_id=context.env_id,
        action_low=tuple(np.asarray(low, float).tolist()),
        action_high=tuple(np.asarray(high, float).tolist()),
        source=f"{run_dir}@{context.step}",
    )
    return from_episodes(episodes, info)


def online_transitions(
    run_dir: str | pathlib.Path, up_to_step: int, seed_index: int = 0
) -> dict[str, np.ndarray]:
    """The first ``up_to_step`` transitions seed ``seed_index`` of an online run
    stored, in order, from its latest replay file (``checkpoints/replay_<N>.npz``).

    They are in order as long as the buffer never wrapped (capacity >= steps,
    offrl's default); actions are in the networks' ``[-1, 1]`` units.
    """
    from offrl.run.rundir import read_run_config

    run_dir = pathlib.Path(run_dir)
    if read_run_config(run_dir)["kind"] != "online":
        raise ValueError(
            f"{run_dir} is not an online run (offrl online): only its buffer holds the "
            "environment's own observations and rewards"
        )
    replays = sorted(
        (run_dir / "checkpoints").glob("replay_*.npz"), key=lambda p: int(p.stem.split("_")[1])
    )
    if not replays:
        raise FileNotFoundError(f"{run_dir} has no replay file (checkpoints/replay_*.npz)")
    with np.load(replays[-1]) as data:
        size = int(data["size"][seed_index])
        stepped = int(json.loads(str(data["counters"]))["step"])
        if stepped > size:
            raise ValueError(
                f"the replay buffer wrapped around ({stepped} steps into {size} rows); its "
                "transitions are out of order"
            )
        if up_to_step > size:
            raise ValueError(
                f"{replays[-1].name} holds {size} transitions, fewer than {up_to_step}"
            )
        return {
            k.removeprefix("online_"): data[k][seed_index, :up_to_step]
            for k in data.files
            if k.startswith("online_") and k != "online_mc_returns"
        }


def replay_from_run(run_dir: str | pathlib.Path, up_to_step: int, name: str = "replay") -> Dataset:
    """The first ``up_to_step`` transitions an online run stored, as episodes (see
    :func:`online_transitions`). The episode in progress at ``up_to_step`` ends there
    with a truncation."""
    arrays = online_transitions(run_dir, up_to_step)
    terminations = arrays["terminations"].astype(bool)
    truncations = arrays["truncations"].astype(bool)
    truncations[-1] = not terminations[-1]
    ends = np.flatnonzero(terminations | truncations)
    starts = np.concatenate([[0], ends[:-1] + 1])
    episodes = [
        {
            "observations": arrays["observations"][a : b + 1],
            "next_observations": arrays["next_observations"][a : b + 1],
            "actions": arrays["actions"][a : b + 1],
            "rewards": arrays["rewards"][a : b + 1],
            "terminations": terminations[a : b + 1],
            "truncations": truncations[a : b + 1],
        }
        for a, b in zip(starts, ends, strict=True)
    ]
    config = json.loads((run_dir / "config.json").read_text())
    env = make_env(config["env_id"])
    low, high = env.action_space.low, env.action_space.high
    env.close()
    # The buffer stores actions in [-1, 1] (the networks' units); datasets hold env units.
    for episode in episodes:
        episode["actions"] = scale_action(episode["actions"], low, high).astype(np.float32)
    info = DatasetInfo(
        name=name,
        env_id=config["env_id"],
        action_low=tuple(np.asarray(low, float).tolist()),
        action_high=tuple(np.asarray(high, float).tolist()),
        source=f"{run_dir}:buffer[:{up_to_step}]",
    )
    return from_episodes(episodes, info)


def evaluation_curve(run_dir: str | pathlib.Path) -> list[tuple[int, float]]:
    """``(step, mean evaluation return)`` pairs from a run's metrics.jsonl."""
    curve = []
    for line in (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "eval/return_mean" in record:
            curve.append((int(record["step"]), float(record["eval/return_mean"])))
    return curve


def medium_checkpoint(
    run_dir: str | pathlib.Path,
    expert_return: float,
    random_return: float = 0.0,
    fraction: float = 1.0 / 3.0,
) -> int:
    """The first checkpoint at or after the first evaluation reaching ``fraction`` of
    the expert (measured from the random return, as the normalized score)."""
    from offrl.run import checkpoint

    threshold = random_return + fraction * (expert_return - random_return)
    steps = checkpoint.steps(pathlib.Path(run_dir) / "checkpoints")
    for eval_step, value in evaluation_curve(run_dir):
        if value >= threshold:
            later = [s for s in steps if s >= eval_step]
            if later:
                return later[0]
    raise ValueError(
        f"no evaluation of {run_dir} reached {threshold:.1f} "
        f"({fraction:.2f} of the expert's {expert_return:.1f})"
    )
