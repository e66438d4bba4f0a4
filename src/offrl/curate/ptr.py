"""PTR: per-sample weights from how well a transition's outcome can be picked out.

The post-action consequence of step ``t`` is the state ``H`` steps later,
``z = s_{min(t + H, T)}`` (``H = 1``: the next state). A scorer
``f(s, a) . g(z) / temperature`` is trained with a contrastive loss to pick the true
``z`` out of a pool of ``K`` candidates (the true one and ``K - 1`` outcomes of other
random steps). The PTR score of a step is the posterior of its true outcome divided
by the chance level, ``p(true | s, a, pool) / (1 / K)``, averaged over ``pools``
random pools; the weight is the score clipped to ``[clip_low, clip_high]`` and mixed
with 1: ``w = mix * clip(score) + (1 - mix)``. Scores are cross-fitted: the episodes
are split into ``folds`` and each fold is scored by a scorer trained on the others, so
that a scorer cannot vouch for outcomes it memorized. Steps whose outcome follows from the
state and action (a consistent demonstrator) score high; steps whose outcome the
action does not determine (noise, later noisy actions) score near or below chance.

Settings not read from a released implementation (none was found): ``K``, the clip
bounds and the mix ``lambda`` are chosen here (16, [0.1, 3], 0.5); the horizon ``H``
is 10 so that a noisy operator's later actions blur the outcome, as the paper's
future-observation target does.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.curate.fit import fit
from offrl.curate.quality import standardize
from offrl.data.dataset import Dataset
from offrl.nn.mlp import MLP


@dataclasses.dataclass(frozen=True)
class Config:
    """PTR's settings."""

    horizon: int = 10
    """Steps ahead of the outcome z (1: the next state); clipped at the episode end."""
    candidates: int = 16
    """K: outcomes in each pool (the true one among K - 1 others)."""
    clip_low: float = 0.1
    """Lower clip of the score p / (1 / K)."""
    clip_high: float = 3.0
    """Upper clip of the score."""
    mix: float = 0.5
    """lambda: the weight is lambda * clip(score) + (1 - lambda)."""
    hidden_dims: tuple[int, ...] = (128, 128)
    """Widths of the two encoders."""
    embedding_dim: int = 32
    """Size of the embeddings f(s, a) and g(z)."""
    temperature: float = 0.1
    """Divides the cosine similarities."""
    steps: int = 3000
    """Updates of the scorer."""
    batch_size: int = 256
    """Steps per update (each the true pair of a pool; the batch's other outcomes are its
    negatives)."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    pools: int = 8
    """Random pools each step's score is averaged over."""
    folds: int = 2
    """Cross-fitting: each fold of episodes is scored by a scorer trained on the rest."""
    seed: int = 0
    """Seed of the scorer and the pools."""


class Scorer(nn.Module):
    hidden_dims: tuple[int, ...]
    embedding_dim: int

    def setup(self):
        self.query = MLP(self.hidden_dims, self.embedding_dim)
        self.key = MLP(self.hidden_dims, self.embedding_dim)

    def __call__(self, states_actions, outcomes):
        def unit(x):
            return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)

        return unit(self.query(states_actions)), unit(self.key(outcomes))


def outcome_rows(dataset: Dataset, horizon: int) -> np.ndarray:
    """Row of each step's outcome ``s_{min(t + H, T)}`` (as ``next_observations``)."""
    starts = np.asarray(dataset.episode_starts)
    lengths = np.asarray(dataset.episode_lengths)
    episode = np.repeat(np.arange(len(starts)), lengths)
    last = (starts + lengths - 1)[episode]
    return np.minimum(np.arange(dataset.size) + horizon - 1, last)


def _train_scorer(inputs, outcomes, config: Config, key):
    n = inputs.shape[0]
    model = Scorer(tuple(config.hidden_dims), config.embedding_dim)
    key, init_key = jax.random.split(key)
    params = model.init(init_key, inputs[:1], outcomes[:1])
    batch = min(config.batch_size, n)

    def loss_fn(params, key):
        rows = jax.random.randint(key, (batch,), 0, n)
        queries, keys = model.apply(params, inputs[rows], outcomes[rows])
        logits = queries @ keys.T / config.temperature  # [B, B]: the diagonal is the truth
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.arange(batch)).mean()

    params, _ = fit(params, loss_fn, config.steps, config.learning_rate, key)
    return model, params


def scores(dataset: Dataset, config: Config | None = None) -> np.ndarray:
    """Each step's PTR score ``p(true outcome) / (1 / K)``, ``[N]`` (cross-fitted)."""
    config = config or Config()
    host = dataset.to_numpy()
    inputs = jnp.asarray(
        np.concatenate([standardize(host.observations), standardize(host.actions)], axis=1),
        jnp.float32,
    )
    next_states = standardize(host.next_observations)
    outcomes = jnp.asarray(next_states[outcome_rows(host, config.horizon)], jnp.float32)
    n, count = inputs.shape[0], config.candidates
    episode = np.repeat(np.arange(host.num_episodes), np.asarray(host.episode_lengths))
    folds = min(config.folds, host.num_episodes)
    fold_of = np.random.default_rng(config.seed).permutation(host.num_episodes) % folds
    out = np.zeros(n)
    key = jax.random.PRNGKey(config.seed)
    for fold in range(folds):
        key, train_key, pool_key = jax.random.split(key, 3)
        scored = fold_of[episode] == fold
        fit = ~scored if folds > 1 else scored
        model, params = _train_scorer(inputs[fit], outcomes[fit], config, train_key)
        queries, _ = model.apply(params, inputs[scored], outcomes[scored])
        _, embedded = model.apply(params, inputs, outcomes)
        own = embedded[np.flatnonzero(scored)]

        @jax.jit
        def posterior(key, queries=queries, own=own, embedded=embedded):
            # Each step's pool: its own outcome and K - 1 outcomes of random other steps.
            others = jax.random.randint(key, (own.shape[0], count - 1), 0, n)
            pool = jnp.concatenate([own[:, None, :], embedded[others]], axis=1)  # [M, K, E]
            logits = jnp.einsum("me,mke->mk", queries, pool) / config.temperature
            return jax.nn.softmax(logits, axis=-1)[:, 0] * count

        pools = jax.random.split(pool_key, config.pools)
        out[scored] = np.asarray(jnp.mean(jnp.stack([posterior(k) for k in pools]), axis=0))
    return out


def weights_from_scores(step_scores: np.ndarray, config: Config) -> np.ndarray:
    """``mix * clip(score, low, high) + (1 - mix)``."""
    clipped = np.clip(step_scores, config.clip_low, config.clip_high)
    return config.mix * clipped + (1.0 - config.mix)


def weights(dataset: Dataset, config: Config | None = None) -> np.ndarray:
    """PTR's per-step weights for ``dataset``."""
    config = config or Config()
    return weights_from_scores(scores(dataset, config), config)
