"""Data quality: scores of a dataset and of each of its episodes, from the data alone.

Per episode (``SCORES`` says which direction is better):

- ``return``: the undiscounted return (where the data has rewards).
- ``action_divergence`` (Data Quality in IL, Belkhale et al. 2023: consistent,
  low-entropy actions make good data): in random batches of ``batch_size`` steps,
  each step's ``k`` nearest states from *other* episodes; the mean of
  ``||a_i - a_j||^2`` over them, divided by ``2 * action_dim`` (actions
  standardized), so 1 means actions unrelated to the state and 0 identical actions
  at similar states. Lower is better.
- ``novelty``: the mean distance (standardized states) from an episode's steps to
  the nearest step of another episode in the batch. High for detours and for data
  from other dynamics; neither good nor bad by itself.
- ``deminf`` (DemInf, Hejna et al. 2025): each step's contribution to the KSG
  estimate of the mutual information ``I(S; A)``, ``-(psi(n_s) + psi(n_a))``
  averaged over ``k = 5, 6, 7``, where ``n_s``, ``n_a`` count the batch's points
  (the point itself included) closer in state, resp. action, than the ``k``-th
  nearest neighbour in the joint max-norm; computed on latents (a beta-VAE's means,
  or the standardized data), clipped to the 1st-99th percentile, standardized, and
  averaged per episode. Demonstrations whose actions follow predictably from their
  states score high. Higher is better.
- ``overlap`` (with ``reference``): the share of an episode's steps whose nearest
  reference state is closer than the reference's own median nearest-neighbour
  distance. Higher is closer to the reference.

Per dataset: the means of the above, the KSG estimate of ``I(S; A)`` in nats
(``mutual_information``) and the Kozachenko-Leonenko entropy of the standardized
states in nats (``state_entropy``, a coverage measure; higher is more diverse).

Deviations from DemInf's released code (``quality_estimators.py``): the latents
default to the standardized data when a space has no more dimensions than the
paper's latent (12 for states, 6 for actions), and the beta-VAE trains for 2,000
updates at Adam 1e-3 with 256x256 layers (the paper: 50k updates at 1e-4, 512x512),
sized for a CPU; the paper's settings are ``QualityConfig.paper()``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import digamma

from offrl.curate.fit import fit
from offrl.data.dataset import Dataset
from offrl.data.formats.atomic import replace_atomically
from offrl.data.validate import DatasetError
from offrl.nn.vae import VAE, vae_loss

#: Per-episode scores and whether higher is better (``None``: neither).
SCORES: dict[str, bool | None] = {
    "return": True,
    "action_divergence": False,
    "novelty": None,
    "deminf": True,
    "overlap": True,
}
SCORES_FORMAT = "offrl-quality-1"


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """How the quality scores are computed."""

    neighbors: int = 5
    """k of the action-divergence neighbourhood."""
    ksg_neighbors: tuple[int, ...] = (5, 6, 7)
    """The k of the KSG estimator, averaged (DemInf's)."""
    batch_size: int = 256
    """Steps per random batch in which neighbours are found (DemInf's 256)."""
    repeats: int = 4
    """Passes over the data in fresh random batches (DemInf's 4)."""
    encoder: Literal["auto", "vae", "none"] = "auto"
    """DemInf's latents: a beta-VAE per space, the standardized data, or auto (a VAE for a
    space with more dimensions than its latent)."""
    state_latent_dim: int = 12
    """Latent size for states (DemInf's 12)."""
    action_latent_dim: int = 6
    """Latent size for actions (DemInf's 6)."""
    vae_hidden_dims: tuple[int, ...] = (256, 256)
    """Encoder widths (the decoder mirrors them)."""
    vae_beta: float = 0.05
    """KL weight of the beta-VAE (DemInf's 0.05)."""
    vae_steps: int = 2000
    """Updates of each beta-VAE."""
    vae_learning_rate: float = 1e-3
    """Adam learning rate of the beta-VAE."""
    seed: int = 0
    """Seed of the batches and the VAE."""

    @classmethod
    def paper(cls) -> QualityConfig:
        """DemInf's released settings (50k VAE updates at 1e-4, 512x512; slow on a CPU)."""
        return cls(
            encoder="vae", vae_hidden_dims=(512, 512), vae_steps=50_000, vae_learning_rate=1e-4
        )


# ----------------------------------------------------------------- estimators
def _pairwise(x: np.ndarray) -> np.ndarray:
    """Euclidean distances ``[B, B]``."""
    squared = np.sum(x * x, axis=1)
    d2 = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
    return np.sqrt(np.maximum(d2, 0.0))


def ksg_point_scores(x: np.ndarray, y: np.ndarray, ks=(5, 6, 7)) -> np.ndarray:
    """Each point's ``-(psi(n_x) + psi(n_y))``, averaged over ``ks`` (``n``: points, itself
    included, strictly closer than its ``k``-th joint max-norm neighbour)."""
    dx, dy = _pairwise(x), _pairwise(y)
    joint = np.maximum(dx, dy)
    ordered = np.sort(joint, axis=1)  # column 0 is the point itself
    scores = np.zeros(len(x))
    for k in ks:
        radius = ordered[:, min(k, len(x) - 1)][:, None]
        n_x = np.sum(dx < radius, axis=1)
        n_y = np.sum(dy < radius, axis=1)
        scores -= digamma(n_x) + digamma(n_y)
    return scores / len(ks)


def ksg_mutual_information(x: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    """Kraskov-Stoegbauer-Grassberger estimate (their first algorithm) of ``I(X; Y)`` in
    nats: ``psi(k) + psi(N) - <psi(n_x + 1) + psi(n_y + 1)>``."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    n = len(x)
    return float(digamma(k) + digamma(n) + ksg_point_scores(x, y, (k,)).mean())


def kozachenko_leonenko_entropy(x: np.ndarray, k: int = 3) -> float:
    """Differential entropy estimate in nats (Euclidean ``k``-NN, Kozachenko-Leonenko)."""
    from scipy.spatial import cKDTree
    from scipy.special import gammaln

    x = np.asarray(x, np.float64)
    n, d = x.shape
    distances, _ = cKDTree(x).query(x, k=k + 1)
    radius = np.maximum(distances[:, k], 1e-12)
    log_unit_ball = (d / 2) * np.log(np.pi) - gammaln(d / 2 + 1)
    return float(digamma(n) - digamma(k) + log_unit_ball + d * np.mean(np.log(radius)))


# ------------------------------------------------------------------- latents
def standardize(x: np.ndarray) -> np.ndarray:
    """Each column to zero mean and unit standard deviation (float64)."""
    x = np.asarray(x, np.float64)
    return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-6)


def fit_vae(
    x: np.ndarray,
    latent_dim: int,
    hidden_dims: tuple[int, ...] = (256, 256),
    beta: float = 0.05,
    steps: int = 2000,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """A beta-VAE fitted on ``x`` (standardized with ``x``'s statistics); returns the
    encoder: rows like ``x`` to their latent means ``[M, latent_dim]``."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    data = jnp.asarray((x - mean) / std, jnp.float32)
    model = VAE(data.shape[1], latent_dim, tuple(hidden_dims))
    key, init_key = jax.random.split(jax.random.PRNGKey(seed))
    params = model.init(init_key, data[:1], init_key)
    batch = min(256, data.shape[0])

    def loss_fn(p, key):
        index_key, noise_key = jax.random.split(key)
        rows = data[jax.random.randint(index_key, (batch,), 0, data.shape[0])]
        reconstruction, mu, log_var = model.apply(p, rows, noise_key)
        return vae_loss(reconstruction, rows, mu, log_var, beta)[0]

    params, _ = fit(params, loss_fn, steps, learning_rate, key)
    encode = jax.jit(lambda rows: model.apply(params, rows, method=VAE.encode)[0])

    def encoder(rows: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(rows, np.float64) - mean) / std
        return np.asarray(encode(jnp.asarray(scaled, jnp.float32)), np.float64)

    return encoder


def fit_vae_latents(x: np.ndarray, latent_dim: int, config: QualityConfig) -> np.ndarray:
    """A beta-VAE on standardized ``x``; returns the encoder means ``[N, latent_dim]``."""
    encoder = fit_vae(
        x,
        latent_dim,
        tuple(config.vae_hidden_dims),
        config.vae_beta,
        config.vae_steps,
        config.vae_learning_rate,
        config.seed,
    )
    return encoder(x)


def latents(x: np.ndarray, latent_dim: int, config: QualityConfig) -> np.ndarray:
    """DemInf's representation of one space (see ``QualityConfig.encoder``)."""
    use_vae = config.encoder == "vae" or (config.encoder == "auto" and x.shape[1] > latent_dim)
    return fit_vae_latents(x, latent_dim, config) if use_vae else standardize(x)


# --------------------------------------------------------------------- scores
def _batches(n: int, config: QualityConfig) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(config.seed)
    parts = max(1, round(n / config.batch_size))
    for _ in range(config.repeats):
        yield from np.array_split(rng.permutation(n), parts)


def episode_means(values: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The mean of per-step ``values`` over each episode's finite entries, ``[E]``."""
    starts = np.asarray(dataset.episode_starts)
    lengths = np.asarray(dataset.episode_lengths)
    out = np.full(len(starts), np.nan)
    for i, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        part = values[start : start + length]
        part = part[np.isfinite(part)]
        if part.size:
            out[i] = part.mean()
    return out


def assess(
    dataset: Dataset, config: QualityConfig | None = None, reference: Dataset | None = None
) -> dict:
    """Quality scores of ``dataset`` (and its overlap with ``reference``): a dict with
    ``dataset`` metrics, per-``episodes`` score lists, per-``subsets`` means and the
    settings. Written by :func:`write_scores`, read by ``offrl data curate``."""
    config = config or QualityConfig()
    host = dataset.to_numpy()
    n = host.size
    needed = 2 * max(config.ksg_neighbors) + 2
    if n < needed:
        raise DatasetError(
            f"holds {n} steps; the quality scores need at least {needed}",
            field="observations",
            source=dataset.info.source,
            fix="score a larger dataset",
        )
    if host.actions is None:
        raise DatasetError(
            "has no actions",
            field="actions",
            source=dataset.info.source,
            fix="label the actions first",
        )
    states = standardize(host.observations)
    actions = standardize(host.actions)
    episode_of = np.repeat(np.arange(host.num_episodes), np.asarray(host.episode_lengths))
    z_states = latents(np.asarray(host.observations), config.state_latent_dim, config)
    z_actions = latents(np.asarray(host.actions), config.action_latent_dim, config)

    sums = {name: np.zeros(n) for name in ("action_divergence", "novelty", "deminf")}
    counts = {name: np.zeros(n) for name in sums}
    mi_terms = []
    for rows in _batches(n, config):
        b = len(rows)
        d_state = _pairwise(states[rows])
        other = episode_of[rows][:, None] != episode_of[rows][None, :]
        masked = np.where(other, d_state, np.inf)
        k = min(config.neighbors, b - 1)
        nearest = np.argsort(masked, axis=1)[:, :k]  # [b, k]
        valid = np.take_along_axis(other, nearest, axis=1)
        gaps = np.sum((actions[rows][:, None, :] - actions[rows][nearest]) ** 2, axis=-1)
        has = valid.any(axis=1)
        divergence = np.where(has, (gaps * valid).sum(1) / np.maximum(valid.sum(1), 1), np.nan)
        divergence /= 2.0 * actions.shape[1]
        novelty = np.where(has, masked.min(axis=1), np.nan)
        deminf = ksg_point_scores(z_states[rows], z_actions[rows], config.ksg_neighbors)
        mi_terms.append(
            np.mean([digamma(k) for k in config.ksg_neighbors]) + digamma(b) + deminf.mean()
        )
        for name, value in (
            ("action_divergence", divergence),
            ("novelty", novelty),
            ("deminf", deminf),
        ):
            finite = np.isfinite(value)
            np.add.at(sums[name], rows[finite], value[finite])
            np.add.at(counts[name], rows[finite], 1.0)
    per_step = {
        name: np.where(counts[name] > 0, sums[name] / np.maximum(counts[name], 1), np.nan)
        for name in sums
    }
    raw = per_step["deminf"]
    low, high = np.nanpercentile(raw, [1, 99])
    clipped = np.clip(raw, low, high)
    per_step["deminf"] = (clipped - np.nanmean(clipped)) / max(np.nanstd(clipped), 1e-12)

    episodes = {"return": host.episode_returns(), "length": np.asarray(host.episode_lengths)}
    for name, values in per_step.items():
        episodes[name] = episode_means(values, host)
    metrics = {
        "mutual_information": float(np.mean(mi_terms)),
        "action_divergence": float(np.nanmean(per_step["action_divergence"])),
        "novelty": float(np.nanmean(per_step["novelty"])),
        "state_entropy": kozachenko_leonenko_entropy(
            states[np.random.default_rng(config.seed).permutation(n)[:5000]]
        ),
    }
    if reference is not None:
        episodes["overlap"], metrics["overlap"] = _overlap(host, reference)
    subsets = {
        name: {
            score: float(np.nanmean(np.asarray(values, np.float64)[list(ids)]))
            for score, values in episodes.items()
            if len(ids)
        }
        for name, ids in host.info.subsets
    }
    return {
        "format": SCORES_FORMAT,
        "dataset": dataset.info.source or dataset.info.name,
        "filter_key": dataset.info.filter_key,
        "dataset_sha256": dataset.replace(weights=None).digest(),
        "num_episodes": host.num_episodes,
        "settings": dataclasses.asdict(config),
        "dataset_metrics": metrics,
        "episodes": {k: [float(v) for v in values] for k, values in episodes.items()},
        "subsets": subsets,
    }


def _overlap(host: Dataset, reference: Dataset) -> tuple[np.ndarray, float]:
    from scipy.spatial import cKDTree

    reference = reference.to_numpy()
    if reference.observation_dim != host.observation_dim:
        raise DatasetError(
            f"has {reference.observation_dim}-dimensional observations, the dataset "
            f"{host.observation_dim}",
            field="reference",
            source=reference.info.source,
            fix="compare datasets of the same task",
        )
    mean = np.asarray(reference.observations).mean(axis=0)
    std = np.maximum(np.asarray(reference.observations).std(axis=0), 1e-6)
    rng = np.random.default_rng(0)
    ref = (np.asarray(reference.observations) - mean) / std
    ref = ref[rng.permutation(len(ref))[:50_000]]
    tree = cKDTree(ref)
    radius = np.median(tree.query(ref, k=2)[0][:, 1])
    distance = tree.query((np.asarray(host.observations) - mean) / std, k=1)[0]
    inside = (distance <= radius).astype(np.float64)
    return episode_means(inside, host), float(inside.mean())


# ------------------------------------------------------------------ the file
def write_scores(path: str | os.PathLike, scores: dict) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(scores, indent=1, allow_nan=True) + "\n"
    replace_atomically(path, lambda tmp: tmp.write_text(text))
    return path


def read_scores(path: str | os.PathLike, dataset: Dataset | None = None) -> dict:
    """A scores file, checked to belong to ``dataset`` (its digest and episode count)."""
    path = pathlib.Path(path)
    try:
        scores = json.loads(path.read_text())
        episodes = scores["episodes"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(
            f"is not a quality scores file ({type(error).__name__}: {error})",
            field="scores",
            source=str(path),
            fix="write one with offrl data quality DATASET --output FILE",
        ) from error
    if (
        dataset is not None
        and scores.get("dataset_sha256") != dataset.replace(weights=None).digest()
    ):
        raise DatasetError(
            "was computed for other data (its dataset_sha256 differs)",
            field="scores",
            source=str(path),
            fix="score this dataset with offrl data quality (without a filter key)",
        )
    if dataset is not None and any(len(v) != dataset.num_episodes for v in episodes.values()):
        raise DatasetError(
            f"does not hold one score per episode ({dataset.num_episodes})",
            field="scores",
            source=str(path),
            fix="score this dataset with offrl data quality",
        )
    return scores
