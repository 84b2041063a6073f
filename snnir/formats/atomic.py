"""Atomic file writes: a failed save never leaves a partial file or clobbers the previous one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import FormatError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it over ``path``.

    The temporary file is flushed and fsync'ed before the rename, and removed if ``write`` raises, so
    ``path`` holds either its old content or the complete new one. Returns the final path.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FormatError(f"{target}: cannot save, the directory {directory} does not exist")
    try:
        handle = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{target.name}.", suffix=".tmp", delete=False)
    except OSError as error:  # a read-only or special directory: name the target, not the temporary file
        raise FormatError(f"{target}: cannot save in {directory} ({error.strerror or error})") from None
    try:
        # Temporary files are private (0600); give the result the mode a new file would get (or keep the old one's).
        os.chmod(handle.name, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return target


__all__ = ["atomic_write"]
