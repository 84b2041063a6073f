"""Export a model to ONNX with snnir's state metadata: a step model (one call per time step, states in
and out) or a sequence model (a Scan over time). Any ONNX runtime can run it from the metadata alone
(docs/formats.md); ``snnir.load`` reads it back into the identical graph."""

from __future__ import annotations

import argparse

from ..common import add_import_arguments, load_model

NAME = "export"
HELP = "export a model file to ONNX plus state metadata (step or sequence model)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="model file (.snnir, .yaml, .onnx, .nir)")
    add_import_arguments(parser)
    parser.add_argument("target", help="the .onnx file to write")
    parser.add_argument(
        "--mode", choices=("step", "sequence"), default="step",
        help="step: one call per time step (default); sequence: a Scan over time",
    )
    parser.add_argument(
        "--probes", default="", metavar="LIST",
        help="extra outputs: 'all', or comma-separated probes such as 'lif1,lif1:membrane'",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ... import export_onnx
    from ...errors import InputError

    if Path(args.target).suffix.lower() != ".onnx":
        raise InputError(f"{args.target}: export writes ONNX files (.onnx); to write .snnir, .yaml or .nir, "
                         f"use: snnir convert {args.source} {args.target}")
    graph = load_model(args, args.source)
    probes = "all" if args.probes.strip() == "all" else [p.strip() for p in args.probes.split(",") if p.strip()]
    path = export_onnx(graph, args.target, mode=args.mode, probes=probes)
    if not args.quiet:
        from ...backends.onnx_export.files import open_onnx

        doc = open_onnx(path)[2]
        print(f"wrote {path} ({args.mode} model of {graph.name!r})")
        print(f"  inputs:  {', '.join(i['name'] + ' ' + str(i['shape']) for i in doc['inputs'])}")
        if doc["num_steps_input"]:
            print(f"  steps:   {doc['num_steps_input']} (int64 scalar; the graph's default is {doc['time']['num_steps']})")
        print(f"  outputs: {', '.join(o['name'] for o in doc['outputs'] + doc['probes'])}")
        print(f"  states:  {len(doc['states'])} ({', '.join(s['name'] for s in doc['states']) or 'none'})")
    return 0
