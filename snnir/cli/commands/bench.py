"""Time one model on every available backend with the same input: medians, speed-up and agreement.

Agreement with the reference backend is reported as the numerics contract of docs/semantics.md
bounds it: the fraction of equal spike-output elements (exact), and the largest absolute difference
of the other outputs (membranes, currents). On general float32 weights a backend's sums may round in
another order than the reference's BLAS, so membranes differ in their last bits (1e-7) and a spike
near its threshold may flip: the contract allows >= 99.9 % equal spikes and membranes within 1e-4.
This is a quick, per-model comparison; the reproducible suite against snnTorch is ``make bench``.
"""

from __future__ import annotations

import argparse
import time

from ..common import add_import_arguments, load_model, positive_int, probability

NAME = "bench"
HELP = "time a model on each backend (medians, speed-up vs reference, output agreement)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file (.snnir, .yaml, .onnx, .nir)")
    add_import_arguments(parser)
    parser.add_argument("--backends", default=None, help="comma-separated backends (default: every available one)")
    parser.add_argument("--batch", type=positive_int, default=32, help="batch size (default: 32)")
    parser.add_argument("--repeat", type=positive_int, default=5, help="timed runs per backend (default: 5)")
    parser.add_argument("--rate", type=probability, default=0.2, help="input spike probability for sequence inputs (default: 0.2)")


def _inputs(graph, batch: int, rate: float):
    import numpy as np

    rng = np.random.default_rng(0)
    inputs = {}
    for name in graph.inputs:
        node = graph.nodes[name]
        if node.encoding == "sequence":
            inputs[name] = (rng.random((graph.time.num_steps, batch, *node.shape)) < rate).astype(np.float32)
        else:
            inputs[name] = rng.random((batch, *node.shape), dtype=np.float32)
    return inputs


def _agreement(graph, result, reference) -> tuple[str, str]:
    """(percentage of equal spike-output elements, largest absolute difference of the other outputs),
    each "-" where the graph has no such output."""
    import numpy as np

    spikes, others = [], []
    for name in reference.outputs:
        source = graph.nodes[graph.output_source(name)]
        is_spikes = source.spiking and graph.nodes[name].record in ("value", "spikes")
        (spikes if is_spikes else others).append(name)
    equal = np.mean([np.mean(result[k] == reference[k]) for k in spikes]) if spikes else None
    difference = max(float(np.max(np.abs(result[k] - reference[k]), initial=0.0)) for k in others) if others else None
    return ("-" if equal is None else f"{equal * 100:.2f}%"), ("-" if difference is None else f"{difference:.1e}")


def run(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from ...compiler import compile as compile_graph
    from ...errors import BackendNotFoundError, SnnirError
    from ...registry import backend_names

    graph = load_model(args, args.model)
    inputs = _inputs(graph, args.batch, args.rate)
    names = [n.strip() for n in args.backends.split(",") if n.strip()] if args.backends else backend_names()
    unknown = [n for n in names if n not in backend_names()]
    if unknown:
        raise BackendNotFoundError(f"--backends: unknown backend {unknown[0]!r}; known backends: {', '.join(backend_names())}")
    reference = compile_graph(graph, "reference").run(inputs)
    rows = []
    for name in names:
        try:
            start = time.perf_counter()
            model = compile_graph(graph, name)
            model.run(inputs)  # warm-up (JIT, caches)
            compile_seconds = time.perf_counter() - start
        except SnnirError as error:
            rows.append((name, "-", "-", "-", "-", str(error).splitlines()[0][:60]))
            continue
        timings = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = model.run(inputs)
            timings.append(time.perf_counter() - start)
        equal, difference = _agreement(graph, result, reference)
        rows.append((name, f"{np.median(timings) * 1e3:.2f}", f"{compile_seconds:.2f}", equal, difference, ""))
    base = next((float(r[1]) for r in rows if r[0] == "reference" and r[1] != "-"), None)
    print(f"{graph.name}: batch {args.batch}, {graph.time.num_steps} steps, median of {args.repeat}, "
          f"{os.cpu_count()} CPUs visible")
    header = ("backend", "median ms", "first run s", "spikes equal", "max |diff| other", "speed-up vs reference / note")
    table = [header]
    for name, median, first, equal, difference, note in rows:
        speedup = f"{base / float(median):.1f}x" if base and median != "-" else note
        table.append((name, median, first, equal, difference, speedup))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
