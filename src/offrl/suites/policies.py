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
    from offrl.run.train import load_run

    context = load_run(run_dir, step)
    if context.env_id is None:
        raise ValueError(f"{run_dir} records no environment to collect in")
    policy = build_policy(context.algo, deterministic)
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


def replay_from_run(run_dir: str | pathlib.Path, up_to_step: int, name: str = "replay") -> Dataset:
    """The first ``up_to_step`` transitions an online run stored, as episodes.

    Reads the run's latest buffer file, which holds every transition in order as
    long as the buffer never wrapped (capacity >= steps, offrl's default). The
    episode in progress at ``up_to_step`` ends there with a truncation.
    """
    run_dir = pathlib.Path(run_dir)
    buffers = sorted(
        (run_dir / "checkpoints").glob("buffer_*.npz"), key=lambda p: int(p.stem.split("_")[1])
    )
    if not buffers:
        raise FileNotFoundError(f"{run_dir} has no replay buffer file (checkpoints/buffer_*.npz)")
    with np.load(buffers[-1]) as data:
        size, position = int(data["size"]), int(data["position"])
        if position != size % len(data["buffer_rewards"]) and position != size:
            raise ValueError("the replay buffer wrapped around; transitions are out of order")
        if up_to_step > size:
            raise ValueError(
                f"{buffers[-1].name} holds {size} transitions, fewer than {up_to_step}"
            )
        arrays = {
            k.removeprefix("buffer_"): data[k][:up_to_step]
            for k in data.files
            if k.startswith("buffer_")
        }
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
        episode["actions"] = (low + (episode["actions"] + 1.0) * 0.5 * (high - low)).astype(
            np.float32
        )
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
