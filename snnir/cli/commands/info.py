"""Print a model's summary (nodes, shapes, parameters, state) and its cost in MACs and synaptic operations.

With ``--data`` the firing rates are measured on samples, turning dense MACs into event-driven SynOps.
``--backends`` prints the support matrix of every backend instead (or as well).
"""

from __future__ import annotations

import argparse
import sys

from ..common import add_data_arguments, add_import_arguments, load_model, load_split, model_input

NAME = "info"
HELP = "summary, parameter/state counts and synaptic operations of a model; or the backends"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="model file (.snnir, .yaml, .onnx, .nir)")
    add_import_arguments(parser)
    parser.add_argument("--backends", action="store_true", help="print the support matrix of every backend")
    parser.add_argument("--markdown", action="store_true", help="with --backends: as docs/support.md (Markdown)")
    add_data_arguments(parser, required=False, limit=64)


def run(args: argparse.Namespace) -> int:
    from ...analysis import activity, format_costs, synaptic_operations
    from ...compiler import compile as compile_graph

    if args.backends:
        from ...support import support_document, support_matrix

        print(support_document() if args.markdown else support_matrix(), end="" if args.markdown else "\n")
        if not args.model:
            return 0
    if not args.model:
        print("snnir info: error: give a model file, or --backends", file=sys.stderr)
        return 2
    graph = load_model(args, args.model)
    print(graph.summary())
    rates = None
    if args.data:
        x, _ = load_split(args, graph)
        rates = activity(compile_graph(graph, "reference"), model_input(args, graph)(x))
    print()
    print(f"cost per sample and step ({'rates measured on ' + str(len(x)) + ' samples of ' + args.data if rates else 'dense; pass --data to measure firing rates'}):")
    print(format_costs(synaptic_operations(graph, rates)))
    return 0
