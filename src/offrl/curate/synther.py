"""SynthER (Lu et al. 2023): more transitions than were logged, from a diffusion model.

An unconditional elucidated diffusion model (:mod:`offrl.nn.diffusion`) is fitted to
the dataset's transitions as flat vectors ``(s, a, r, s', termination)``,
standardized per column (the termination column is not: it stays 0/1), and samples
new ones. A sampled termination above 0.5 is a termination; sampled actions are
clipped to the action bounds (the sampler is not bounded). Each synthetic
transition is a one-step episode: terminated where the model says so, truncated
otherwise (bootstrapped from its ``s'``), so every algorithm trains on it as on
logged transitions. The output carries the subset ``synthetic`` (and ``real`` when
mixed with the data) and a metadata card entry, ``offrl_synthetic``.

The released settings (``Config.released()``): a residual MLP of width 2048 and 6
blocks, 100,000 updates of AdamW (lr 3e-4, betas 0.9/0.99, cosine decay, gradient
norm clipped at 1) at batch 256 below 800,000 transitions (1024 above), sampling
from the parameters' moving average (0.995 every 10 updates), 128 sampler steps.
The default here is sized for a CPU: width 256, 3 blocks, 20,000 updates, 128
sampler steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.curate.fit import EMA, fit
from offrl.data.dataset import Dataset, DatasetInfo, concatenate
from offrl.data.validate import DatasetError
from offrl.nn.diffusion import EDMConfig, ResidualMLPDenoiser, denoising_loss, sample


@dataclasses.dataclass(frozen=True)
class Config:
    """The diffusion model's settings."""

    width: int = 256
    """Width of the residual MLP (released: 2048)."""
    depth: int = 3
    """Residual blocks (released: 6)."""
    steps: int = 20_000
    """Updates (released: 100,000)."""
    batch_size: int = 256
    """Transitions per update (released: 256 below 800,000 transitions, else 1024)."""
    learning_rate: float = 3e-4
    """AdamW's peak learning rate, decayed to 0 on a cosine."""
    edm: EDMConfig = EDMConfig()
    """Noise levels and sampler (the released ones)."""
    sample_batch: int = 10_000
    """Samples drawn per sampler call (memory, not results)."""
    seed: int = 0
    """Seed of the network, the batches and the samples."""

    @classmethod
    def released(cls, transitions: int = 0) -> Config:
        """SynthER's released offline settings (slow on a CPU)."""
        batch = 1024 if transitions >= 800_000 else 256
        return cls(width=2048, depth=6, steps=100_000, batch_size=batch)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each part of a transition sits in the flat vector."""

    observation_dim: int
    action_dim: int

    @property
    def width(self) -> int:
        return 2 * self.observation_dim + self.action_dim + 2

    def split(self, x: np.ndarray) -> dict[str, np.ndarray]:
        o, a = self.observation_dim, self.action_dim
        return {
            "observations": x[:, :o],
            "actions": x[:, o : o + a],
            "rewards": x[:, o + a],
            "next_observations": x[:, o + a + 1 : 2 * o + a + 1],
            "terminations": x[:, -1],
        }


def transition_vectors(dataset: Dataset) -> np.ndarray:
    """``[N, 2 obs + act + 2]``: ``(s, a, r, s', termination)`` per row."""
    dataset.require(("actions", "rewards"), "a diffusion model of transitions")
    host = dataset.to_numpy()
    return np.concatenate(
        [
            np.asarray(host.observations, np.float32),
            np.asarray(host.actions, np.float32),
            np.asarray(host.rewards, np.float32)[:, None],
            np.asarray(host.next_observations, np.float32),
            np.asarray(host.terminations, np.float32)[:, None],
        ],
        axis=1,
    )


@dataclasses.dataclass(frozen=True)
class Model:
    """A fitted diffusion model of a dataset's transitions."""

    network: ResidualMLPDenoiser
    params: dict
    mean: np.ndarray
    std: np.ndarray
    layout: Layout
    config: Config
    info: DatasetInfo
    losses: np.ndarray

    def __post_init__(self):
        # One compiled sampler per model (a jit built per call would compile every call).
        draw = jax.jit(
            lambda params, k, n: sample(
                self.network.apply, params, k, n, self.layout.width, self.config.edm
            ),
            static_argnums=2,
        )
        object.__setattr__(self, "_draw", draw)

    def sample_vectors(self, count: int, key: jax.Array) -> np.ndarray:
        """``count`` synthetic transition vectors in the data's units."""
        chunks, done = [], 0
        while done < count:
            n = min(self.config.sample_batch, count - done)
            key, chunk_key = jax.random.split(key)
            chunks.append(np.asarray(self._draw(self.params, chunk_key, n)))
            done += n
        standardized = np.concatenate(chunks) if chunks else np.zeros((0, self.layout.width))
        return (standardized * self.std + self.mean).astype(np.float32)

    def sample_dataset(self, count: int, seed: int | None = None) -> Dataset:
        """``count`` synthetic transitions as a dataset of one-step episodes."""
        seed = self.config.seed + 1 if seed is None else seed
        vectors = self.sample_vectors(count, jax.random.PRNGKey(seed))
        return vectors_to_dataset(vectors, self.layout, self.info)


def vectors_to_dataset(vectors: np.ndarray, layout: Layout, info: DatasetInfo) -> Dataset:
    """Transition vectors as one-step episodes (terminated above 0.5, else truncated),
    actions clipped to ``info``'s bounds."""
    parts = layout.split(vectors)
    count = len(vectors)
    actions = parts["actions"]
    if info.action_low is not None:
        actions = np.clip(actions, np.asarray(info.action_low), np.asarray(info.action_high))
    terminations = parts["terminations"] > 0.5
    info = dataclasses.replace(info, subsets=(), filter_key=None)
    return Dataset(
        observations=parts["observations"].astype(np.float32),
        actions=actions.astype(np.float32),
        rewards=parts["rewards"].astype(np.float32),
        next_observations=parts["next_observations"].astype(np.float32),
        terminations=terminations,
        truncations=~terminations,
        episode_starts=np.arange(count, dtype=np.int64),
        episode_lengths=np.ones(count, np.int64),
        info=info,
    ).with_subsets({"synthetic": np.arange(count)})


def fit_model(dataset: Dataset, config: Config | None = None) -> Model:
    """Fit the diffusion model to every transition of ``dataset``."""
    config = config or Config()
    vectors = transition_vectors(dataset)
    if len(vectors) < 2:
        raise DatasetError(
            f"holds {len(vectors)} transition(s); a diffusion model needs more",
            field="observations",
            source=dataset.info.location,
            fix="pass a dataset with transitions to model",
        )
    layout = Layout(dataset.observation_dim, dataset.action_dim)
    mean = vectors.mean(0)
    std = vectors.std(0, ddof=1) + 1e-5
    mean[-1], std[-1] = 0.0, 1.0  # the termination column is not standardized
    data = jnp.asarray((vectors - mean) / std, jnp.float32)
    network = ResidualMLPDenoiser(layout.width, config.width, config.depth)
    key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    params = network.init(init_key, data[:1], jnp.zeros(1))
    size, batch = data.shape[0], min(config.batch_size, data.shape[0])

    def loss_fn(params, key):
        index_key, noise_key = jax.random.split(key)
        rows = jax.random.randint(index_key, (batch,), 0, size)
        return denoising_loss(network.apply, params, data[rows], noise_key, config.edm)

    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(
            optax.cosine_decay_schedule(config.learning_rate, config.steps),
            b1=0.9,
            b2=0.99,
            weight_decay=0.0,
        ),
    )
    params, losses = fit(params, loss_fn, config.steps, 0.0, key, optimizer, EMA())
    return Model(network, params, mean, std, layout, config, dataset.info, losses)


def augment(
    dataset: Dataset, count: int, config: Config | None = None, mix: bool = True
) -> tuple[Dataset, Model]:
    """``count`` synthetic transitions from a model fitted to ``dataset``: with
    ``mix``, after the real episodes (subsets ``real`` and ``synthetic``), else alone."""
    if count <= 0:
        raise ValueError(f"the number of synthetic transitions must be positive, got {count}")
    model = fit_model(dataset, config)
    synthetic = model.sample_dataset(count)
    if not mix:
        return synthetic, model
    real = dataset.to_numpy()
    real = real.replace(
        info=dataclasses.replace(real.info, subsets=(), filter_key=None), weights=None
    )
    keep = set(synthetic.step_fields())
    real = real.replace(**{name: None for name in real.step_fields() if name not in keep})
    joined = concatenate([real, synthetic.replace(info=real.info)], real.info)
    return joined.with_subsets(
        {
            "real": np.arange(real.num_episodes),
            "synthetic": np.arange(real.num_episodes, joined.num_episodes),
        }
    ), model
