"""Uncertainty-targeted corrections: ask the expert where a BC ensemble disagrees most
(the RoboPocket idea, DAgger-style, on state-based tasks).

Each round:

1. an ensemble of BC policies (one per seed, trained together under ``vmap``) learns
   from the data so far;
2. the ensemble's first member drives ``rollouts`` episodes of the task from fresh
   resets; at every state it visits the ensemble's disagreement is the mean squared
   distance of the members' actions from their mean;
3. the expert labels the ``budget`` visited states of the highest disagreement
   (``select="uncertainty"``) or ``budget`` visited states drawn at random
   (``select="random"``: plain DAgger at the same budget), and the labels join the data.

The baseline at the same budget is ``budget`` more steps of the expert's own
demonstrations per round (:func:`extra_demonstrations`).

A label is a state and the expert's action there; it is stored as a one-step episode
whose next state is the state itself, with reward 0 and a truncation: labels are for
imitation (BC reads states and actions only), not for offline RL.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
from collections.abc import Callable
from typing import Literal

import jax
import numpy as np

from offrl.algos import bc
from offrl.data.dataset import Dataset, concatenate, from_episodes
from offrl.envs.registry import make_env
from offrl.evaluate.policy import load_policy
from offrl.run.settings import TrainConfig
from offrl.run.train import train
from offrl.suites.collect import record_episode

Expert = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of uncertainty-targeted collection."""

    rounds: int = 3
    """Rounds of rollouts and labels."""
    budget: int = 200
    """States the expert labels per round."""
    rollouts: int = 5
    """Episodes the current policy drives per round (the candidate states)."""
    members: int = 5
    """BC policies in the ensemble (seeds 0..members-1)."""
    steps: int = 3000
    """BC updates per round."""
    hidden_dims: tuple[int, ...] = (128, 128)
    """BC network widths."""
    select: Literal["uncertainty", "random"] = "uncertainty"
    """Which visited states the expert labels."""
    reset_seed: int = 500_000
    """Reset seed of the first rollout (each round continues from the last)."""
    seed: int = 0
    """Seed of the random selection."""


def fit_ensemble(dataset: Dataset, config: Config, run_dir: pathlib.Path):
    """BC on ``dataset`` for seeds ``0..members-1``; returns the batched policy."""
    train_config = TrainConfig(
        steps=config.steps,
        steps_per_call=min(1000, config.steps),
        eval_every=0,
        eval_episodes=1,
        checkpoint_every=config.steps,
        seeds=tuple(range(config.members)),
        heldout_episodes=0,
        progress=False,
    )
    train("bc", dataset, run_dir, bc.Config(hidden_dims=tuple(config.hidden_dims)), train_config)
    return load_policy(run_dir)[0]


def _labels(states: np.ndarray, expert: Expert, info) -> Dataset:
    actions = np.stack([np.asarray(expert(s), np.float32) for s in states])
    count = len(states)
    return Dataset(
        observations=states.astype(np.float32),
        actions=actions,
        rewards=np.zeros(count, np.float32),
        next_observations=states.astype(np.float32),
        terminations=np.zeros(count, bool),
        truncations=np.ones(count, bool),
        episode_starts=np.arange(count, dtype=np.int64),
        episode_lengths=np.ones(count, np.int64),
        info=dataclasses.replace(info, subsets=(), filter_key=None),
    )


def visit(
    policy, members: int, env_id: str, episodes: int, reset_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """States the ensemble's first member visits, ``[T, obs_dim]``, and the ensemble's
    disagreement at each, ``[T]``."""
    env = make_env(env_id)
    key = jax.random.PRNGKey(0)
    states, disagreement = [], []
    for episode in range(episodes):
        observation, _ = env.reset(seed=reset_seed + episode)
        done = False
        while not done:
            batch = np.broadcast_to(observation, (members, 1, observation.shape[-1]))
            actions = np.asarray(policy(batch, key))[:, 0]  # [members, A]
            states.append(np.asarray(observation, np.float32))
            disagreement.append(float(np.mean(np.sum((actions - actions.mean(0)) ** 2, -1))))
            observation, _, terminated, truncated, _ = env.step(actions[0])
            done = terminated or truncated
    env.close()
    return np.stack(states), np.asarray(disagreement)


def extra_demonstrations(env_id: str, expert: Expert, steps: int, reset_seed: int, info) -> Dataset:
    """The baseline at the same budget: whole expert episodes from fresh resets until
    ``steps`` steps are recorded (the last episode cut there, a truncation)."""
    env = make_env(env_id)
    episodes, recorded, index = [], 0, 0
    while recorded < steps:
        episode = record_episode(env, expert, reset_seed + index, max_steps=steps - recorded)
        episodes.append(episode)
        recorded += len(episode["rewards"])
        index += 1
    env.close()
    return from_episodes(episodes, dataclasses.replace(info, subsets=(), filter_key=None))


def collect(
    dataset: Dataset,
    env_id: str,
    expert: Expert,
    config: Config | None = None,
    workdir: str | pathlib.Path | None = None,
) -> tuple[Dataset, list[dict]]:
    """``dataset`` with ``rounds`` rounds of expert labels, and a record per round."""
    config = config or Config()
    rng = np.random.default_rng(config.seed)
    records = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for index in range(config.rounds):
            policy = fit_ensemble(dataset, config, pathlib.Path(tmp) / f"round_{index}")
            reset = config.reset_seed + index * config.rollouts
            states, disagreement = visit(policy, config.members, env_id, config.rollouts, reset)
            count = min(config.budget, len(states))
            if config.select == "uncertainty":
                chosen = np.argsort(-disagreement, kind="stable")[:count]
            else:
                chosen = rng.choice(len(states), size=count, replace=False)
            dataset = concatenate([dataset, _labels(states[chosen], expert, dataset.info)])
            records.append(
                {
                    "round": index,
                    "visited": len(states),
                    "labeled": int(count),
                    "mean_disagreement": float(disagreement.mean()),
                    "labeled_disagreement": float(disagreement[chosen].mean()),
                }
            )
    return dataset, records
