"""snnir → NIR: :func:`to_nir`.

Nodes go through :mod:`.export_rules`; each NIR node carries the snnir fields NIR has no place for
in its metadata, and the graph carries the time spec, name, node order and metadata, so that
:func:`~snnir.frontends.nir.from_nir` gives the same graph back. Every exported node is imported
again on the spot and must come back identical, so an export is lossless or fails.

Delayed edges: an edge of delay 1 that closes a cycle, and that the importer's depth-first search
(:func:`.topology.back_edges`) will pick as that cycle's back edge, is written as a plain NIR edge
(NIR delays cycles by one step implicitly, as snnTorch's recurrent exports do). Every other delayed
edge is routed through a NIR ``Delay`` node of ``delay · dt`` seconds named ``"<dst>.delay<k>"``.
"""

from __future__ import annotations

import warnings

from typing import Any

import nir
import numpy as np

from snnir.errors import NodeParameterError, SemanticsWarning, UnsupportedNodeError
from snnir.ir.graph import Graph, TimeSpec
from snnir.ir.io import Input
from snnir.validate import validate

from . import discretize
from . import export_rules
from . import import_rules
from . import metadata as md
from .topology import back_edges


def _export_node(name: str, node: Any, ctx: export_rules.Context) -> nir.NIRNode:
    try:
        rule = export_rules.RULES.rule_for(node, name)
    except UnsupportedNodeError:
        supported = ", ".join(export_rules.RULES.supported())
        raise UnsupportedNodeError(
            f"node {name!r} ({node.kind}) has no NIR equivalent; to_nir supports: {supported}"
        ) from None
    try:
        exported = rule(node, ctx)
    except UnsupportedNodeError as error:
        raise UnsupportedNodeError(f"node {name!r} ({node.kind}): {error}") from None
    record = md.node_record(exported.as_exported, set(exported.carried))
    exported.node.metadata = md.dump(record)
    exported.node.input_type = {"input": np.array(ctx.input_shape if ctx.input_shape is not None else ctx.output_shape)}
    exported.node.output_type = {"output": np.array(ctx.output_shape)}
    _check_round_trip(name, exported, record, ctx)
    return exported.node


def _check_round_trip(name: str, exported: export_rules.Exported, record: dict, ctx: export_rules.Context) -> None:
    """Import the NIR node again: it must give back exactly the snnir node (else the export is lossy)."""
    back_ctx = import_rules.Context(ctx.dt, ctx.scheme)
    chain = import_rules.rule_for(name, exported.node)(name, exported.node, record, back_ctx)
    if len(chain) != 1 or not chain[0][1].equals(exported.as_exported):
        found = ", ".join(repr(n) for _, n in chain)
        raise NodeParameterError(
            f"node {name!r} cannot be written to NIR exactly with dt = {ctx.dt:g} s and the {ctx.scheme!r} scheme: "
            f"{exported.as_exported!r} would read back as {found}"
        )


def _implicit_cycle_edges(graph: Graph) -> set[int]:
    """Indices of the delay-1 edges that NIR's implicit cycle delay can express (see the module docstring)."""
    pairs = {(e.src, e.dst) for e in graph.edges if e.delay == 0}
    implicit = set()
    for index, edge in enumerate(graph.edges):
        if edge.delay == 1 and (edge.src, edge.dst) not in pairs:  # NIR edges are unique pairs
            pairs.add((edge.src, edge.dst))
            implicit.add(index)
    while True:
        plain = [(e.src, e.dst, 0 if e.delay == 0 or i in implicit else e.delay) for i, e in enumerate(graph.edges)]
        back = back_edges(graph.nodes, graph.inputs, plain)
        if back == implicit:
            return implicit
        # Any cycle closed by another back edge holds an implicit edge that is not one: it shrinks.
        implicit &= back


def _edges(graph: Graph, dt: float, nodes: dict[str, Any]) -> list[tuple[str, str]]:
    seen = set()
    for edge in graph.edges:
        if edge.delay == 0 and (edge.src, edge.dst) in seen:
            raise UnsupportedNodeError(
                f"edge {edge} appears twice; NIR edges are unique pairs (merge them with a Scale of 2)"
            )
        seen.add((edge.src, edge.dst))
    implicit = _implicit_cycle_edges(graph)
    edges = []
    for index, edge in enumerate(graph.edges):
        if edge.delay == 0 or index in implicit:
            edges.append((edge.src, edge.dst))
            continue
        count = 1
        while f"{edge.dst}.delay{count}" in nodes:
            count += 1
        delay_name = f"{edge.dst}.delay{count}"
        shape = graph.shapes[edge.src]
        delay = nir.Delay(delay=np.full(shape, edge.delay * dt))
        delay.metadata = md.dump({"kind": "edge_delay", "steps": edge.delay})
        nodes[delay_name] = delay
        edges += [(edge.src, delay_name), (delay_name, edge.dst)]
    return edges


def to_nir(graph: Graph, *, dt: float | None = None, discretization: str = "euler") -> nir.NIRGraph:
    """Convert a snnir graph into a ``nir.NIRGraph`` (write it with ``nir.write`` or :func:`save_nir`).

    Args:
        graph: a valid, materialised graph.
        dt: seconds per step used to compute NIR's time constants (default: ``graph.time.dt``).
        discretization: ``"euler"`` (τ = dt/(1 − β)) or ``"exact"`` (τ = −dt/ln β); recorded in the file.

    Raises:
        UnsupportedNodeError: a node NIR cannot express (MaxPool2d, an IF with a bias, duplicate edges).
        NodeParameterError: a parameter that would not read back exactly.
    """
    shapes = validate(graph, require_materialized=True)
    dt = graph.time.dt if dt is None else TimeSpec(1, dt).dt
    scheme = discretize.check_scheme(discretization)
    nodes: dict[str, Any] = {}
    for name, node in graph.nodes.items():
        incoming = graph.incoming(name)
        input_shape = None if isinstance(node, Input) else shapes[incoming[0].src]
        ctx = export_rules.Context(dt, scheme, input_shape, shapes[name])
        nodes[name] = _export_node(name, node, ctx)
    edges = _edges(graph, dt, nodes)
    _warn_other_readers(graph)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=md.dump(md.graph_record(graph, dt, scheme)), type_check=False)


def _warn_other_readers(graph: Graph) -> None:
    """NIR's neurons reset to zero in the step they spike and emit unit spikes; snnir writes any other
    rule into its metadata, which other tools ignore. Say so, naming the neurons, rather than let their
    dynamics change silently in those tools."""
    nir_rules = {"reset": "zero", "reset_timing": "same_step", "graded_spikes_factor": 1.0}
    differing = {}
    for name, node in graph.nodes.items():
        if node.spiking:  # a Threshold spikes but has none of these fields: NIR's rules then
            rules = [f"{field}={getattr(node, field)!r}" for field, value in nir_rules.items() if getattr(node, field, value) != value]
            if rules:
                differing[name] = ", ".join(rules)
    if differing:
        listed = "; ".join(f"{name!r} ({rules})" for name, rules in list(differing.items())[:4])
        more = f" and {len(differing) - 4} more" if len(differing) > 4 else ""
        warnings.warn(f"NIR expresses a zero reset in the same step with unit spikes; other tools will read "
                      f"{listed}{more} that way (snnir reads them back exactly from its metadata)",
                      SemanticsWarning, stacklevel=3)


__all__ = ["to_nir"]
