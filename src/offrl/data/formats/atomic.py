"""Replace a file only once its successor is complete (nothing half-written is left)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator


def replace_atomically(target: pathlib.Path, write: Callable[[pathlib.Path], None]) -> None:
    """Call ``write(tmp_path)`` for a file beside ``target``, then rename it over
    ``target``; on any error ``target`` is untouched and the temporary file removed."""
    target = pathlib.Path(target)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    tmp_path = pathlib.Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_directory(target: pathlib.Path) -> Iterator[pathlib.Path]:
    """A fresh directory beside ``target`` to fill; when the block ends without error it
    replaces ``target`` (removing what was there), on any error it is removed and
    ``target`` is untouched."""
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
