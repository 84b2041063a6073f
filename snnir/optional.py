"""Optional dependencies: the packages behind snnir's extras (torch, numba, onnx, nir, snntorch).

A backend or frontend package calls :func:`require` before importing its dependency, so that
``import snnir.backends.pytorch`` without torch says which extra to install instead of failing deep
inside with a bare ``No module named 'torch'``. The error keeps ``name`` (the missing package), which
is what the registry reads to tell a missing extra from a broken installation.
"""

from __future__ import annotations

import importlib


def require(package: str, extra: str, user: str) -> None:
    """Import ``package``, needed by the snnir module ``user``; if it is not installed, raise a
    ``ModuleNotFoundError`` saying ``pip install 'snnir[extra]'``."""
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as error:
        if error.name != package:  # the package is there but lacks one of its own dependencies: its message says which
            raise
        raise ModuleNotFoundError(f"{user} needs the '{package}' package: pip install 'snnir[{extra}]'", name=package) from None


__all__ = ["require"]
