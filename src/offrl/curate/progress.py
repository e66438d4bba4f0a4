"""A progress reward from demonstrations (VLAC's pairwise progress idea, on states).

From demonstrations that end where the task is done, a pairwise model learns how
much task progress lies between two states of the same demonstration:
``delta(s_i, s_j) ~ (j - i) / (T - 1)`` (progress runs from 0 at a demonstration's
first state to 1 at its last), for pairs in both orders, and a done model
``P(done | s)`` (1 on the last ``done_steps`` states of each demonstration, 0 on the
rest). Any dataset of the same task is then labeled with the dense reward
``r_t = scale * delta(s_t, s_{t+1})`` (``scale``: the demonstrations' mean length, so
a demonstration step earns about 1), plus ``done_reward * P(done | s_{t+1})``.

The vision-language model of the paper is replaced by MLPs on states; the pairwise
form (a difference between two states, not an absolute progress of one) and the
done head are the paper's. Default: 2x256 MLPs, Adam 1e-3, batch 256, 5,000 updates.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.curate.fit import fit
from offrl.data.dataset import Dataset
from offrl.data.validate import DatasetError
from offrl.nn.mlp import MLP


@dataclasses.dataclass(frozen=True)
class Config:
    """The progress model's settings."""

    hidden_dims: tuple[int, ...] = (256, 256)
    """Widths of both MLPs."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 256
    """Pairs (and single states for the done model) per update."""
    steps: int = 5000
    """Updates."""
    done_steps: int = 1
    """Last states of each demonstration labeled done."""
    done_reward: float = 0.0
    """Weight of P(done | s') added to the reward."""
    seed: int = 0
    """Seed of the networks and the pairs."""


@dataclasses.dataclass(frozen=True)
class Model:
    """The fitted pairwise progress and done models."""

    network: MLP
    params: dict
    mean: np.ndarray
    std: np.ndarray
    scale: float
    losses: np.ndarray
    config: Config

    def _apply(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        a = (np.asarray(first, np.float32) - self.mean) / self.std
        b = (np.asarray(second, np.float32) - self.mean) / self.std
        return np.asarray(self.network.apply(self.params, jnp.asarray(np.concatenate([a, b], 1))))

    def delta(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Predicted progress from each row of ``first`` to the same row of ``second``."""
        return self._apply(first, second)[:, 0]

    def done_probability(self, states: np.ndarray) -> np.ndarray:
        """``P(done | s)`` per row."""
        logits = self._apply(states, states)[:, 1]
        return np.asarray(jax.nn.sigmoid(logits))

    def rewards(self, dataset: Dataset) -> np.ndarray:
        """The dense reward of every step of ``dataset``."""
        host = dataset.to_numpy()
        reward = self.scale * self.delta(host.observations, host.next_observations)
        if self.config.done_reward:
            reward = reward + self.config.done_reward * self.done_probability(
                host.next_observations
            )
        return reward.astype(np.float32)


def fit_model(demonstrations: Dataset, config: Config | None = None) -> Model:
    """Fit the pairwise progress and done models on ``demonstrations`` (each episode a
    demonstration that ends where the task is done)."""
    config = config or Config()
    host = demonstrations.to_numpy()
    lengths = np.asarray(host.episode_lengths)
    if (lengths < 1).any() or host.num_episodes < 1:
        raise DatasetError(
            "holds no demonstration", field="episodes", source=host.info.location,
            fix="pass demonstrations that end where the task is done",
        )  # fmt: skip
    # Each demonstration's states s_0 .. s_T (its final next observation included).
    states = np.concatenate(
        [
            np.concatenate([host.observations[s : s + n], host.next_observations[s + n - 1][None]])
            for s, n in zip(host.episode_starts, lengths, strict=True)
        ]
    ).astype(np.float32)
    counts = lengths + 1
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    mean, std = states.mean(0), np.maximum(states.std(0), 1e-6)
    x = jnp.asarray((states - mean) / std)
    done = np.zeros(len(states), np.float32)
    for offset, count in zip(offsets, counts, strict=True):
        done[offset + count - min(config.done_steps, count) : offset + count] = 1.0
    done = jnp.asarray(done)
    offsets_j, counts_j = jnp.asarray(offsets), jnp.asarray(counts)
    network = MLP(tuple(config.hidden_dims), 2)
    key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    params = network.init(init_key, jnp.zeros((1, 2 * x.shape[1])))
    batch = config.batch_size

    def loss_fn(params, key):
        episode_key, i_key, j_key, state_key = jax.random.split(key, 4)
        episode = jax.random.randint(episode_key, (batch,), 0, offsets_j.shape[0])
        count = counts_j[episode]
        i = jax.random.randint(i_key, (batch,), 0, count)
        j = jax.random.randint(j_key, (batch,), 0, count)
        target = (j - i) / jnp.maximum(count - 1, 1)
        first, second = x[offsets_j[episode] + i], x[offsets_j[episode] + j]
        delta = network.apply(params, jnp.concatenate([first, second], 1))[:, 0]
        rows = jax.random.randint(state_key, (batch,), 0, x.shape[0])
        logits = network.apply(params, jnp.concatenate([x[rows], x[rows]], 1))[:, 1]
        done_loss = optax.sigmoid_binary_cross_entropy(logits, done[rows]).mean()
        return jnp.mean((delta - target) ** 2) + done_loss

    params, losses = fit(params, loss_fn, config.steps, config.learning_rate, key)
    scale = float(np.mean(lengths))  # progress per step on a demonstration: 1 / length
    return Model(network, params, mean, std, scale, losses, config)


def relabel(dataset: Dataset, model: Model) -> Dataset:
    """``dataset`` with the progress reward in place of its rewards (or as its rewards,
    when it has none)."""
    return dataset.to_numpy().replace(rewards=model.rewards(dataset))
