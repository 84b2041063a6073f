"""The on-disk kernel cache: generated modules as real files, so numba can cache what it compiles.

Numba caches only functions defined in a real source file (it keys its cache on the file's path and
time stamp). A generated module is therefore written to ``<cache dir>/snnir_numba_<hash>.py`` where
the hash is that of its text, which depends on the graph's structure only (weights are run-time
arguments). The file is written once, atomically, and never rewritten while its content is right, so
numba's cache in ``<cache dir>/__pycache__`` stays valid across processes: a second process with
the same structure loads compiled machine code instead of compiling.

The cache directory is ``cache_dir`` if given, else ``$SNNIR_CACHE_DIR``, else ``~/.cache/snnir/numba``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import linecache
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

from snnir.errors import FormatError, SnnirError
from snnir.formats.atomic import atomic_write

ENVIRONMENT_VARIABLE = "SNNIR_CACHE_DIR"
MODULE_PREFIX = "snnir_numba_"

_lock = threading.Lock()


def default_cache_dir() -> Path:
    """``$SNNIR_CACHE_DIR`` if set, else ``~/.cache/snnir/numba``."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "snnir" / "numba"


def structure_key(source: str) -> str:
    """The name of a generated module: a hash of its text."""
    return hashlib.sha256(source.encode()).hexdigest()[:20]


def _write_if_needed(path: Path, source: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == source:
            return  # unchanged: keep the time stamp numba's cache index is keyed on
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    atomic_write(path, lambda handle: handle.write(source.encode("utf-8")))


def load_module(source: str, cache_dir: str | os.PathLike | None = None) -> ModuleType:
    """Write ``source`` into the cache directory (once) and import it; returns the module.

    The text is also registered in ``linecache``, so tracebacks through the kernels show real lines.
    """
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = MODULE_PREFIX + structure_key(source)
    path = directory / f"{name}.py"
    with _lock:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None) == str(path):
            return module
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _write_if_needed(path, source)
        except (OSError, FormatError) as error:
            raise SnnirError(
                f"numba backend: cannot write the kernel cache in {str(directory)!r} ({getattr(error, 'strerror', None) or error}); "
                f"pass cache_dir=... to compile() or set ${ENVIRONMENT_VARIABLE} to a writable directory"
            ) from None
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        linecache.cache[str(path)] = (len(source), None, source.splitlines(True), str(path))
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException:
            del sys.modules[name]
            raise
        return module


__all__ = ["default_cache_dir", "load_module", "structure_key", "ENVIRONMENT_VARIABLE"]
