"""Validate a model file and report which backends can compile it; exit status 2 when it is invalid."""

from __future__ import annotations

import argparse
import math

from ..common import add_import_arguments, load_model

NAME = "check"
HELP = "validate a model and list the backends that support it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.snnir, .yaml, .onnx, .nir)")
    add_import_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ...errors import SnnirError, UnsupportedNodeError
    from ...registry import backend_names, get_backend
    from ...validate import validate

    graph = load_model(args, args.model)
    shapes = validate(graph, require_materialized=True)
    parameters = sum(node.parameter_count() for node in graph.nodes.values())
    state = sum(math.prod(shapes[n]) * len(node.state_variables) for n, node in graph.nodes.items() if node.stateful)
    print(
        f"{args.model}: valid; {len(graph.nodes)} nodes, {len(graph.edges)} edges, {parameters:,} parameters, "
        f"{state:,} state value{'s' if state != 1 else ''} per sample, {graph.time.num_steps} steps of {graph.time.dt * 1e3:g} ms"
    )
    for name in backend_names():
        try:
            backend = get_backend(name)
            for node_name, node in graph.nodes.items():
                if node.kind not in ("Input", "Output"):
                    backend.rules.rule_for(node, node_name)
            verdict = "supported"
        except UnsupportedNodeError as error:
            verdict = f"unsupported: {str(error).splitlines()[0]}"
        except SnnirError as error:
            verdict = f"unavailable: {str(error).splitlines()[0]}"
        if not args.quiet or verdict != "supported":
            print(f"  {name:10s} {verdict}")
    return 0
