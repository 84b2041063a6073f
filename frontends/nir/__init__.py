"""NIR interoperability: read and write the Neuromorphic Intermediate Representation (``.nir``).

::

    from snnir.frontends.nir import from_nir, to_nir
    graph = from_nir("braille.nir", dt=1e-4)                  # euler: β = 1 − dt/τ
    graph = from_nir("braille.nir", dt=1e-4, discretization="exact", reset="subtract")
    nir_graph = to_nir(graph)                                 # nir.write("out.nir", nir_graph)
    snnir.save(graph, "out.nir"); snnir.load("out.nir")      # .nir goes through save_nir/load_nir

NIR neurons are continuous-time; :mod:`.discretize` is the one place their τ, r, v_leak, w_in,
v_reset and v_threshold become snnir's β, α, input gains, biases and thresholds (and back).
docs/frontend-nir.md has every formula, the reset defaults and what cannot be expressed.
"""

from __future__ import annotations

from snnir.optional import require

require("nir", "nir", "snnir.frontends.nir")  # fail early, with the extra to install

import io
import os
from pathlib import Path

from snnir.formats.atomic import atomic_write
from snnir.ir.graph import Graph

from .discretize import SCHEMES
from .exporter import to_nir
from . import reading
from .importer import from_nir, read_nir


def load_nir(path: str | os.PathLike, *, dt: float | None = None, **options) -> Graph:
    """Read a ``.nir`` file (``snnir.load``); the time step comes from snnir's metadata in the file.

    Files written by other tools store no time step: pass ``dt`` (``snnir.load(path, dt=1e-4)``,
    ``snnir convert in.nir out.snnir --dt 1e-4``); other options go to :func:`from_nir`.
    """
    return from_nir(path, dt=dt, **options)


def save_nir(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` as a ``.nir`` file atomically (``snnir.save``), with ``dt = graph.time.dt``, Euler."""
    import nir

    nir_graph = to_nir(graph)
    # into memory first: h5py turns any exception of a file it writes to (Ctrl-C, a full disk) into its own
    # "File close failed", which would hide what happened
    buffer = io.BytesIO()
    nir.write(buffer, nir_graph)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


__all__ = ["from_nir", "to_nir", "load_nir", "save_nir", "read_nir", "SCHEMES"]
