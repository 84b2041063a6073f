"""Reading and writing graphs, chosen by file extension.

``.snnir`` (zip of graph.json + .npy) and ``.yaml``/``.yml`` are built in; ``.onnx`` (the onnx backend's
``load_onnx``/``save_onnx``) and ``.nir`` (the NIR frontend's ``load_nir``/``save_nir``) need their
extras. Formats register here by extension with the module that implements them, so that ``snnir.load``/``snnir.save`` and the
CLI's ``convert`` learn them without changes elsewhere; a missing optional dependency names its extra.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable

from ..errors import FormatError
from ..ir.graph import Graph
from .atomic import check_writable

#: extension -> ("module:function", extra that provides its dependency or None)
LOADERS: dict[str, tuple[str, str | None]] = {
    ".snnir": ("snnir.formats.archive:load_snnir", None),
    ".yaml": ("snnir.formats.yaml_format:load_yaml", None),
    ".yml": ("snnir.formats.yaml_format:load_yaml", None),
    ".onnx": ("snnir.backends.onnx_export:load_onnx", "onnx"),
    ".nir": ("snnir.frontends.nir:load_nir", "nir"),
}
SAVERS: dict[str, tuple[str, str | None]] = {
    ".snnir": ("snnir.formats.archive:save_snnir", None),
    ".yaml": ("snnir.formats.yaml_format:save_yaml", None),
    ".yml": ("snnir.formats.yaml_format:save_yaml", None),
    ".onnx": ("snnir.backends.onnx_export:save_onnx", "onnx"),
    ".nir": ("snnir.frontends.nir:save_nir", "nir"),
}


def _resolve(table: dict[str, tuple[str, str | None]], path: Path, action: str) -> Callable:
    """The function handling ``path``'s extension; ``action`` is "reading" or "writing" (for messages)."""
    suffix = path.suffix.lower()
    if suffix not in table:
        known = ", ".join(sorted(table))
        raise FormatError(f"{path}: {action} files with extension {suffix or '(none)'!r} is not supported; known: {known}")
    target, extra = table[suffix]
    module_name, function = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:  # a missing package, or one that fails to import (broken install)
        if isinstance(error, ModuleNotFoundError) and error.name and module_name.startswith(error.name):
            raise FormatError(f"{path}: {action} {suffix} files is not part of this installation ({module_name} is missing)") from None
        hint = f"; install it with: pip install 'snnir[{extra}]'" if extra else ""
        what = f"{error.name}, which is not installed" if error.name else f"a dependency that failed to import ({error})"
        raise FormatError(f"{path}: {action} {suffix} files needs {what}{hint}") from None
    return getattr(module, function)


def load(path: str | os.PathLike, **options) -> Graph:
    """Read a graph from ``.snnir``, ``.yaml``/``.yml`` or any registered format.

    ``options`` go to the format's reader, e.g. ``snnir.load("foreign.nir", dt=1e-4)``.
    """
    path = Path(path)
    return _resolve(LOADERS, path, "reading")(path, **options)


def save(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` atomically; the extension picks the format (``.snnir`` or ``.yaml``)."""
    path = Path(path)
    return _resolve(SAVERS, path, "writing")(graph, path)


def check_save(path: str | os.PathLike) -> None:
    """Check, before a long computation, that ``save(graph, path)`` will be able to write ``path``: a
    known extension whose dependency is installed, and a writable place (see ``atomic.check_writable``)."""
    path = Path(path)
    _resolve(SAVERS, path, "writing")
    check_writable(path)


__all__ = ["load", "save", "check_save", "LOADERS", "SAVERS"]
