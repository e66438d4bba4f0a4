"""Checkpoints written atomically with Orbax, verified on load.

A checkpoint is a directory ``checkpoints/step_<N>`` holding the train state,
the trainer's keys and the preprocessing statistics, plus ``offrl_manifest.json``:
the size and SHA-256 of every file in it.

Writing: Orbax writes into a hidden staging directory, the manifest is added,
and the directory is renamed to ``step_<N>``. An existing ``step_<N>`` is
renamed aside first and deleted only after its replacement is in place, so a
process killed at any moment leaves either the old or the new checkpoint
(never neither, never half of one). :func:`steps` lists only published ones.

Reading: :func:`verify` checks every file against the manifest and names the
first one that is missing, truncated or changed; :func:`restore_latest` falls
back from a damaged checkpoint to the newest intact one, moving the damaged one
aside (``damaged_step_<N>``), never deleting it. A checkpoint whose files all
match its manifest but which does not fit the reader's template (other network
sizes, another algorithm) is not damaged: it raises :class:`CheckpointMismatch`
and stays where it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence

import flax.serialization
import jax
import numpy as np

_STEP_DIR = re.compile(r"^step_(\d+)$")
MANIFEST = "offrl_manifest.json"
#: Files every Orbax checkpoint has (checked for checkpoints written before manifests).
_ORBAX_REQUIRED = ("_METADATA", "manifest.ocdbt")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read."""


class CheckpointMismatch(CheckpointError):
    """An intact checkpoint (every file matches its manifest) that does not fit the
    structure it was read into: the reader's configuration is wrong, not the files.
    Never moved aside."""


def _checkpointer():
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer()


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Payload parts added since manifests record a checkpoint's parts: a checkpoint
#: whose manifest records none has none of these.
LATER_PARTS = ("best",)


def _write_manifest(root: pathlib.Path, step: int, payload_keys: list[str] | None) -> None:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        files[rel] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {"step": step, "files": files}
    if payload_keys is not None:
        manifest["payload_keys"] = payload_keys
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1))


def _held_parts(path: pathlib.Path, template: dict) -> dict:
    """``template`` without the parts the checkpoint at ``path`` does not hold."""
    manifest = json.loads((path / MANIFEST).read_text()) if (path / MANIFEST).is_file() else {}
    held = manifest.get("payload_keys")
    if held is None:
        return {k: v for k, v in template.items() if k not in LATER_PARTS}
    return {k: v for k, v in template.items() if k in held}


def save(directory: str | os.PathLike, step: int, payload) -> pathlib.Path:
    """Write ``payload`` (any pytree of arrays) as ``directory/step_<step>``.

    An existing ``step_<step>`` is replaced only once the new one is complete.
    """
    directory = pathlib.Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"step_{step}"
    staging = directory / f".step_{step}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    state_dict = flax.serialization.to_state_dict(payload)
    state_dict = jax.tree_util.tree_map(np.asarray, state_dict)
    checkpointer = _checkpointer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checkpointer.save(staging, state_dict)
        checkpointer.wait_until_finished()
    _write_manifest(staging, step, sorted(state_dict) if isinstance(state_dict, dict) else None)
    if target.exists():
        old = directory / f".step_{step}.replaced-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
    return target


def steps(directory: str | os.PathLike) -> list[int]:
    """Published checkpoint steps in ``directory``, ascending (intact or not: see
    :func:`verify`)."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    _recover_replaced(directory)
    found = []
    for entry in directory.iterdir():
        match = _STEP_DIR.match(entry.name)
        if match and entry.is_dir():
            found.append(int(match.group(1)))
    return sorted(found)


def _recover_replaced(directory: pathlib.Path) -> None:
    """A process killed between the two renames of :func:`save` leaves the old
    checkpoint as ``.step_<N>.replaced-*`` and no ``step_<N>``: put it back."""
    for entry in directory.glob(".step_*.replaced-*"):
        target = directory / entry.name[1:].split(".replaced-")[0]
        if not target.exists():
            with contextlib.suppress(OSError):
                os.replace(entry, target)


def latest(directory: str | os.PathLike) -> int | None:
    found = steps(directory)
    return found[-1] if found else None


def verify(directory: str | os.PathLike, step: int) -> None:
    """Check ``step_<step>`` file by file against its manifest.

    Raises:
        CheckpointError: one line naming the step and the first damaged file.
    """
    path = pathlib.Path(directory).absolute() / f"step_{step}"
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint step {step} does not exist ({path}); available steps: "
            f"{steps(directory) or 'none'}"
        )
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        # Written before manifests: check the files Orbax always writes.
        for name in _ORBAX_REQUIRED:
            if not (path / name).is_file():
                raise CheckpointError(
                    f"checkpoint step {step} is damaged: {path / name} is missing"
                )
        return
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"checkpoint step {step} is damaged: {manifest_path} is unreadable ({error})"
        ) from error
    for rel, expected in files.items():
        file = path / rel
        if not file.is_file():
            raise CheckpointError(f"checkpoint step {step} is damaged: {file} is missing")
        size = file.stat().st_size
        if size != expected.get("size"):
            raise CheckpointError(
                f"checkpoint step {step} is damaged: {file} has {size} bytes, "
                f"{expected.get('size')} were written (truncated or changed)"
            )
        if _sha256(file) != expected.get("sha256"):
            raise CheckpointError(
                f"checkpoint step {step} is damaged: {file} does not match its checksum"
            )


def restore(directory: str | os.PathLike, step: int, template):
    """Read ``step_<step>`` into the structure of ``template`` (verified first).

    A dict ``template`` may name parts the checkpoint does not hold (parts added to
    the payload later, such as the best policy); they are left out of the result.

    Raises:
        CheckpointError: naming the checkpoint and what to do, when it is
            missing, damaged or was written for a different model.
    """
    import orbax.checkpoint as ocp

    verify(directory, step)
    path = pathlib.Path(directory).absolute() / f"step_{step}"
    if isinstance(template, dict):
        template = _held_parts(path, template)
    template_dict = jax.tree_util.tree_map(np.asarray, flax.serialization.to_state_dict(template))
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template_dict)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            restored = _checkpointer().restore(path, abstract)
    except Exception as error:  # orbax/tensorstore raise many error types
        detail = " ".join(str(error).split())[:200]
        if (path / MANIFEST).is_file():  # verified above: the files are as written
            raise CheckpointMismatch(
                f"checkpoint step {step} ({path}) is intact but does not fit this "
                f"configuration ({type(error).__name__}: {detail}); read it with the "
                "settings it was written with (network sizes, algorithm)"
            ) from error
        raise CheckpointError(
            f"checkpoint step {step} ({path}) could not be read ({type(error).__name__}: "
            f"{detail}); it is damaged or was written by a different configuration "
            "(network sizes, algorithm)"
        ) from error
    # Orbax restores what was written, whatever shape the template asked for.
    for (where, want), got in zip(
        jax.tree_util.tree_flatten_with_path(template_dict)[0],
        jax.tree_util.tree_leaves(restored),
        strict=True,
    ):
        if np.shape(got) != np.shape(want):
            raise CheckpointMismatch(
                f"checkpoint step {step} ({path}) is intact but does not fit this "
                f"configuration: {jax.tree_util.keystr(where)} has shape {np.shape(got)}, "
                f"the configuration expects {np.shape(want)}; read it with the settings it "
                "was written with (network sizes, algorithm)"
            )
    return flax.serialization.from_state_dict(template, restored)


def quarantine(
    directory: str | os.PathLike, step: int, side_files: Sequence[str] = ()
) -> pathlib.Path:
    """Move ``step_<step>`` (and its ``side_files``, names in ``directory``) aside as
    ``damaged_step_<step>[.k]``: out of :func:`steps`, kept for inspection."""
    directory = pathlib.Path(directory).absolute()
    target = directory / f"damaged_step_{step}"
    index = 1
    while target.exists():
        index += 1
        target = directory / f"damaged_step_{step}.{index}"
    os.replace(directory / f"step_{step}", target)
    for name in side_files:
        side = directory / name
        if side.exists():
            os.replace(side, target / f"side_{name}")
    return target


def read_side_file(path: pathlib.Path, step: int, check: Callable[[dict], None]) -> dict:
    """The arrays of a checkpoint's side file (a replay buffer written beside
    ``step_<step>``), with ``rng`` and ``counters`` as JSON and ``check(arrays)``
    raising for arrays of the wrong shape.

    Raises:
        CheckpointError: the file is missing, unreadable or does not fit the run.
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint step {step} is damaged: {path} is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = {k: data[k] for k in data.files}
        for name in ("size", "position", "rng", "counters"):
            if name not in saved:
                raise KeyError(f"no '{name}' array")
        json.loads(str(saved["counters"]))
        json.loads(str(saved["rng"]))
        check(saved)
    except Exception as error:  # zipfile, OSError, KeyError, ValueError, JSON errors
        raise CheckpointError(
            f"checkpoint step {step} is damaged: {path} is unreadable "
            f"({type(error).__name__}: {error})"
        ) from error
    return saved


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def restore_latest(
    directory: str | os.PathLike,
    template,
    check: Callable[[int], None] | None = None,
    side_files: Callable[[int], Sequence[str]] = lambda step: (),
    warn: Callable[[str], None] = _warn,
):
    """``(step, restored)`` from the newest intact checkpoint, or ``(None, None)``
    when there is none at all.

    A checkpoint that fails :func:`restore` (or ``check(step)``, which raises
    :class:`CheckpointError` for damaged side files such as a replay buffer) is
    moved aside with :func:`quarantine`, ``warn`` says so, and the next older one
    is tried.

    Raises:
        CheckpointError: every checkpoint is damaged.
    """
    found = steps(directory)
    moved = []
    for step in reversed(found):
        try:
            restored = restore(directory, step, template)
            if check is not None:
                check(step)
        except CheckpointMismatch:
            raise  # the reader is wrong, not the files: move nothing
        except CheckpointError as error:
            aside = quarantine(directory, step, side_files(step))
            moved.append(aside.name)
            older = [s for s in found if s < step]
            then = f"falling back to step {older[-1]}" if older else "no older checkpoint is left"
            warn(f"{error}; moved it aside to {aside}, {then}")
            continue
        return step, restored
    if moved:
        raise CheckpointError(
            f"no intact checkpoint in {directory} (damaged ones moved aside: "
            f"{', '.join(moved)}); start a new run, or restore them from a copy"
        )
    return None, None
