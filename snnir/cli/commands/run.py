"""Run a model on a dataset with any backend: accuracy and throughput, with a progress bar."""

from __future__ import annotations

import argparse
import time

from ..common import add_data_arguments, add_import_arguments, load_model, load_split, model_input, positive_int

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
    from ...runtime import check_output

    graph = load_model(args, args.model)
    check_output(graph, args.output)
    x, y = load_split(args, graph)
    to_model = model_input(args, graph)
    series = graph.nodes[graph.inputs[0]].encoding == "sequence" and not args.encode
    steps = x.shape[1] if series else graph.time.num_steps  # an .npz of series brings its own T
    start = time.perf_counter()
    model = compile_graph(graph, args.backend)
    compile_seconds = time.perf_counter() - start
    predictions, seconds = [], []
    with tqdm(total=len(x), desc=f"{args.backend}", unit="sample", disable=args.quiet) as progress:
        for xb, _ in batches(x, y, args.batch):
            start = time.perf_counter()
            predictions.append(model.predict(to_model(xb), output=args.output, readout_mode=args.readout))
            seconds.append((time.perf_counter() - start, len(xb)))
            progress.update(len(xb))
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
    accuracy = float(np.mean(predicted == y)) if len(y) else float("nan")
    print(f"{args.backend}: accuracy {accuracy * 100:.2f}% on {len(y)} {args.split} samples of {args.data}; "
          f"{_throughput(seconds, steps)}; set-up {compile_seconds:.2f} s")
    return 0


def _throughput(seconds: list[tuple[float, int]], steps: int) -> str:
    """Samples per second over the batches after the first, which also pays one-time costs (numba's
    kernel load or JIT, torch's first allocations); over the first alone when it is the only one."""
    first, rest = seconds[0] if seconds else (0.0, 0), seconds[1:]
    if not rest:
        return f"{first[1] / max(first[0], 1e-9):,.0f} samples/s (one batch, first-call costs included; {steps} steps)"
    time_taken, samples = sum(t for t, _ in rest), sum(n for _, n in rest)
    return (f"{samples / time_taken:,.0f} samples/s ({time_taken * 1e3 / samples:.3f} ms/sample, {steps} steps, "
            f"after the first batch, which took {first[0]:.2f} s)")
