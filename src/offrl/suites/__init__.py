"""Benchmark dataset recipes, built on demand into a local cache.

The cache is ``$OFFRL_DATA_DIR`` or ``~/.cache/offrl/datasets``; each dataset
is a Minari dataset directory there. Nothing is downloaded.
"""

from __future__ import annotations

import os
import pathlib

from offrl.data.dataset import Dataset


def cache_dir() -> pathlib.Path:
    env = os.environ.get("OFFRL_DATA_DIR")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "offrl" / "datasets"


def available() -> list[str]:
    from offrl.suites import pendulum

    return list(pendulum.RECIPES)


def build_suite_dataset(name: str, force: bool = False) -> pathlib.Path:
    """Build recipe ``name`` into the cache (a Minari dataset); returns its path."""
    from offrl.data.formats.minari import write_minari
    from offrl.suites import pendulum

    if name not in available():
        raise KeyError(f"unknown suite dataset '{name}'; available: {', '.join(available())}")
    path = cache_dir() / name
    if path.exists() and not force:
        return path
    dataset = pendulum.build(name)
    write_minari(
        dataset,
        path,
        dataset_id=name,
        overwrite=True,
        metadata={
            "description": pendulum.__doc__.splitlines()[0],
            "algorithm_name": "offrl.suites.pendulum",
        },
    )
    return path


def load_suite_dataset(name: str) -> Dataset:
    from offrl.data.formats.minari import read_minari

    dataset = read_minari(build_suite_dataset(name))
    return dataset.replace(
        info=dataset.info.__class__(
            name=name,
            env_id=dataset.info.env_id,
            action_low=dataset.info.action_low,
            action_high=dataset.info.action_high,
            source=f"suite:{name}",
        )
    )
