"""Windows of ``K`` consecutive steps of one episode, sampled on the device.

Sequence policies (the Decision Transformer, a state-space policy, BC-RNN, a
history encoder) learn from windows rather than single transitions. A window
starts at a row drawn uniformly from all rows (CORL's ``dt.py``: an episode with
probability proportional to its length, then a start uniform within it, which
is the same distribution) and runs forward ``K`` rows; rows past the end of the
episode are padding: zero in every field, ``mask`` 0.

The layout is **left-aligned**: position 0 holds the window's first row. A
causal model therefore reads the same inputs at position ``j`` whether or not
positions after ``j`` are padding, which is what evaluation relies on
(:mod:`offrl.core.history` fills a window from position 0 at an episode's
start and slides it once ``K`` steps are known).

Fields of a window batch, each ``[B, K, ...]``: every per-step field of the
dataset, plus ``timesteps`` (the row's step within its episode, int32),
``returns_to_go`` (the undiscounted sum of the rewards from that row to the end
of the episode, in the dataset's reward units: the ``mc_returns`` field when a
sequence algorithm's ``prepare_dataset`` set it, see :func:`with_returns_to_go`)
and ``mask`` (1 for a real row, 0 for padding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from offrl.data.dataset import Batch, Dataset, num_rows
from offrl.data.returns import dataset_returns_to_go


def with_returns_to_go(dataset: Dataset) -> Dataset:
    """The dataset with ``mc_returns`` set to the undiscounted return-to-go of every
    row (a sequence model's conditioning signal)."""
    dataset.require("rewards", "returns-to-go")
    return dataset.replace(mc_returns=dataset_returns_to_go(dataset, 1.0))


def window_rows(dataset: Dataset, starts: jax.Array, length: int):
    """``(rows[B, K], timesteps[B, K], mask[B, K])`` of windows starting at ``starts``.

    ``rows`` are clamped to the episode's last row where the window runs past it
    (so every gather is in bounds); ``mask`` says which positions are real.
    """
    episode_starts = jnp.asarray(dataset.episode_starts)
    episode = jnp.searchsorted(episode_starts, starts, side="right") - 1
    first = episode_starts[episode]
    end = first + jnp.asarray(dataset.episode_lengths)[episode]  # one past the last row
    rows = starts[:, None] + jnp.arange(length)[None, :]
    mask = rows < end[:, None]
    rows = jnp.minimum(rows, end[:, None] - 1)
    timesteps = (rows - first[:, None]).astype(jnp.int32)
    return rows, timesteps, mask


def windows_at(dataset: Dataset, starts: jax.Array, length: int) -> Batch:
    """The windows of ``length`` steps starting at rows ``starts [B]`` (see the module
    docstring). Padding positions are zero in every field (``timesteps`` included)."""
    rows, timesteps, mask = window_rows(dataset, starts, length)
    fields = dict(dataset.step_fields())
    if "mc_returns" in fields:
        fields["returns_to_go"] = fields.pop("mc_returns")
    out = {}
    for name, values in fields.items():
        taken = jnp.take(values, rows, axis=0)
        keep = mask.reshape(mask.shape + (1,) * (taken.ndim - 2))
        out[name] = jnp.where(keep, taken, jnp.zeros((), taken.dtype))
    out["timesteps"] = jnp.where(mask, timesteps, 0)
    out["mask"] = mask.astype(jnp.float32)
    return out


def sample_windows(dataset: Dataset, key: jax.Array, batch_size: int, length: int) -> Batch:
    """``batch_size`` windows of ``length`` steps, each starting at a row drawn
    uniformly. Pure; jit-able."""
    starts = jax.random.randint(key, (batch_size,), 0, num_rows(dataset))
    return windows_at(dataset, starts, length)
