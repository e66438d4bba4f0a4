"""EIL (extraneousness-aware imitation learning): find the segments of demonstrations
that no other demonstration shares, and leave them out of imitation.

1. An action-conditioned embedding ``phi(s, a)`` is learned without labels by temporal
   cycle-consistency (TCC, Dwibedi et al. 2019) between pairs of demonstrations
   ``U, V``: from step ``u_i`` go to its soft nearest neighbour in ``V``,
   ``v~ = sum_j softmax_j(-||phi(u_i) - phi(v_j)||^2 / tau) phi(v_j)``, and back to
   ``U`` with ``beta_k = softmax_k(-||v~ - phi(u_k)||^2 / tau)``; the loss is the
   cross-entropy of ``beta`` against ``i`` (TCC's cycle-back classification), on
   ``length`` steps drawn in order from each demonstration.
2. Step ``u_i``'s cycle error through ``V`` is the embedding distance between ``u_i``
   and the step its hard cycle lands on: ``v_{j*}``, the nearest step of ``V`` to
   ``u_i``, then ``u_k``, the nearest step of ``U`` to ``v_{j*}``. A step that every
   demonstration shares cycles back to itself (or to a step that looks the same); a
   detour no other demonstration makes cycles back somewhere else. Its score is the
   median cycle error over the other demonstrations.
3. Steps whose score exceeds the median score by more than ``outlier_mads`` robust
   standard deviations (1.4826 median absolute deviations) are extraneous; their
   weight is 0, every other step's 1 (``offrl train --weights``).

Deviations from EIL (Zheng et al. 2022; its code was not read): the cycle is judged
by the embedding distance it ends at, not by the index (demonstrations that hold still,
such as a balanced pendulum, have many steps with the same embedding, any of which is a
correct return), and the threshold is a robust outlier rule chosen here; the embedding
is of the state and action only, without EIL's image encoder.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.curate.fit import fit
from offrl.curate.quality import standardize
from offrl.data.dataset import Dataset
from offrl.data.validate import DatasetError
from offrl.nn.mlp import MLP


@dataclasses.dataclass(frozen=True)
class Config:
    """EIL's settings."""

    embedding_dim: int = 16
    """Size of phi(s, a)."""
    hidden_dims: tuple[int, ...] = (128, 128)
    """Widths of the embedding network."""
    temperature: float = 0.1
    """tau of the soft nearest neighbours."""
    length: int = 48
    """Steps drawn in order from each demonstration of a training pair."""
    pairs: int = 16
    """Demonstration pairs per update."""
    steps: int = 1500
    """Updates of the embedding."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    outlier_mads: float = 3.0
    """Extraneous: a score above the median by this many robust standard deviations."""
    seed: int = 0
    """Seed of the network and the pairs."""


def _tcc_loss(embed, params, u, v, temperature: float):
    """Cycle-back classification from ``u [L, D]`` through ``v [L, D]``."""
    zu, zv = embed(params, u), embed(params, v)  # [L, E]
    to_v = jax.nn.softmax(-jnp.sum((zu[:, None] - zv[None]) ** 2, -1) / temperature, axis=1)
    soft = to_v @ zv  # [L, E]
    back = -jnp.sum((soft[:, None] - zu[None]) ** 2, -1) / temperature  # [L, L]
    return optax.softmax_cross_entropy_with_integer_labels(back, jnp.arange(u.shape[0])).mean()


def fit_embedding(dataset: Dataset, config: Config):
    """The TCC-trained ``phi``: rows ``[N, obs + act]`` (standardized) to ``[N, E]``."""
    host = dataset.to_numpy()
    if host.num_episodes < 2:
        raise DatasetError(
            f"holds {host.num_episodes} demonstration(s); alignment needs at least 2",
            field="episodes",
            source=dataset.info.source,
            fix="give several demonstrations of the task",
        )
    inputs = np.concatenate([standardize(host.observations), standardize(host.actions)], 1)
    data = jnp.asarray(inputs, jnp.float32)
    starts = jnp.asarray(host.episode_starts)
    lengths = jnp.asarray(host.episode_lengths)
    network = MLP(tuple(config.hidden_dims), config.embedding_dim)
    key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    params = network.init(init_key, data[:1])
    count = host.num_episodes

    def rows_of(episode, key):
        # ``length`` steps of the episode in order (with repeats for short ones)
        positions = jnp.sort(jax.random.randint(key, (config.length,), 0, lengths[episode]))
        return data[starts[episode] + positions]

    def loss_fn(params, key):
        first_key, offset_key, u_key, v_key = jax.random.split(key, 4)
        first = jax.random.randint(first_key, (config.pairs,), 0, count)
        second = (first + jax.random.randint(offset_key, (config.pairs,), 1, count)) % count
        u = jax.vmap(rows_of)(first, jax.random.split(u_key, config.pairs))
        v = jax.vmap(rows_of)(second, jax.random.split(v_key, config.pairs))
        losses = jax.vmap(lambda a, b: _tcc_loss(network.apply, params, a, b, config.temperature))(
            u, v
        )
        return losses.mean()

    params, losses = fit(params, loss_fn, config.steps, config.learning_rate, key)
    return np.asarray(network.apply(params, data), np.float64), np.asarray(losses)


def cycle_errors(dataset: Dataset, config: Config | None = None) -> tuple[np.ndarray, dict]:
    """Each step's median cycle error over the other demonstrations, ``[N]``."""
    config = config or Config()
    host = dataset.to_numpy()
    embedded, losses = fit_embedding(dataset, config)
    starts = np.asarray(host.episode_starts)
    lengths = np.asarray(host.episode_lengths)
    episodes = [embedded[s : s + n] for s, n in zip(starts, lengths, strict=True)]
    scores = np.zeros(host.size)
    for index, u in enumerate(episodes):
        errors = []
        for other, v in enumerate(episodes):
            if other == index:
                continue
            nearest_v = v[np.argmin(np.sum((u[:, None] - v[None]) ** 2, -1), axis=1)]
            back = np.argmin(np.sum((nearest_v[:, None] - u[None]) ** 2, -1), axis=1)
            errors.append(np.linalg.norm(u[back] - u, axis=1))
        scores[starts[index] : starts[index] + len(u)] = np.median(errors, axis=0)
    return scores, {
        "tcc_loss_first": float(losses[:50].mean()),
        "tcc_loss_last": float(losses[-50:].mean()),
    }


def extraneous(scores: np.ndarray, outlier_mads: float) -> np.ndarray:
    """Steps whose cycle error is an outlier above the median (robust z-score)."""
    median = np.median(scores)
    spread = 1.4826 * np.median(np.abs(scores - median))
    return scores > median + outlier_mads * max(spread, 1e-12)


def weights(dataset: Dataset, config: Config | None = None) -> tuple[np.ndarray, dict]:
    """0 for extraneous steps, 1 for the rest."""
    config = config or Config()
    scores, diagnostics = cycle_errors(dataset, config)
    flagged = extraneous(scores, config.outlier_mads)
    diagnostics["extraneous_share"] = float(flagged.mean())
    return np.where(flagged, 0.0, 1.0), diagnostics
