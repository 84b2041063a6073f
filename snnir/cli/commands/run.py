"""Run a model on a dataset with any backend: accuracy and throughput, with a progress bar."""

from __future__ import annotations

import argparse
import time

from ..common import add_data_arguments, add_import_arguments, load_model, load_split, positive_int

NAME = "run"
HELP = "evaluate a model on data with a backend (accuracy, throughput)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.snnir, .yaml, .onnx, .nir)")
    add_import_arguments(parser)
    parser.add_argument("--backend", default="reference", help="reference, torch, numba, onnx (default: reference)")
    add_data_arguments(parser)
    parser.add_argument("--batch", type=positive_int, default=128, help="samples per batch (default: 128)")
    parser.add_argument("--output", default=None, help="output to read classes from (default: the first)")
    parser.add_argument("--readout", choices=("count", "max", "last", "mean"), default=None,
                        help="how to turn the recording into a class (default: count for spikes, max otherwise)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ...compiler import compile as compile_graph
    from ...data import batches

    graph = load_model(args, args.model)
    x, y = load_split(args, graph)
    start = time.perf_counter()
    model = compile_graph(graph, args.backend)
    compile_seconds = time.perf_counter() - start
    predictions = []
    start = time.perf_counter()
    with tqdm(total=len(x), desc=f"{args.backend}", unit="sample", disable=args.quiet) as progress:
        for xb, _ in batches(x, y, args.batch):
            predictions.append(model.predict(xb, output=args.output, readout_mode=args.readout))
            progress.update(len(xb))
    seconds = time.perf_counter() - start
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
    accuracy = float(np.mean(predicted == y)) if len(y) else float("nan")
    print(
        f"{args.backend}: accuracy {accuracy * 100:.2f}% on {len(y)} {args.split} samples of {args.data}; "
        f"{len(y) / seconds:,.0f} samples/s ({seconds * 1e3 / max(len(y), 1):.3f} ms/sample, "
        f"{graph.time.num_steps} steps); compile {compile_seconds:.2f} s"
    )
    return 0
