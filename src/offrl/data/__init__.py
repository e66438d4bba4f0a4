"""Datasets: the pytree, validation, normalization and file formats."""

from offrl.data.dataset import (
    Batch,
    Dataset,
    DatasetInfo,
    concatenate,
    from_episodes,
    sample,
    split_by_episode,
    to_episodes,
)
from offrl.data.loading import load_dataset
from offrl.data.normalization import Normalizer
from offrl.data.validate import DatasetError, validate

__all__ = [
    "Batch",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "Normalizer",
    "concatenate",
    "from_episodes",
    "load_dataset",
    "sample",
    "split_by_episode",
    "to_episodes",
    "validate",
]
