"""Convert a model between formats, chosen by extension: .snnir, .yaml/.yml, .onnx, .nir."""

from __future__ import annotations

import argparse

from ..common import add_import_arguments, load_model

NAME = "convert"
HELP = "convert a model file to another format (by extension)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="input model (.snnir, .yaml, .onnx, .nir)")
    parser.add_argument("target", help="output model; its extension picks the format")
    add_import_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ...formats import save

    graph = load_model(args, args.source)
    path = save(graph, args.target)
    if not args.quiet:
        print(f"wrote {path} ({graph.name!r}: {len(graph.nodes)} nodes)")
    return 0
