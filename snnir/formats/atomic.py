"""Atomic file writes: a failed save never leaves a partial file or clobbers the previous one.

Every writer of snnir (models, checkpoints, plots, the kernel cache, the CLI's and the demo's outputs)
goes through :func:`atomic_write`. Whatever stops a write (a missing or read-only directory, a full
disk, an error of the serializer, Ctrl-C) leaves the target with its previous content, or absent, and
no temporary file behind. What the operating system refuses is a :class:`WriteError` naming the target
and the cause; an error of the serializer itself, and ``KeyboardInterrupt``, pass through unchanged.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import SnnirError, WriteError

#: The temporary file's name keeps at most this many bytes of the target's, so that a target whose name
#: is near the file-system limit (255 bytes) can still be written beside.
_KEPT_NAME_BYTES = 200


def _error(message: str, code: int | None) -> WriteError:
    error = WriteError(message)
    error.errno = code  # set after construction: OSError(errno, text) would print as "[Errno n] text"
    return error


def _temporary_prefix(name: str) -> str:
    """``.<name>.``, the name cut (at a character boundary) so that the temporary file's name fits."""
    return "." + os.fsencode(name)[:_KEPT_NAME_BYTES].decode("utf-8", "ignore") + "."


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _stat(path: Path, label: str | os.PathLike) -> os.stat_result | None:
    """``os.stat(path)``, None where nothing exists; other failures (a name too long, a loop of
    links, no permission to look) name ``label``, the path the caller gave."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise _error(f"{label}: cannot save ({error.strerror or error})", error.errno) from None


def _read_only(path: Path, status: os.stat_result) -> bool:
    """A rename replaces a read-only file without complaint; refuse it as ``open(path, "w")`` would.
    Root passes ``os.access`` for every file, so a file without any write bit is read-only for it too."""
    return not status.st_mode & 0o222 or not os.access(path, os.W_OK)


def check_writable(path: str | os.PathLike) -> Path:
    """Check that ``path`` can be written now, before a long computation produces its content.

    Raises :class:`WriteError` naming ``path`` when its directory is missing, is not a directory or
    is not writable, or when ``path`` is a directory or a read-only file. Returns the file that
    :func:`atomic_write` replaces: ``path``, or the file a symbolic link at ``path`` points to.
    """
    # A link stays a link: the file it points to is the one replaced, as open(path, "w") would write it.
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    directory = target.parent
    found = _stat(directory, path)
    if found is None:
        raise _error(f"{path}: cannot save, the directory {directory} does not exist", errno.ENOENT)
    if not stat.S_ISDIR(found.st_mode):
        raise _error(f"{path}: cannot save, {directory} is not a directory", errno.ENOTDIR)
    existing = _stat(target, path)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise _error(f"{path}: cannot save, it is a directory", errno.EISDIR)
    if existing is not None and _read_only(target, existing):
        raise _error(f"{path}: cannot save, the file is read-only (it was left as it is)", errno.EACCES)
    if not os.access(directory, os.W_OK | os.X_OK):  # read-only file system, or no permission
        raise _error(f"{path}: cannot save, the directory {directory} is not writable", errno.EACCES)
    return target


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it over ``path``.

    The temporary file is flushed and fsync'ed before the rename, and removed if anything fails or
    the write is interrupted, so ``path`` holds either its old content or the complete new one.
    :func:`check_writable` runs first; an OSError on the way (a full disk, an I/O error) becomes a
    :class:`WriteError` naming ``path``. Returns ``path``.
    """
    target = check_writable(path)
    directory = target.parent
    existed = target.exists()
    try:
        handle = tempfile.NamedTemporaryFile(dir=directory, prefix=_temporary_prefix(target.name), suffix=".tmp",
                                             delete=False)
    except OSError as error:  # a read-only or special directory: name the target, not the temporary file
        raise _error(f"{path}: cannot save in {directory} ({error.strerror or error})", error.errno) from None
    try:
        # Temporary files are private (0600); give the result the mode a new file would get (or keep the old one's).
        os.chmod(handle.name, target.stat().st_mode & 0o777 if existed else 0o666 & ~_umask())
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
    except BaseException as error:
        Path(handle.name).unlink(missing_ok=True)
        if not isinstance(error, OSError) or isinstance(error, SnnirError):
            raise
        kept = "the previous file is unchanged" if existed else "nothing was written"
        raise _error(f"{path}: cannot save ({error.strerror or error}); {kept}", error.errno) from error
    return Path(path)


def make_directory(path: str | os.PathLike) -> Path:
    """Create the directory ``path`` (and its parents) for files written into it; returns it.

    Raises :class:`WriteError` naming ``path`` and the cause when it cannot exist as a directory or
    is not writable. Each file written into it is atomic on its own (see :func:`atomic_write`).
    """
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok covers directories only: a file (or a link to one) holds the name
        raise _error(f"{path}: cannot write into it, it is a file, not a directory", errno.ENOTDIR) from None
    except OSError as error:
        raise _error(f"{path}: cannot create the directory ({error.strerror or error})", error.errno) from None
    if not os.access(directory, os.W_OK | os.X_OK):  # it existed already, on a read-only file system or not ours
        raise _error(f"{path}: cannot write into the directory, it is not writable", errno.EACCES)
    return directory


__all__ = ["atomic_write", "check_writable", "make_directory"]
