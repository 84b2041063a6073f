"""Backend registry: the built-in table first, then the ``snnir.backends`` entry-point group.

A third-party package plugs a backend in with, in its pyproject.toml::

    [project.entry-points."snnir.backends"]
    mychip = "mychip_snnir:Backend"

Within one process (a notebook, a test, an application), :func:`register_backend` does the same
without installing anything.

A backend is a class (or object) with ``name``, ``extra`` (the pip extra providing its dependency),
``rules`` (a :class:`~snnir.lowering.LoweringTable`), ``known_gaps`` (``{feature: reason}``) and
``compile(graph, **options)``; :func:`get_backend` refuses one without ``rules``, ``known_gaps`` or
``compile``, which the compiler, the support matrix and the conformance suite read.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import BackendNotFoundError, BackendUnavailableError

ENTRY_POINT_GROUP = "snnir.backends"

#: name -> ("module:attribute", pip extra that installs its dependency)
BUILTIN_BACKENDS: dict[str, tuple[str, str | None]] = {
    "reference": ("snnir.reference:ReferenceBackend", None),
    "torch": ("snnir.backends.pytorch:TorchBackend", "torch"),
    "numba": ("snnir.backends.numba_cpu:NumbaBackend", "numba"),
    "onnx": ("snnir.backends.onnx_export:OnnxBackend", "onnx"),
}

#: name -> backend object, class or "module:attribute" registered in this process (:func:`register_backend`)
_registered: dict[str, tuple[Any, str | None]] = {}

#: What snnir reads of every backend (the compiler, ``snnir info --backends``, the conformance suite).
PROTOCOL = ("rules", "known_gaps", "compile")

_cache: dict[str, Any] = {}


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    """Every known backend name: built-in ones first, then those registered in this process, then plug-ins."""
    names = list(BUILTIN_BACKENDS) + [n for n in _registered if n not in BUILTIN_BACKENDS]
    return names + sorted(n for n in _entry_points() if n not in names)


def register_backend(name: str, backend: Any, *, extra: str | None = None) -> None:
    """Make ``backend`` available as ``snnir.compile(graph, name)`` in this process.

    ``backend`` is an object, a class (instantiated on first use) or ``"module:attribute"`` (imported on
    first use, so registering costs no import; ``extra`` then names the pip extra of its dependency for
    the error when it is missing). The name takes precedence over a built-in or plug-in of that name;
    registering it again replaces the backend. An installed package uses the entry point instead.
    """
    if not isinstance(name, str) or not name:
        raise BackendNotFoundError(f"a backend is named by a non-empty string, found {name!r}")
    _registered[name] = (backend, extra)
    _cache.pop(name, None)


def unregister_backend(name: str) -> None:
    """Forget a backend :func:`register_backend` added (what it shadowed is found again)."""
    if name not in _registered:
        registered = ", ".join(_registered) or "none"
        raise BackendNotFoundError(f"no backend {name!r} was registered with register_backend; registered: {registered}")
    del _registered[name]
    _cache.pop(name, None)


def _import(name: str, target: str, extra: str | None) -> Any:
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:  # a missing package, or one that fails to import (broken install)
        missing = error.name
        if isinstance(error, ModuleNotFoundError) and missing and module_name.startswith(missing):
            raise BackendNotFoundError(
                f"backend {name!r} is registered but its module {module_name} is not part of this installation"
                f"{_checkout_hint()}"
            ) from None
        if isinstance(error, ModuleNotFoundError) and missing:
            hint = f"pip install 'snnir[{extra}]'" if extra else f"install the package providing {missing}"
            raise BackendUnavailableError(f"backend {name!r} needs {missing}, which is not installed; {hint}") from None
        # installed, but it does not import (a broken install, or versions that do not fit together)
        hint = f"; 'snnir[{extra}]' installs versions that work together" if extra else ""
        raise BackendUnavailableError(f"backend {name!r}: a dependency is installed but fails to import ({error}){hint}") from None
    backend = getattr(module, attribute, None)
    if backend is None:
        raise BackendNotFoundError(f"backend {name!r}: module {module_name} defines no {attribute}")
    return backend() if isinstance(backend, type) else backend


def get_backend(name: str) -> Any:
    """The backend registered under ``name`` (an instance); raises if unknown or unavailable."""
    if not isinstance(name, str):
        raise BackendNotFoundError(f"a backend is named by a string, found {name!r}")
    if name in _cache:
        return _cache[name]
    if name in _registered:
        given, extra = _registered[name]
        if isinstance(given, str):
            backend = _import(name, given, extra)
        else:
            backend = given() if isinstance(given, type) else given
    elif name in BUILTIN_BACKENDS:
        target, extra = BUILTIN_BACKENDS[name]
        backend = _import(name, target, extra)
    else:
        entry = _entry_points().get(name)
        if entry is None:
            raise BackendNotFoundError(f"unknown backend {name!r}; known backends: {', '.join(backend_names())}")
        try:
            loaded = entry.load()
        except ModuleNotFoundError as error:
            raise BackendUnavailableError(f"backend {name!r} needs {error.name}, which is not installed") from None
        except (ImportError, AttributeError) as error:  # a broken install, or an entry point naming nothing
            raise BackendUnavailableError(f"backend {name!r}: its entry point {entry.value} fails to load ({error})") from None
        backend = loaded() if isinstance(loaded, type) else loaded
    _check_protocol(name, backend)
    _cache[name] = backend
    return backend


def _check_protocol(name: str, backend: Any) -> None:
    """Refuse a backend lacking what snnir reads of it here, rather than with an AttributeError in
    ``snnir info --backends`` or the conformance suite."""
    missing = [attribute for attribute in PROTOCOL if not hasattr(backend, attribute)]
    if missing:
        raise BackendUnavailableError(
            f"backend {name!r} ({type(backend).__name__}) lacks {', '.join(missing)}: a backend has rules "
            f"(a snnir.lowering.LoweringTable), known_gaps ({{feature: reason}}) and compile(graph, **options)"
        )


def _checkout_hint() -> str:
    """Python run in a source checkout imports its ``snnir/`` folder, without the backends that an
    install maps into it from ``backends/``: say so, rather than blame the installation."""
    package = Path(__file__).resolve().parent
    if (package / "backends").is_dir() or not (package.parent / "backends").is_dir():
        return ""
    return (f"; snnir was imported from the source checkout {package}, whose backends live in "
            f"{package.parent / 'backends'}: install it editable (pip install -e .) or run from another directory")


def backend_status() -> dict[str, str]:
    """``{name: "available" | reason}`` for every known backend (used by ``snnir info --backends``)."""
    status = {}
    for name in backend_names():
        try:
            get_backend(name)
            status[name] = "available"
        except (BackendNotFoundError, BackendUnavailableError) as error:
            status[name] = str(error)
    return status


__all__ = [
    "get_backend",
    "backend_names",
    "backend_status",
    "register_backend",
    "unregister_backend",
    "BUILTIN_BACKENDS",
    "ENTRY_POINT_GROUP",
    "PROTOCOL",
]
