"""onnxruntime (snnir's onnx backend) beside numba and snnTorch on workloads (b) and (c) (README.md, Benchmarks).

(b) FC 784-512-10 LIF (β = 0.9), T = 100, batch 64, Bernoulli(0.1) input spikes: a whole sequence.
(c) the same network streamed one step at a time with batch 1: time per step.

Rows: the onnx sequence model (one Scan call) and step model (one call per step), each through snnir's
API and as a bare ``InferenceSession.run`` with prepared feeds (the model alone); the numba backend when
it is installed; snnTorch (``torch.no_grad``). Every peer runs the same weights and gets the same
thread count; the spikes of all peers are checked against onnxruntime's before anything is timed
(benchmarks/common.py: at most 2 % of entries differing per spike, the same prediction on 98 % of samples).
Rows are timed interleaved (one repetition of each per round), so load drift on a shared machine hits
them alike. Prints medians and each row's speed relative to snnTorch, writes
benchmarks/results/onnx_bench.json. Run: ``python -m benchmarks.bench_onnx [--threads 1] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.common import agreement, agreement_failure, check_output, fc_graph, provenance, snntorch_fc, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "onnx_bench.json"


def _interleaved_medians(rows: list[dict], repeats: int) -> None:
    """Time every row once per round, ``repeats`` rounds (so load drift hits all rows alike); store medians."""
    for row in rows:
        row["run"]()  # warm-up: sessions, JIT, caches
    times: list[list[float]] = [[] for _ in rows]
    for _ in range(repeats):
        for row, samples in zip(rows, times):
            start = time.perf_counter()
            row["run"]()
            samples.append((time.perf_counter() - start) / row["per"])
    for row, samples in zip(rows, times):
        row["median_s"] = statistics.median(samples)
        row["min_s"] = min(samples)


def _numba(graph, threads: int):
    """The numba backend's compiled model, or None with the reason (it may not be built yet)."""
    import snnir

    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        return snnir.compile(graph, "numba"), None
    except (ImportError, snnir.SnnirError) as error:
        return None, f"numba backend not available ({type(error).__name__}: {error})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for every peer (default 1)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions per row (median reported)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    check_output(args.output)  # before minutes of measuring

    import snnir
    import torch

    torch.set_num_threads(args.threads)
    graph = fc_graph(args.steps)
    rng = np.random.default_rng(0)
    x = (rng.random((args.steps, args.batch, 784)) < 0.1).astype(np.float32)
    onnx_model = snnir.compile(graph, "onnx", threads=args.threads)
    snntorch_run, snntorch_stream = snntorch_fc(graph)
    numba_model, numba_note = _numba(graph, args.threads)

    expected = onnx_model.run(x)["spikes"]  # every peer must compute the same spikes before anything is timed
    peers = {"snnTorch": snntorch_run(x)}
    if numba_model is not None:
        peers["numba"] = numba_model.run(x)["spikes"]
    for peer, spikes in peers.items():
        failure = agreement_failure(f"{peer} against onnxruntime", agreement(spikes, expected))
        if failure:
            raise SystemExit(f"the peers do not run the same network: {failure}")

    rows: list[dict] = []

    def row(workload: str, name: str, run: Callable[[], object], per: int, unit: str) -> None:
        rows.append({"workload": workload, "runner": name, "run": run, "per": per, "unit": unit})

    def bare_loop(session, inputs: np.ndarray, batch: int) -> Callable[[], None]:
        """The step model driven by session.run alone, states fed back as the metadata says."""
        fetch = session.outputs + [s_out for _, _, s_out in session.states]

        def loop() -> None:
            states = {s_in: np.zeros((batch, *onnx_model.state_shapes[key]), np.float32) for key, s_in, _ in session.states}
            for t in range(inputs.shape[0]):
                values = session.session.run(fetch, {"x": inputs[t], **states})
                states = {s_in: v for (_, s_in, _), v in zip(session.states, values[len(session.outputs) :])}

        return loop

    def snnir_steps(model, inputs: np.ndarray, batch: int) -> Callable[[], None]:
        def loop() -> None:
            model.reset(batch)
            for t in range(inputs.shape[0]):
                model.step(inputs[t])

        return loop

    # (b) whole sequence, batch B
    sequence, stepped = onnx_model.session("sequence", []), onnx_model.session("step", [])
    zeros = {s_in: np.zeros((args.batch, *onnx_model.state_shapes[key]), np.float32) for key, s_in, _ in sequence.states}
    row("b", "onnx sequence (snnir run)", lambda: onnx_model.run(x), 1, "s/sequence")
    row("b", "onnx sequence (bare session)", lambda: sequence.session.run(sequence.outputs, {"x": x, **zeros}), 1, "s/sequence")
    row("b", "onnx step model (snnir step loop)", snnir_steps(onnx_model, x, args.batch), 1, "s/sequence")
    row("b", "onnx step model (bare session loop)", bare_loop(stepped, x, args.batch), 1, "s/sequence")
    if numba_model is not None:
        row("b", "numba run", lambda: numba_model.run(x), 1, "s/sequence")
    row("b", "snnTorch (no_grad)", lambda: snntorch_run(x), 1, "s/sequence")
    # (c) batch-1 streaming, per step
    x1 = np.ascontiguousarray(x[:, :1])
    row("c", "onnx step (snnir step)", snnir_steps(onnx_model, x1, 1), args.steps, "s/step")
    row("c", "onnx step (bare session)", bare_loop(stepped, x1, 1), args.steps, "s/step")
    if numba_model is not None:
        row("c", "numba step", snnir_steps(numba_model, x1, 1), args.steps, "s/step")
    row("c", "snnTorch step (no_grad)", snntorch_stream(x1), args.steps, "s/step")
    _interleaved_medians(rows, args.repeats)
    for entry in rows:
        del entry["run"], entry["per"]

    for workload in ("b", "c"):
        peer = next(r["median_s"] for r in rows if r["workload"] == workload and r["runner"].startswith("snnTorch"))
        for r in rows:
            if r["workload"] == workload:
                r["speedup_vs_snntorch"] = peer / r["median_s"]
    environment = {
        **provenance(),
        "threads": args.threads,
        "repeats": args.repeats,
        "onnxruntime_intra_op_threads": onnx_model.threads,
        "torch_threads": torch.get_num_threads(),
        "numba_threads": _numba_threads(),
        "snnir": snnir.__version__,
    }
    _report(rows, args, environment, numba_note)
    return 0


def _numba_threads() -> int | None:
    try:
        import numba
    except ImportError:
        return None
    return numba.get_num_threads()


def _report(rows: list[dict], args: argparse.Namespace, environment: dict, numba_note: str | None) -> None:
    print(
        f"onnx backend benchmark: FC 784-512-10 LIF, T={args.steps}, Bernoulli(0.1) inputs; {args.threads} thread(s) "
        f"per peer; median of {args.repeats} interleaved rounds; onnxruntime {environment['onnxruntime']}, "
        f"{environment['cpu_count']} CPUs, load {environment['load_average_1min']:.1f}"
    )
    print(f"{'workload':<28} {'runner':<38} {'median':>14} {'vs snnTorch':>12}")
    labels = {"b": f"(b) sequence, batch {args.batch}", "c": "(c) streaming, batch 1"}
    for r in rows:
        shown = f"{r['median_s'] * 1e3:.2f} ms" if r["unit"] == "s/sequence" else f"{r['median_s'] * 1e6:.1f} us/step"
        print(f"{labels[r['workload']]:<28} {r['runner']:<38} {shown:>14} {r['speedup_vs_snntorch']:>11.2f}x")
    if numba_note:
        print(f"note: {numba_note}; its rows are missing")
    document = {"environment": environment, "numba_note": numba_note, "rows": rows}
    write_results(args.output, document)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    raise SystemExit(main())
