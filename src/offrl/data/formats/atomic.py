"""Replace a file only once its successor is complete (nothing half-written is left)."""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable


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
