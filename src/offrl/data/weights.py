"""Per-sample loss weights: attached to a dataset, read from and written to files.

A dataset's ``weights`` field (one non-negative value per step) reaches every batch;
the behavior-cloning losses and the actor losses that regress onto the data's actions
then take the self-normalized weighted mean ``sum_i w_i l_i / sum_i w_i`` over the
batch instead of the plain mean (:func:`offrl.algos.common.sample_mean`).

A weights file is an ``.npz`` with ``weights`` (one per step of the dataset as
loaded, before any filter key) or ``episode_weights`` (one per episode, given to
each of its steps), and optionally ``dataset_sha256``, the digest of the data it was
computed for (checked when present); or a plain ``.npy`` array of either length.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from offrl.data.dataset import Dataset
from offrl.data.formats.atomic import replace_atomically
from offrl.data.validate import DatasetError


def unweighted_digest(dataset: Dataset) -> str:
    """The digest of the data a weights file belongs to (its own weights left out)."""
    return dataset.replace(weights=None).digest()


def attach_weights(dataset: Dataset, weights, source: str = "weights") -> Dataset:
    """The dataset with per-step ``weights`` (``[N]``, or ``[E]`` per episode), checked:
    finite, non-negative, not all zero."""
    weights = np.asarray(weights, np.float64).reshape(-1)
    if weights.shape[0] == dataset.num_episodes and weights.shape[0] != dataset.size:
        weights = np.repeat(weights, np.asarray(dataset.episode_lengths))
    if weights.shape[0] != dataset.size:
        raise DatasetError(
            f"holds {weights.shape[0]} weights; the dataset has {dataset.size} steps in "
            f"{dataset.num_episodes} episodes",
            field="weights",
            source=source,
            fix="give one weight per step or per episode of the whole dataset (before any "
            "filter key)",
        )
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if bad.size:
        raise DatasetError(
            f"weight {weights[bad[0]]} is negative or not finite",
            field="weights",
            index=int(bad[0]),
            source=source,
            fix="weights must be finite and >= 0",
        )
    if not weights.any():
        raise DatasetError(
            "every weight is 0",
            field="weights",
            source=source,
            fix="keep at least one step with a positive weight",
        )
    return dataset.replace(weights=weights.astype(np.float32))


def read_weights(path: str | os.PathLike, dataset: Dataset) -> Dataset:
    """The dataset with the weights of the file at ``path`` (see the module docstring)."""
    path = pathlib.Path(path)
    try:
        content = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"is not a readable .npz or .npy file ({error})",
            field="weights",
            source=str(path),
            fix="write weights with numpy.savez or offrl data curate --weights-output",
        ) from error
    if isinstance(content, np.ndarray):
        return attach_weights(dataset, content, str(path))
    with content:
        names = set(content.files)
        recorded = str(content["dataset_sha256"]) if "dataset_sha256" in names else None
        if recorded is not None and recorded != unweighted_digest(dataset):
            raise DatasetError(
                "was computed for other data (its dataset_sha256 differs)",
                field="weights",
                source=str(path),
                fix="compute the weights again for this dataset",
            )
        for name in ("weights", "episode_weights"):
            if name in names:
                return attach_weights(dataset, content[name], str(path))
    raise DatasetError(
        f"holds neither 'weights' nor 'episode_weights' (it has {', '.join(sorted(names))})",
        field="weights",
        source=str(path),
        fix="store the per-step array as 'weights' or the per-episode one as 'episode_weights'",
    )


def write_weights(path: str | os.PathLike, dataset: Dataset, weights, **extra) -> pathlib.Path:
    """Write per-step (or per-episode) weights for ``dataset`` with its digest; ``extra``
    arrays (e.g. the scores they came from) are stored beside them."""
    weighted = attach_weights(dataset, weights, str(path))
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: pathlib.Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                weights=np.asarray(weighted.weights),
                dataset_sha256=np.asarray(unweighted_digest(dataset)),
                **{k: np.asarray(v) for k, v in extra.items()},
            )

    replace_atomically(path, write)
    return path
