"""Checkpoints written atomically with Orbax.

A checkpoint is a directory ``checkpoints/step_<N>`` holding the train state,
the trainer's keys and the preprocessing statistics. Orbax writes into a
temporary directory and renames it when complete, so a killed process never
leaves a half-written ``step_<N>``; :func:`latest` ignores anything else.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import warnings

import flax.serialization
import jax
import numpy as np

_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read."""


def _checkpointer():
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer()


def save(directory: str | os.PathLike, step: int, payload) -> pathlib.Path:
    """Write ``payload`` (any pytree of arrays) as ``directory/step_<step>``."""
    directory = pathlib.Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"step_{step}"
    if target.exists():
        shutil.rmtree(target)
    state_dict = flax.serialization.to_state_dict(payload)
    state_dict = jax.tree_util.tree_map(np.asarray, state_dict)
    checkpointer = _checkpointer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checkpointer.save(target, state_dict)
        checkpointer.wait_until_finished()
    return target


def steps(directory: str | os.PathLike) -> list[int]:
    """Complete checkpoint steps in ``directory``, ascending."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _STEP_DIR.match(entry.name)
        if match and entry.is_dir():
            found.append(int(match.group(1)))
    return sorted(found)


def latest(directory: str | os.PathLike) -> int | None:
    found = steps(directory)
    return found[-1] if found else None


def restore(directory: str | os.PathLike, step: int, template):
    """Read ``step_<step>`` into the structure of ``template``.

    Raises:
        CheckpointError: naming the checkpoint and what to do, when it is
            missing, corrupt or was written for a different model.
    """
    import orbax.checkpoint as ocp

    path = pathlib.Path(directory).absolute() / f"step_{step}"
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint {path} does not exist; available steps: {steps(directory) or 'none'}"
        )
    template_dict = jax.tree_util.tree_map(np.asarray, flax.serialization.to_state_dict(template))
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template_dict)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            restored = _checkpointer().restore(path, abstract)
    except Exception as error:  # orbax/tensorstore raise many error types
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(error).__name__}: {str(error)[:300]}). "
            "It is corrupt or was written by a different configuration (network sizes, "
            "algorithm). Fix: delete it to fall back to an earlier one "
            f"(available: {steps(directory)}), or retrain"
        ) from error
    return flax.serialization.from_state_dict(template, restored)
