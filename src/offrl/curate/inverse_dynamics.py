"""Action labels from an inverse-dynamics model (SS-ORL, Zheng et al. 2023).

A few trajectories keep their actions; the rest have states only. An inverse-dynamics
model ``p(a_t | s_{t-k..t}, s_{t+1})`` (``k = 1``: the previous state, the state and the
next state; the first step of an episode repeats its state) is trained on the labeled
trajectories by the negative log-likelihood of a tanh-Gaussian head with dropout, and
labels every other step with its mean action ``tanh(mu)``, mapped to the action bounds.

The labeled part is chosen as the released code does: ``fraction`` of the
trajectories, drawn from the lower half by return (the realistic case: the cheap,
poor data is what got logged with actions).

Settings: the released code's are 2x1024 layers, dropout 0.1, Adam 1e-4, batch 1024
(``Config.released()``); the default here is 2x256, Adam 1e-3, batch 256, 5,000
updates, sized for a CPU.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from offrl.curate.fit import fit
from offrl.data.dataset import Dataset, concatenate
from offrl.data.validate import DatasetError
from offrl.nn.mlp import MLP
from offrl.nn.policies import tanh_gaussian_log_prob


@dataclasses.dataclass(frozen=True)
class Config:
    """The inverse-dynamics model's settings."""

    hidden_dims: tuple[int, ...] = (256, 256)
    """Widths of the MLP."""
    dropout_rate: float = 0.1
    """Dropout after each hidden layer (the released 0.1)."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 256
    """Steps per update."""
    steps: int = 5000
    """Updates."""
    seed: int = 0
    """Seed of the network, the batches and the labeled trajectories."""

    @classmethod
    def released(cls) -> Config:
        """SS-ORL's released settings (slow on a CPU)."""
        return cls(hidden_dims=(1024, 1024), learning_rate=1e-4, batch_size=1024, steps=100_000)


def labeled_trajectories(dataset: Dataset, fraction: float, seed: int = 0) -> np.ndarray:
    """``fraction`` of the episodes (at least one), drawn from the lower half by return."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the labeled fraction must be in (0, 1], got {fraction}")
    returns = dataset.episode_returns()
    lower = np.argsort(returns, kind="stable")[: max(1, (len(returns) + 1) // 2)]
    count = min(len(lower), max(1, int(round(fraction * len(returns)))))
    return np.sort(np.random.default_rng(seed).choice(lower, count, replace=False))


def windows(dataset: Dataset) -> np.ndarray:
    """``[s_{t-1}, s_t, s_{t+1}]`` per step (``s_{t-1} = s_t`` at an episode's start)."""
    host = dataset.to_numpy()
    observations = np.asarray(host.observations, np.float32)
    previous = np.concatenate([observations[:1], observations[:-1]])
    previous[np.asarray(host.episode_starts)] = observations[np.asarray(host.episode_starts)]
    return np.concatenate([previous, observations, np.asarray(host.next_observations)], 1)


@dataclasses.dataclass(frozen=True)
class Model:
    """A fitted inverse-dynamics model: its network, parameters, input statistics and
    the action bounds its tanh output maps to."""

    network: MLP
    params: dict
    input_mean: np.ndarray
    input_std: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def predict(self, dataset: Dataset) -> np.ndarray:
        """The mean action ``tanh(mu)`` of every step, in the action bounds."""
        inputs = (windows(dataset) - self.input_mean) / self.input_std
        out = self.network.apply(self.params, jnp.asarray(inputs, jnp.float32))
        mu = np.asarray(jnp.split(out, 2, axis=-1)[0])
        return (self.low + (np.tanh(mu) + 1.0) / 2.0 * (self.high - self.low)).astype(np.float32)


def _bounds(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    if dataset.info.action_low is None:
        raise DatasetError(
            "has no recorded action bounds",
            field="actions",
            source=dataset.info.source,
            fix="record the action space with the data (or pass --env-id)",
        )
    return (
        np.asarray(dataset.info.action_low, np.float32),
        np.asarray(dataset.info.action_high, np.float32),
    )


def fit_model(
    labeled: Dataset, config: Config | None = None, statistics_from: tuple[Dataset, ...] = ()
) -> tuple[Model, np.ndarray]:
    """Fit the model on every step of ``labeled`` (which has actions); inputs are
    standardized with the statistics of the ``statistics_from`` datasets (all the states
    the model will see) or of ``labeled``. Returns the model and the per-update losses."""
    config = config or Config()
    labeled.require("actions", "fitting an inverse-dynamics model")
    host = labeled.to_numpy()
    low, high = _bounds(host)
    reference = np.concatenate([windows(d) for d in statistics_from or (host,)])
    mean, std = reference.mean(0), np.maximum(reference.std(0), 1e-6)
    inputs = jnp.asarray((windows(host) - mean) / std, jnp.float32)
    unit_actions = jnp.asarray(2.0 * (np.asarray(host.actions) - low) / (high - low) - 1.0)
    network = MLP(tuple(config.hidden_dims), 2 * host.action_dim, dropout_rate=config.dropout_rate)
    key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    params = network.init(init_key, inputs[:1])
    size = int(inputs.shape[0])
    batch = min(config.batch_size, size)

    def loss_fn(params, key):
        index_key, dropout_key = jax.random.split(key)
        chosen = jax.random.randint(index_key, (batch,), 0, size)
        out = network.apply(
            params, inputs[chosen], deterministic=False, rngs={"dropout": dropout_key}
        )
        mu, log_std = jnp.split(out, 2, axis=-1)
        log_std = jnp.clip(log_std, -5.0, 2.0)
        return -jnp.mean(tanh_gaussian_log_prob(mu, log_std, unit_actions[chosen], eps=1e-5))

    params, losses = fit(params, loss_fn, config.steps, config.learning_rate, key)
    return Model(network, params, mean, std, low, high), np.asarray(losses)


def _diagnostics(losses: np.ndarray, labeled_episodes: int, error: float) -> dict:
    return {
        "nll_first": float(losses[:50].mean()),
        "nll_last": float(losses[-50:].mean()),
        "labeled_episodes": labeled_episodes,
        # Only meaningful when the data had true actions to compare with (benchmarks).
        "rmse_against_recorded_actions": error,
    }


def fit_and_label(
    dataset: Dataset, labeled: np.ndarray, config: Config | None = None
) -> tuple[Dataset, dict]:
    """The dataset whose steps outside the ``labeled`` episodes carry the model's
    actions (the labeled ones keep theirs), and fit diagnostics. The way to try the
    method on data whose actions are all known."""
    host = dataset.to_numpy()
    model, losses = fit_model(host.select_episodes(labeled), config, statistics_from=(host,))
    predicted = model.predict(host)
    episode = np.repeat(np.arange(host.num_episodes), np.asarray(host.episode_lengths))
    is_labeled = np.isin(episode, labeled)
    actions = np.where(is_labeled[:, None], np.asarray(host.actions), predicted).astype(np.float32)
    unlabeled = ~is_labeled
    error = (
        float(np.sqrt(np.mean((predicted[unlabeled] - np.asarray(host.actions)[unlabeled]) ** 2)))
        if unlabeled.any()
        else float("nan")
    )
    relabeled = host.replace(actions=actions).with_subsets(
        {"labeled": labeled, "inferred": np.setdiff1d(np.arange(host.num_episodes), labeled)}
    )
    return relabeled, _diagnostics(losses, int(len(labeled)), error)


def label_unlabeled(
    labeled: Dataset, unlabeled: Dataset, config: Config | None = None
) -> tuple[Dataset, dict]:
    """SS-ORL on two logs: fit on ``labeled`` (with actions), label ``unlabeled``
    (states only, or actions to be replaced); the result is both, joined, with
    subsets ``labeled`` and ``inferred``."""
    labeled, unlabeled = labeled.to_numpy(), unlabeled.to_numpy()
    if labeled.observation_dim != unlabeled.observation_dim:
        raise DatasetError(
            f"has {unlabeled.observation_dim}-dimensional observations, but the labeled "
            f"dataset {labeled.info.location} has {labeled.observation_dim}",
            field="observations",
            source=unlabeled.info.location,
            fix="label a log of the same robot and observation layout",
        )
    model, losses = fit_model(labeled, config, statistics_from=(labeled, unlabeled))
    predicted = model.predict(unlabeled)
    recorded = unlabeled.actions
    error = (
        float(np.sqrt(np.mean((predicted - np.asarray(recorded)) ** 2)))
        if recorded is not None
        else float("nan")
    )
    low, high = model.low.tolist(), model.high.tolist()
    info = dataclasses.replace(
        labeled.info, action_low=tuple(low), action_high=tuple(high), subsets=(), filter_key=None
    )
    # A field only one side has (rewards, costs, ...) cannot be joined: it is left out.
    dropped = sorted(
        set(labeled.step_fields()) ^ set(unlabeled.replace(actions=predicted).step_fields())
    )
    parts = [
        labeled.replace(info=info, **dict.fromkeys(dropped)),
        unlabeled.replace(actions=predicted, info=info, **dict.fromkeys(dropped)),
    ]
    joined = concatenate(parts, info)
    count = labeled.num_episodes
    joined = joined.with_subsets(
        {"labeled": np.arange(count), "inferred": np.arange(count, joined.num_episodes)}
    )
    return joined, {**_diagnostics(losses, count, error), "dropped_fields": dropped}
