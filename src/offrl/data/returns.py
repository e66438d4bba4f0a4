"""Discounted returns-to-go of a dataset's steps (Cal-QL's floor, the fine-tuning
replay's ``mc_returns``)."""

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
