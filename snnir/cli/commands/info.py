"""Print a model's summary table: nodes, shapes, parameters and state; or the backends' support matrix."""

from __future__ import annotations

import argparse
import sys

NAME = "info"
HELP = "show the summary of a model file (.snnir, .yaml, ...) or the backends"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="model file to summarise")
    parser.add_argument("--backends", action="store_true", help="list backends, their availability and support matrix")


def run(args: argparse.Namespace) -> int:
    from ...formats import load

    if args.backends:
        from ...support import support_matrix

        print(support_matrix())
        if not args.model:
            return 0
    if not args.model:
        print("snnir info: error: give a model file, or --backends", file=sys.stderr)
        return 2
    print(load(args.model).summary())
    return 0
