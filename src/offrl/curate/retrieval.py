"""Behavior Retrieval (Du et al. 2023): from a large prior dataset, keep the transitions
that look like the task's few demonstrations, and learn from both.

1. A beta-VAE embeds state-action pairs ``(s, a)``; it is trained on the prior data
   (standardized with the prior's statistics).
2. Every prior transition is scored by its similarity to the task demonstrations, the
   negative latent distance to the nearest demonstration transition (the limit of the
   paper's kernel density estimate as its bandwidth shrinks).
3. The top ``fraction`` of the prior transitions is retrieved, each as a one-step
   episode closed by a truncation (it bootstraps, as a cut in the log would), and
   joined to the demonstrations: the dataset BC (or any offline method) then trains on.

Settings not read from the paper (its retrieval fraction and beta were not found):
``fraction`` 0.1 and beta 0.05 (DemInf's), a 2,000-update VAE with 256x256 layers and
an 8-d latent.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from offrl.curate.quality import fit_vae
from offrl.data.dataset import Dataset, concatenate
from offrl.data.validate import DatasetError


@dataclasses.dataclass(frozen=True)
class Config:
    """Behavior Retrieval's settings."""

    fraction: float = 0.1
    """Share of the prior transitions retrieved."""
    latent_dim: int = 8
    """Size of the (s, a) embedding."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Encoder widths (the decoder mirrors them)."""
    beta: float = 0.05
    """KL weight of the beta-VAE."""
    steps: int = 2000
    """VAE updates."""
    learning_rate: float = 1e-3
    """Adam learning rate of the VAE."""
    seed: int = 0
    """Seed of the VAE."""


def similarity(prior: Dataset, task: Dataset, config: Config | None = None) -> np.ndarray:
    """Each prior transition's similarity to the task demonstrations, ``[N_prior]``:
    minus the latent distance to the nearest demonstration transition."""
    from scipy.spatial import cKDTree

    config = config or Config()
    prior, task = prior.to_numpy(), task.to_numpy()
    if (prior.observation_dim, prior.action_dim) != (task.observation_dim, task.action_dim):
        raise DatasetError(
            f"has {prior.observation_dim}-d observations and {prior.action_dim}-d actions, the "
            f"task demonstrations {task.observation_dim} and {task.action_dim}",
            field="prior",
            source=prior.info.source,
            fix="retrieve from prior data of the same robot",
        )
    pairs = np.concatenate([prior.observations, prior.actions], axis=1)
    encoder = fit_vae(
        pairs,
        config.latent_dim,
        tuple(config.hidden_dims),
        config.beta,
        config.steps,
        config.learning_rate,
        config.seed,
    )
    prior_latents = encoder(pairs)
    task_latents = encoder(np.concatenate([task.observations, task.actions], axis=1))
    distance, _ = cKDTree(task_latents).query(prior_latents, k=1)
    return -distance


def retrieved_rows(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Sorted rows of the top ``fraction`` by score (at least one)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the retrieval fraction must be in (0, 1], got {fraction}")
    count = max(1, int(round(fraction * len(scores))))
    return np.sort(np.argsort(-scores, kind="stable")[:count])


def as_transitions(prior: Dataset, rows: np.ndarray) -> Dataset:
    """Rows of ``prior`` as one-step episodes, each closed by a truncation (or by its own
    termination)."""
    host = prior.to_numpy()
    rows = np.asarray(rows, np.int64)
    fields = {
        name: np.asarray(value)[rows]
        for name, value in host.step_fields().items()
        if name not in ("weights", "mc_returns")
    }
    fields["truncations"] = ~fields["terminations"].astype(bool)
    return Dataset(
        **fields,
        episode_starts=np.arange(len(rows), dtype=np.int64),
        episode_lengths=np.ones(len(rows), np.int64),
        info=dataclasses.replace(host.info, subsets=(), filter_key=None),
    )


def retrieve(
    prior: Dataset, task: Dataset, config: Config | None = None
) -> tuple[Dataset, np.ndarray]:
    """The task demonstrations joined with the retrieved prior transitions (subsets
    ``task`` and ``retrieved``), and the retrieved prior rows."""
    config = config or Config()
    rows = retrieved_rows(similarity(prior, task, config), config.fraction)
    retrieved = as_transitions(prior, rows)
    task_info = dataclasses.replace(task.info, subsets=(), filter_key=None)
    joined = concatenate([task.replace(info=task_info), retrieved], task_info)
    first = task.num_episodes
    return (
        joined.with_subsets({"task": range(first), "retrieved": range(first, joined.num_episodes)}),
        rows,
    )
