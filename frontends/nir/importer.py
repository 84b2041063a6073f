"""NIR → snnir: :func:`from_nir`.

Steps: read (a path or a ``nir.NIRGraph``); flatten nested graphs and dissolve pass-through nodes
(Delay, inner Input/Output) into edge delays; give NIR's implicit one-step delay to the back edges of
every remaining cycle; convert each node through :mod:`.import_rules`; order the nodes (the recorded
snnir order, else topologically) and validate. See docs/frontend-nir.md for the equations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nir
import numpy as np

from snnir.errors import FormatError, GraphError, NodeParameterError, UnsupportedNodeError, add_note
from snnir.ir.graph import Edge, Graph, TimeSpec
from snnir.ir.io import Output
from snnir.ir.neurons import RESET_MODES, RESET_TIMINGS
from snnir.validate import validate

from . import discretize
from . import metadata as md
from .import_rules import Context, rule_for
from .reading import read_nir
from .topology import back_edges, dissolve, flatten

#: Relative tolerance for a Delay to count as a whole number of steps (delays are stored in seconds).
DELAY_TOLERANCE = 1e-6


def _delay_converter(dt: float):
    def steps(name: str, node: nir.Delay) -> int:
        seconds = np.asarray(node.delay, dtype=np.float64)
        if seconds.size == 0 or not np.isfinite(seconds).all():
            raise UnsupportedNodeError(f"NIR Delay {name!r}: delays must be finite numbers of seconds, found {seconds}")
        ratio = seconds / dt
        count = int(np.rint(ratio.flat[0]))
        off = np.abs(ratio - count) > DELAY_TOLERANCE * max(1, abs(count))
        if off.any() or count < 0:
            values = np.unique(seconds)
            raise UnsupportedNodeError(
                f"NIR Delay {name!r}: delays {values[:4].tolist()} s are not one whole number of steps of "
                f"dt = {dt:g} s; snnir delays a whole edge by an integer number of steps >= 0"
            )
        return count

    return steps


def _option(value: Any, options: tuple[str, ...], name: str) -> str | None:
    if value is not None and value not in options:
        raise NodeParameterError(f"from_nir({name}=...): expected one of {list(options)} or None, found {value!r}")
    return value


def _resolve_time(source: str, record: dict | None, dt: Any, num_steps: Any) -> TimeSpec:
    recorded = record or {}
    dt = recorded.get("dt") if dt is None else dt
    if dt is None:
        raise FormatError(
            f"{source}: NIR stores no time step, and this graph was not written by snnir; give the step in "
            "seconds to run it at: snnir.load(path, dt=1e-4) in Python, --dt 1e-4 on the command line"
        )
    steps = recorded.get("num_steps", TimeSpec().num_steps) if num_steps is None else num_steps
    return TimeSpec(steps, dt)


def _order(graph: Graph, recorded: Any) -> Graph:
    """Nodes in the recorded snnir order; else topologically, with edges grouped by destination.

    HDF5 keeps neither node nor edge order readable (nodes come back sorted by name), so a foreign
    graph is laid out in execution order; the fan-in order of each node stays the file's.
    """
    if isinstance(recorded, list) and sorted(map(str, recorded)) == sorted(graph.nodes):
        return graph.replace(nodes={name: graph.nodes[name] for name in recorded})
    order = graph.topological_order()
    position = {name: index for index, name in enumerate(order)}
    edges = sorted(graph.edges, key=lambda edge: position[edge.dst])
    return graph.replace(nodes={name: graph.nodes[name] for name in order}, edges=edges)


def from_nir(
    graph_or_path: nir.NIRGraph | str | os.PathLike,
    *,
    dt: float | None = None,
    discretization: str | None = None,
    name: str | None = None,
    num_steps: int | None = None,
    reset: str | None = None,
    reset_timing: str | None = None,
) -> Graph:
    """Convert a NIR graph (or a ``.nir`` file) into a validated snnir graph.

    Args:
        graph_or_path: a ``nir.NIRGraph`` or the path of a ``.nir`` file.
        dt: seconds per step. Required unless the graph was written by snnir (which records it).
        discretization: ``"euler"`` (β = 1 − dt/τ, the default) or ``"exact"`` (β = exp(−dt/τ));
            defaults to the recorded scheme for graphs written by snnir.
        name: the graph's name (default: recorded, else the file's stem).
        num_steps: the time spec's default number of steps (default: recorded, else 25).
        reset, reset_timing: override every spiking neuron's reset (``"subtract"``, ``"zero"``,
            ``"none"``) and its timing (``"next_step"``, ``"same_step"``). Without them a node takes the
            choice recorded by snnir, else NIR's rule (``v ← v_reset`` in the same step: ``"zero"``,
            ``"same_step"``).

    Raises:
        FormatError: unreadable file or malformed snnir metadata; UnsupportedNodeError: a node or
        delay snnir cannot express (named); NodeParameterError, GraphError: invalid parameters/wiring.
    """
    if isinstance(graph_or_path, nir.NIRGraph):
        source, graph = "NIR graph", graph_or_path
        stem = None
    elif isinstance(graph_or_path, (str, os.PathLike)):
        source, graph, stem = str(graph_or_path), read_nir(graph_or_path), Path(graph_or_path).stem
    else:
        raise FormatError(f"from_nir expects a nir.NIRGraph or a path, found {type(graph_or_path).__name__}")
    record = md.check_graph_record(md.load(graph.metadata, source), source)
    time = _resolve_time(source, record, dt, num_steps)
    scheme = discretize.check_scheme(discretization or (record or {}).get("discretization", "euler"))
    ctx = Context(time.dt, scheme, _option(reset, RESET_MODES, "reset"), _option(reset_timing, RESET_TIMINGS, "reset_timing"))
    try:
        nodes, edges, helpers = _convert(graph, ctx)
    except (FormatError, GraphError, NodeParameterError, UnsupportedNodeError) as error:
        add_note(error, f"while importing {source}")
        raise
    if record is not None:
        graph_name, metadata = record.get("name", "graph"), record.get("metadata", {})
    else:
        graph_name, metadata = stem or "nir_graph", {"nir_import": {"discretization": scheme}}
    result = Graph(nodes=nodes, edges=edges, time=time, name=name or graph_name, metadata=metadata)
    try:
        validate(result)
    except (GraphError, NodeParameterError) as error:
        helper = getattr(error, "node", None)
        if helper in helpers:  # a node the user never wrote: say which NIR node it stands for
            add_note(error, f"{helper!r} is a helper node snnir adds for NIR node {helpers[helper]!r}: "
                            f"check that node's parameters and the shape of what feeds it")
        add_note(error, f"while importing {source}")
        raise
    return _order(result, (record or {}).get("node_order"))


def _convert(graph: nir.NIRGraph, ctx: Context) -> tuple[dict, list[Edge], dict[str, str]]:
    """The snnir nodes and edges of ``graph``, and the NIR node each helper node (such as a neuron's
    ``"<name>.gain"`` Scale) was made for."""
    flat = flatten(graph, _delay_converter(ctx.dt))
    wiring = dissolve(flat)
    inputs = [n for n, node in flat.nodes.items() if isinstance(node, nir.Input)]
    cycles = back_edges(flat.nodes, inputs, wiring)
    nodes, entry, exit_, chain_edges, helpers = {}, {}, {}, [], {}
    for name, node in flat.nodes.items():
        chain = rule_for(name, node)(name, node, md.load(node.metadata, f"NIR node {name!r}"), ctx)
        for (first, _), (second, _) in zip(chain, chain[1:]):
            chain_edges.append(Edge(first, second))
        for part, snnir_node in chain:
            if part in nodes or (part != name and part in flat.nodes):
                raise FormatError(f"NIR node {name!r} needs a helper node {part!r}, but that name is taken; rename it")
            nodes[part] = snnir_node
            if part != name:
                helpers[part] = name
        entry[name], exit_[name] = chain[0][0], chain[-1][0]
    edges = []
    for index, (src, dst, delay) in enumerate(wiring):
        if isinstance(nodes[entry[dst]], Output) and delay:
            raise UnsupportedNodeError(
                f"NIR Output {dst!r} is fed by {src!r} through a {delay}-step delay; snnir records outputs undelayed"
            )
        edges.append(Edge(exit_[src], entry[dst], 1 if index in cycles else delay))
    return nodes, edges + chain_edges, helpers


__all__ = ["from_nir", "read_nir"]
