"""One entry point that loads any supported dataset by path or name."""

from __future__ import annotations

import importlib
import os
import pathlib

from offrl.data.dataset import Dataset
from offrl.data.formats.lerobot import is_lerobot, read_lerobot
from offrl.data.validate import DatasetError

#: Named dataset sources, ``PREFIX:NAME`` -> ``"module:function"`` taking ``NAME``. A
#: registry by import path, like the algorithm registry: the data layer names the
#: built-in suites without depending on them (they build datasets by running
#: policies, which sits above the data layer).
SOURCES: dict[str, str] = {"suite": "offrl.suites:load_suite_dataset"}


def register_source(prefix: str, target: str) -> None:
    """Make ``load_dataset("PREFIX:NAME")`` call ``target`` (``"module:function"``)."""
    SOURCES[prefix] = target


def _named_source(text: str) -> Dataset | None:
    prefix, _, name = text.partition(":")
    if not name or prefix not in SOURCES:
        return None
    module, function = SOURCES[prefix].split(":")
    return getattr(importlib.import_module(module), function)(name)


def load_dataset(
    spec: str | os.PathLike,
    observation_keys: tuple[str, ...] | None = None,
    env_id: str | None = None,
    filter_key: str | None = None,
    done_means: str = "truncation",
) -> Dataset:
    """Load and validate a dataset; with ``filter_key``, only the episodes of that named
    subset (a robomimic filter key, see :mod:`offrl.data.subsets`).

    ``spec`` is one of:

    - a built-in suite dataset, ``suite:NAME`` (e.g. ``suite:pendulum-mixed``),
      built into the local cache on first use;
    - a ``.hdf5``/``.h5`` file: robomimic-style when it has a ``data`` group of
      demos, D4RL-style otherwise;
    - a LeRobot v3 dataset directory (``meta/info.json``; states and actions,
      :mod:`offrl.data.formats.lerobot`; ``done_means`` says what its episodes'
      last frames are: ``truncation`` or ``termination``);
    - a Minari dataset directory, or a Minari dataset id under
      ``MINARI_DATASETS_PATH``.
    """
    dataset = _load(str(spec), observation_keys, env_id, done_means)
    if filter_key is None:
        return dataset
    try:
        return dataset.subset(filter_key)
    except KeyError as error:
        raise DatasetError(
            error.args[0], field="filter_key", fix="pick one of the subsets named"
        ) from error


def _load(text: str, observation_keys, env_id, done_means: str = "truncation") -> Dataset:
    named = _named_source(text)
    if named is not None:
        return named
    path = pathlib.Path(text)
    if is_lerobot(path):
        return read_lerobot(path, observation_keys, env_id, done_means)
    if path.suffix in (".hdf5", ".h5"):
        from offrl.data.formats.hdf5 import _open, read_d4rl_hdf5, read_robomimic_hdf5

        with _open(path) as f:
            is_robomimic = "data" in f and "observations" not in f
        if is_robomimic:
            return read_robomimic_hdf5(path, observation_keys, env_id=env_id)
        observation_space = action_space = None
        if env_id:
            from offrl.envs import make_env

            env = make_env(env_id)
            observation_space, action_space = env.observation_space, env.action_space
            env.close()
        return read_d4rl_hdf5(path, env_id, observation_space, action_space)
    from offrl.data.formats.minari import read_minari

    try:
        return read_minari(path)
    except DatasetError as error:
        if path.exists() or "metadata.json" not in str(error):
            raise
        raise DatasetError(
            f"'{text}' is neither a file, a Minari or LeRobot dataset directory, a Minari id under "
            "MINARI_DATASETS_PATH, nor suite:NAME",
            field="dataset",
            fix="pass a .hdf5 file, a Minari or LeRobot dataset directory, or suite:NAME "
            "(offrl suite list shows the built-in ones)",
        ) from error
