"""Plot a model's activity on data as PNG files: an output spike raster and per-layer firing rates."""

from __future__ import annotations

import argparse

from ..common import add_data_arguments, add_import_arguments, load_model, load_split, model_input

NAME = "plot"
HELP = "write spike-raster and activity PNGs of a model running on data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.snnir, .yaml, .onnx, .nir)")
    add_import_arguments(parser)
    add_data_arguments(parser, limit=32)
    parser.add_argument("--out", default="plots", help="output directory (default: plots)")
    parser.add_argument("--layer", default=None, help="spiking node to rasterise (default: the last one)")
    parser.add_argument("--sample", type=int, default=0, help="which sample's raster to draw (default: 0)")
    parser.add_argument("--backend", default="reference", help="backend that runs the model (default: reference)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ...compiler import compile as compile_graph
    from ...errors import InputError
    from ...formats.atomic import make_directory
    from ...plots import plot_activity, plot_raster

    graph = load_model(args, args.model)
    x, y = load_split(args, graph)
    spiking = [name for name, node in graph.nodes.items() if node.spiking]
    if not spiking:
        raise InputError(f"{args.model}: the model has no spiking node to plot")
    layer = args.layer or spiking[-1]
    if layer not in spiking:
        raise InputError(f"--layer {layer!r} is not a spiking node; choose one of {spiking}")
    if not 0 <= args.sample < len(x):
        raise InputError(f"--sample {args.sample}: there are {len(x)} samples (0 to {len(x) - 1}); see --limit")
    result = compile_graph(graph, args.backend).run(model_input(args, graph)(x), probes=spiking)
    out = make_directory(args.out)  # each plot is written atomically: a failure keeps the earlier ones whole
    label = f" (label {y[args.sample]})"
    raster = plot_raster(result.probes[layer], out / f"raster_{layer}.png", sample=args.sample,
                         title=f"{graph.name}: spikes of {layer!r}, sample {args.sample}{label}", dt=graph.time.dt)
    rates = {name: result.probes[name].mean(axis=(0, 1)) for name in spiking}
    activity = plot_activity(rates, out / "activity.png", title=f"{graph.name}: firing rates on {len(x)} samples")
    if not args.quiet:
        for name in spiking:
            print(f"{name}: mean rate {float(np.mean(rates[name])):.3f} spikes/step")
    print(f"wrote {raster} and {activity}")
    return 0
