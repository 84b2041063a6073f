"""Convert a model between formats, chosen by extension: .snnir, .yaml/.yml, .onnx, .nir."""

from __future__ import annotations

import argparse

NAME = "convert"
HELP = "convert a model file to another format (by extension)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="input model (.snnir, .yaml, .onnx, .nir)")
    parser.add_argument("target", help="output model; its extension picks the format")
    parser.add_argument("--dt", type=float, default=None,
                        help="time step in seconds for .nir files written by other tools (they store none)")


def run(args: argparse.Namespace) -> int:
    from ...formats import load, save

    graph = load(args.source, **({"dt": args.dt} if args.dt is not None else {}))
    path = save(graph, args.target)
    if not args.quiet:
        print(f"wrote {path} ({graph.name!r}: {len(graph.nodes)} nodes)")
    return 0
