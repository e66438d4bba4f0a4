"""Rewards learned from preferences: a scripted teacher and a Bradley-Terry reward model.

**Preference file** (``.npz``): ``first`` and ``second``, the first rows of two
segments of ``length`` steps each (``[Q]``, rows of the dataset, each segment inside
one episode), ``preference``, the probability that the *second* segment is preferred
(1, 0, or 0.5 for "equally good"), and ``dataset_sha256``.

**Scripted teacher** (Uni-RLHF's and Preference Transformer's rule): the segment with
the larger true return wins; when the two returns differ by less than ``equivalence``
the label is 0.5; with probability ``flip`` a label is inverted (an unreliable
teacher).

**Reward model**: an ensemble of MLPs ``r_e(s, a)``; a segment's predicted return is
the sum of ``r_e`` over its steps, and ``P(second preferred) = sigmoid(R_e(second) -
R_e(first))`` (Bradley-Terry); each member minimizes the cross-entropy with the labels
(soft for 0.5). The relabeled reward is the ensemble mean.

Settings chosen here (none were read from released code): 3 members of 128x128, Adam
3e-4, batches of 64 queries, 3,000 updates (about a minute on 2 CPU cores with
50-step segments).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.curate.fit import fit
from offrl.data.dataset import Dataset
from offrl.data.formats.atomic import replace_atomically
from offrl.data.validate import DatasetError
from offrl.nn.mlp import MLP, ensemble


@dataclasses.dataclass(frozen=True)
class Config:
    """The reward model's settings."""

    members: int = 3
    """Reward networks in the ensemble."""
    hidden_dims: tuple[int, ...] = (128, 128)
    """Widths of each reward network."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 64
    """Queries per update."""
    steps: int = 3000
    """Updates."""
    seed: int = 0
    """Seed of the networks and the batches."""


# ------------------------------------------------------------------------ teacher
def segment_starts(dataset: Dataset, length: int) -> np.ndarray:
    """Rows where a ``length``-step segment fits inside one episode."""
    starts = np.asarray(dataset.episode_starts)
    lengths = np.asarray(dataset.episode_lengths)
    rows = [np.arange(s, s + n - length + 1) for s, n in zip(starts, lengths, strict=True)]
    rows = np.concatenate([r for r in rows if r.size] or [np.zeros(0, np.int64)])
    if rows.size == 0:
        raise DatasetError(
            f"has no episode of {length} steps or more",
            field="episode_lengths",
            source=dataset.info.source,
            fix="choose a shorter --length",
        )
    return rows


def segment_returns(rewards: np.ndarray, first: np.ndarray, length: int) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(rewards, np.float64))])
    return cumulative[first + length] - cumulative[first]


def teacher_labels(
    returns_first: np.ndarray,
    returns_second: np.ndarray,
    equivalence: float = 0.0,
    flip: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """P(second preferred): 1 when its return is larger, 0 when smaller, 0.5 within
    ``equivalence``; each label inverted with probability ``flip``."""
    difference = np.asarray(returns_second) - np.asarray(returns_first)
    labels = np.where(difference > 0, 1.0, 0.0)
    labels = np.where(np.abs(difference) < max(equivalence, 1e-12), 0.5, labels)
    if flip > 0:
        rng = rng or np.random.default_rng(0)
        labels = np.where(rng.random(len(labels)) < flip, 1.0 - labels, labels)
    return labels


def scripted_preferences(
    dataset: Dataset,
    queries: int,
    length: int,
    equivalence: float = 0.0,
    flip: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``queries`` random segment pairs labeled by the scripted teacher from the data's
    true rewards (the preference file's arrays)."""
    dataset.require("rewards", "the scripted teacher")
    rng = np.random.default_rng(seed)
    candidates = segment_starts(dataset, length)
    first = rng.choice(candidates, queries)
    second = rng.choice(candidates, queries)
    rewards = np.asarray(dataset.rewards)
    labels = teacher_labels(
        segment_returns(rewards, first, length),
        segment_returns(rewards, second, length),
        equivalence,
        flip,
        rng,
    )
    return {"first": first, "second": second, "preference": labels, "length": length}


def segments_digest(dataset: Dataset) -> str:
    """The digest a preference file records: the states and actions its segments index,
    not the rewards (a file made on a copy with true rewards labels the reward-free log)
    nor the weights."""
    return dataset.replace(weights=None, rewards=None).digest()


def write_preferences(path: str | os.PathLike, dataset: Dataset, preferences: dict):
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = segments_digest(dataset)

    def write(tmp: pathlib.Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, dataset_sha256=np.asarray(digest), **preferences)

    replace_atomically(path, write)
    return path


def read_preferences(path: str | os.PathLike, dataset: Dataset) -> dict[str, np.ndarray]:
    """A preference file, checked against ``dataset`` (digest, segment bounds)."""
    try:
        with np.load(path, allow_pickle=False) as content:
            preferences = {k: content[k] for k in content.files}
        length = int(preferences["length"])
        first, second = preferences["first"], preferences["second"]
        labels = preferences["preference"].astype(np.float64)
    except (OSError, ValueError, KeyError) as error:
        raise DatasetError(
            f"is not a preference file ({type(error).__name__}: {error})",
            field="preferences",
            source=str(path),
            fix="write one with offrl label preferences (first, second, preference, length)",
        ) from error
    recorded = preferences.get("dataset_sha256")
    if recorded is not None and str(recorded) != segments_digest(dataset):
        raise DatasetError(
            "was made for other data (its dataset_sha256 differs)",
            field="preferences",
            source=str(path),
            fix="label segments of this dataset",
        )
    valid = np.zeros(dataset.size, bool)
    valid[segment_starts(dataset, length)] = True
    for name, rows in (("first", first), ("second", second)):
        bad = np.flatnonzero((rows < 0) | (rows >= dataset.size))
        bad = bad if bad.size else np.flatnonzero(~valid[rows])
        if bad.size:
            raise DatasetError(
                f"query {int(bad[0])}: its {name} segment (row {int(rows[bad[0]])}, {length} "
                "steps) does not lie inside one episode",
                field="preferences",
                source=str(path),
                fix="segments must start at least `length` steps before their episode ends",
            )
    if np.any((labels < 0) | (labels > 1)):
        raise DatasetError(
            "holds a preference outside [0, 1]",
            field="preferences",
            source=str(path),
            fix="store P(second preferred): 1, 0 or 0.5",
        )
    return {"first": first, "second": second, "preference": labels, "length": length}


# ---------------------------------------------------------------- reward model
def bradley_terry_loss(returns_first, returns_second, labels):
    """Cross-entropy of ``sigmoid(R2 - R1)`` with ``labels`` (P(second preferred));
    ``returns_*``: ``[E, Q]``, ``labels``: ``[Q]``; mean over queries, summed over members."""
    logits = returns_second - returns_first
    return optax.sigmoid_binary_cross_entropy(logits, labels[None, :]).mean(axis=1).sum()


def fit_reward_model(dataset: Dataset, preferences: dict, config: Config | None = None):
    """The ensemble's parameters and ``reward(observations, actions) -> [N]`` (the mean)."""
    dataset.require("actions", "a reward model r(s, a)")
    config = config or Config()
    host = dataset.to_numpy()
    obs_mean = np.asarray(host.observations).mean(0)
    obs_std = np.maximum(np.asarray(host.observations).std(0), 1e-6)
    inputs = jnp.asarray(
        np.concatenate([(np.asarray(host.observations) - obs_mean) / obs_std, host.actions], 1),
        jnp.float32,
    )
    length = int(preferences["length"])
    offsets = jnp.arange(length)
    first = jnp.asarray(preferences["first"])
    second = jnp.asarray(preferences["second"])
    labels = jnp.asarray(preferences["preference"], jnp.float32)
    model = ensemble(MLP, config.members)(tuple(config.hidden_dims), 1)
    key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    params = model.init(init_key, inputs[:1])
    batch = min(config.batch_size, int(first.shape[0]))

    def segment_returns_of(params, starts):  # [E, B]
        rows = starts[:, None] + offsets[None, :]  # [B, L]
        rewards = model.apply(params, inputs[rows.reshape(-1)])[..., 0]  # [E, B * L]
        return rewards.reshape(config.members, -1, length).sum(-1)

    def loss_fn(params, key):
        queries = jax.random.randint(key, (batch,), 0, first.shape[0])
        return bradley_terry_loss(
            segment_returns_of(params, first[queries]),
            segment_returns_of(params, second[queries]),
            labels[queries],
        )

    params, losses = fit(params, loss_fn, config.steps, config.learning_rate, key)

    def reward(observations, actions):
        x = np.concatenate([(np.asarray(observations) - obs_mean) / obs_std, actions], 1)
        return np.asarray(model.apply(params, jnp.asarray(x, jnp.float32))[..., 0].mean(0))

    return reward, {
        "loss_first": float(losses[:50].mean()),
        "loss_last": float(losses[-50:].mean()),
    }


def relabel(dataset: Dataset, reward) -> Dataset:
    """The dataset with the learned rewards in place of its own."""
    host = dataset.to_numpy()
    rewards = reward(np.asarray(host.observations), np.asarray(host.actions))
    return host.replace(rewards=np.asarray(rewards, np.float32))


def preference_accuracy(reward, dataset: Dataset, preferences: dict) -> float:
    """Share of the decided queries (label 0 or 1) the learned reward orders the same way."""
    rewards = reward(np.asarray(dataset.observations), np.asarray(dataset.actions))
    length = int(preferences["length"])
    predicted = segment_returns(rewards, preferences["second"], length) > segment_returns(
        rewards, preferences["first"], length
    )
    labels = np.asarray(preferences["preference"])
    decided = labels != 0.5
    return float(np.mean(predicted[decided] == (labels[decided] > 0.5)))
