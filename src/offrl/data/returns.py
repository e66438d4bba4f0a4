"""Per-step fields derived from a dataset: discounted returns-to-go (Cal-QL's floor,
the fine-tuning replay's ``mc_returns``) and the next step's action (ReBRAC's critic
penalty)."""

from __future__ import annotations

import numpy as np

from offrl.data.dataset import Dataset


def returns_to_go(rewards, terminations, episode_starts, episode_lengths, discount: float):
    """Discounted return-to-go of every step, summed within its episode.

    ``G_t = r_t + gamma * (1 - terminated_t) * G_{t+1}``, with ``G = 0`` after the
    episode's last step (a time-limit truncation is not bootstrapped: the sum
    covers what was observed, as Cal-QL's released code does).
    """
    rewards = np.asarray(rewards, np.float64)
    terminations = np.asarray(terminations, np.float64)
    out = np.zeros_like(rewards)
    for start, length in zip(episode_starts, episode_lengths, strict=True):
        running = 0.0
        for t in range(int(start) + int(length) - 1, int(start) - 1, -1):
            running = rewards[t] + discount * (1.0 - terminations[t]) * running
            out[t] = running
    return out.astype(np.float32)


def dataset_returns_to_go(dataset: Dataset, discount: float) -> np.ndarray:
    """:func:`returns_to_go` of a dataset's rows (in its own reward units)."""
    return returns_to_go(
        np.asarray(dataset.rewards),
        np.asarray(dataset.terminations),
        np.asarray(dataset.episode_starts),
        np.asarray(dataset.episode_lengths),
        discount,
    )


def next_actions(dataset: Dataset) -> np.ndarray:
    """``a_{t+1}`` of every step: the action of the next row of the same episode. The
    last step of an episode has no recorded next action; it gets its own action (after
    a termination the target ignores it; after a truncation this is the nearest logged
    behaviour: 1 row per episode)."""
    dataset.require("actions", "the next step's action")
    actions = np.asarray(dataset.actions, np.float32)
    out = np.concatenate([actions[1:], actions[-1:]], axis=0)
    last = np.asarray(dataset.episode_starts) + np.asarray(dataset.episode_lengths) - 1
    out[last] = actions[last]
    return out
