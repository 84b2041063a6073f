"""numba backend inference against snnTorch, the torch backend and onnxruntime (README.md, Benchmarks).

Workloads, each run by every peer in this one process with the same weights and thread count:

(a) the seed quickstart CNN (Conv 1->8 k5, MaxPool 2, LIF, Conv 8->16 k5, MaxPool 2, LIF, Flatten,
    Linear 256->10, LIF; beta 0.9), batch 128, T = 25, direct input: time per sequence;
(b) FC 784-512-10 LIF, T = 100, batch 64, Bernoulli(0.1) input spikes (weights of benchmarks/common.py,
    so that both layers fire): time per sequence, and the same at p = 0.01 (event-driven cost should fall
    with activity);
(c) batch-1 streaming of (b): time per ``step`` call, in steady state (each timed pass of 100 steps
    follows an untimed one, as a real-time loop keeps its own data in cache).

Peers: snnTorch under ``torch.no_grad()`` (the tutorial's per-step loop), snnir's torch backend
(``snnir.compile(g, "torch")``) and onnxruntime through snnir's onnx backend, each included when
available (a note says why not otherwise). Rows are timed interleaved, one repetition of each per round,
each round starting one row later, so load drift on a shared machine hits all alike; medians are
reported with the spread (min - max) and the per-round ratios. Every peer's spikes are checked against
numba's before timing (benchmarks/common.py limits; the run fails otherwise); on (a) snnTorch with conv1
+ pool1 hoisted out of its loop is a second baseline. With more than one thread, onnxruntime's rows get a round of
their own: its intra-op threads spin after each call and would take a core from the next peer.
Compile costs are measured in fresh processes: fully cold (empty numba and snnir caches), a
cached load (second process), and a new structure once the kernel libraries are cached.

Run: ``python -m benchmarks.bench_numba_infer [--threads N] [--repeats 7] [--quick]``; writes
benchmarks/results/numba_infer.json. Targets (issue 4): >= 10x snnTorch on (b), >= 5x on (a),
<= 5 us/step on (c), p = 0.01 at most 0.2x the time of p = 0.1, cached load < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.common import agreement, agreement_failure, check_output, fc_graph, provenance, snntorch_fc, write_results

# torch and numba each bring an OpenMP runtime; with the default (spinning) wait policy the idle
# threads of one steal the cores of the other, and every peer in this one process slows down
# several-fold. Passive waiting is set before either is imported (see the note printed).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TORCH_PRELOADED = "torch" in sys.modules
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "numba_infer.json"


# -- networks ---------------------------------------------------------------------------------------
def cnn_graph(steps: int = 25):
    import snnir

    graph = snnir.load(ROOT / "examples" / "quickstart_cnn.yaml")
    return graph.replace(time=snnir.TimeSpec(steps, graph.time.dt))


def _copy(module: Any, node: Any) -> Any:
    import torch

    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.array(node.weight)))
        module.bias.copy_(torch.from_numpy(np.array(node.bias)))
    return module


def snntorch_cnn(graph, hoisted: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """The snnTorch quickstart CNN: conv1 and its pool recomputed every step, as the tutorial does, or with
    ``hoisted`` computed once before the loop (what snnir does with a ``direct`` input; the same spikes)."""
    import snntorch
    import torch
    from torch import nn

    n = graph.nodes
    conv1 = _copy(nn.Conv2d(1, 8, 5), n["conv1"])
    conv2 = _copy(nn.Conv2d(8, 16, 5), n["conv2"])
    fc1 = _copy(nn.Linear(256, 10), n["fc1"])
    pool = nn.MaxPool2d(2)
    lifs = [snntorch.Leaky(beta=0.9) for _ in range(3)]

    @torch.no_grad()
    def run(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images)
        mem = [lif.init_leaky() for lif in lifs]
        out = []
        first = pool(conv1(x)) if hoisted else None
        for _ in range(graph.time.num_steps):
            s1, mem[0] = lifs[0](first if hoisted else pool(conv1(x)), mem[0])
            s2, mem[1] = lifs[1](pool(conv2(s1)), mem[1])
            s3, mem[2] = lifs[2](fc1(s2.flatten(1)), mem[2])
            out.append(s3)
        return torch.stack(out).numpy()

    return run


def optional_backend(graph, name: str, **options: Any) -> tuple[Any, str | None]:
    """``snnir.compile(graph, name)`` or None with the reason (another engineer's backend may be missing)."""
    import snnir

    try:
        snnir.get_backend(name)
    except (ImportError, LookupError, snnir.SnnirError) as error:
        return None, f"{name} backend not available ({type(error).__name__}: {error}); its rows are missing"
    return snnir.compile(graph, name, **options), None


def stream(model: Any, spikes: np.ndarray) -> Callable[[], None]:
    def loop() -> None:
        model.reset(spikes.shape[1])
        for t in range(spikes.shape[0]):
            model.step(spikes[t])

    return loop


def kernel_only(model: Any, spikes: np.ndarray) -> Callable[[], None]:
    """The compiled kernel called directly, one streaming step per call, as ``step()`` calls it (its
    entry point with the stream's arguments bound), recording every step into one row: the floor
    under ``step()``, which adds its Python-side checks and a Result per step. Uses the model's
    internals, for this measurement only."""

    def loop() -> None:
        model.reset(spikes.shape[1])
        kernel, (row, _) = model._stream.fast, model._stream.refill()
        for t in range(spikes.shape[0]):
            kernel(row, spikes[t])

    return loop


def streamed(model: Any, spikes: np.ndarray) -> np.ndarray:
    """The spikes ``[T, B, 10]`` a model's streaming ``step`` gives on ``spikes``."""
    model.reset(spikes.shape[1])
    return np.stack([model.step(spikes[t])["spikes"] for t in range(spikes.shape[0])])


def no_grad(run: Callable[[], Any]) -> Callable[[], Any]:
    import torch

    def wrapped() -> Any:
        with torch.no_grad():
            return run()

    return wrapped


SNNTORCH = "snnTorch (no_grad)"
SNNTORCH_STEP = "snnTorch step (no_grad)"
HOISTED = "snnTorch, conv1 + pool1 hoisted (no_grad)"


def check_agreement(rows: list[dict], outputs: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Compare every peer's spikes with numba's (:func:`benchmarks.common.agreement`), store the figures in
    its row, and return what fails the limits: a fast peer that computes something else does not count."""
    failures = []
    for row in rows:
        recorded = outputs.get(row["workload"], {})
        if row["runner"] == "numba" or row["runner"] not in recorded or "numba" not in recorded:
            continue
        row["agreement_with_numba"] = stats = agreement(recorded[row["runner"]], recorded["numba"])
        failure = agreement_failure(f"({row['workload']}) {row['runner']}", stats)
        if failure:
            failures.append(failure)
    return failures


def compare(rows: list[dict]) -> None:
    """Each row's speed-up over snnTorch's tutorial loop timed in the same rounds: the ratio of the
    medians, and the median and range of the per-round ratios (each round times every row once);
    on (a) also over snnTorch with conv1 + pool1 hoisted out of the loop."""
    for row in rows:
        same = [r for r in rows if r["workload"] == row["workload"] and r["round"] == row["round"]]
        for key, runners in (("snntorch", (SNNTORCH, SNNTORCH_STEP)), ("hoisted_snntorch", (HOISTED,))):
            base = next((r for r in same if r["runner"] in runners), None)
            if base is None:
                continue
            ratios = [b / t for b, t in zip(base["samples_s"], row["samples_s"])]
            row[f"speedup_vs_{key}"] = base["median_s"] / row["median_s"]
            row[f"speedup_vs_{key}_per_round"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


# -- timing -----------------------------------------------------------------------------------------
def interleaved_medians(rows: list[dict], repeats: int) -> None:
    """Median (and minimum) time per unit of each row, one repetition of every row per round. A
    ``warm`` row (streaming) is run once untimed right before each timed repetition: a real-time
    loop streams from caches its own steps keep warm, not from caches the other peers just used."""
    if not rows:  # e.g. no onnxruntime rounds with one thread
        return
    for row in rows:
        row["run"]()  # warm-up
    samples: list[list[float]] = [[] for _ in rows]
    order = list(range(len(rows)))
    for round_ in range(repeats):
        for index in order[round_ % len(order):] + order[: round_ % len(order)]:  # each round starts one row later
            row = rows[index]
            if row["warm"]:
                row["run"]()
            start = time.perf_counter()
            row["run"]()
            samples[index].append((time.perf_counter() - start) / row["per"])
    for row, times in zip(rows, samples):
        row["median_s"], row["min_s"], row["max_s"] = statistics.median(times), min(times), max(times)
        row["samples_s"] = times
        del row["run"]


COMPILE_SCRIPT = """
    import json, sys, time
    start = time.perf_counter()
    import numpy as np
    import snnir
    from benchmarks.bench_numba_infer import cnn_graph
    from benchmarks.common import fc_graph
    graph = cnn_graph() if sys.argv[1] == "cnn" else fc_graph(hidden=int(sys.argv[2]))
    imported = time.perf_counter()
    model = snnir.compile(graph, "numba")
    compiled = time.perf_counter()
    shape = (8, 1, 28, 28) if sys.argv[1] == "cnn" else (graph.time.num_steps, 8, 784)  # batch 8: the prange driver with 2+ threads
    x = np.zeros(shape, np.float32)
    model.run(x)
    first = time.perf_counter()
    model.run(x)
    second = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "compile_s": compiled - imported, "first_run_s": first - compiled,
                      "steady_run_s": second - first, "to_first_result_s": first - start}))
"""


def compile_costs(threads: int) -> list[dict]:
    """Fresh processes: cold (empty numba + snnir caches), cached, and a new structure with the kernel
    library cached, each running a batch of 8 (so with 2+ threads the ``prange`` driver compiles too).
    ``compile_and_load_s`` = compile() + first run - steady run."""
    rows = []
    with tempfile.TemporaryDirectory() as numba_cache, tempfile.TemporaryDirectory() as snnir_cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache, SNNIR_CACHE_DIR=snnir_cache, NUMBA_NUM_THREADS=str(threads))
        for label, args in [("cold: empty caches (CNN)", ["cnn"]), ("cached: second process (CNN)", ["cnn"]),
                            ("cold: empty snnir cache, kernel library cached (FC)", ["fc", "512"]),
                            ("cached: second process (FC)", ["fc", "512"]),
                            ("new structure, kernel library cached (FC 784-300-10)", ["fc", "300"])]:
            done = subprocess.run([sys.executable, "-c", textwrap.dedent(COMPILE_SCRIPT), *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode:
                raise SystemExit(f"compile measurement failed:\n{done.stderr[-2000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["what"] = label
            row["compile_and_load_s"] = row["compile_s"] + row["first_run_s"] - row["steady_run_s"]
            rows.append(row)
    return rows


# -- main -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="threads for every peer (default: all CPUs numba may use)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no compile-cost processes")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    check_output(args.output)  # before minutes of measuring

    import numba
    import torch

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    repeats = 3 if args.quick else args.repeats
    import snnir

    rng = np.random.default_rng(0)
    notes: list[str] = []
    rows: list[dict] = []
    outputs: dict[str, dict[str, np.ndarray]] = {}

    def add(workload: str, runner: str, run: Callable[[], Any], per: int = 1, spikes: Callable[[], np.ndarray] | None = None) -> None:
        # with several threads, onnxruntime's intra-op threads keep spinning after each call and
        # steal a core from whichever peer runs next: its rows are timed in a round of their own,
        # with a second snnTorch row of the workload to compare with
        apart = threads > 1 and runner.startswith("onnxruntime")
        rows.append({"workload": workload, "runner": runner, "run": run, "per": per, "warm": workload == "c",
                     "round": "onnxruntime" if apart else "main"})
        if apart and not any(r["round"] == "onnxruntime" and r["workload"] == workload for r in rows[:-1]):
            base = next(r for r in rows if r["workload"] == workload and r["runner"] in (SNNTORCH, SNNTORCH_STEP))
            rows.append({**base, "round": "onnxruntime"})
        if spikes is not None:
            outputs.setdefault(workload, {})[runner] = spikes()

    def peers(workload: str, graph: Any, x: np.ndarray, snntorch_run: Callable, key: str) -> None:
        numba_model = snnir.compile(graph, "numba")
        add(workload, "numba", lambda: numba_model.run(x), spikes=lambda: numba_model.run(x)[key])
        add(workload, SNNTORCH, lambda: snntorch_run(x), spikes=lambda: snntorch_run(x))
        torch_model, note = optional_backend(graph, "torch")
        if torch_model is None:
            notes.append(note)
        else:
            add(workload, "snnir torch backend (no_grad)", no_grad(lambda: torch_model.run(x)), spikes=lambda: torch_model.run(x)[key])
        onnx_model, note = optional_backend(graph, "onnx", threads=threads)
        if onnx_model is None:
            notes.append(note)
        else:
            add(workload, "onnxruntime (snnir onnx backend)", lambda: onnx_model.run(x), spikes=lambda: onnx_model.run(x)[key])

    cnn = cnn_graph()
    images = rng.random((128, 1, 28, 28)).astype(np.float32)
    peers("a", cnn, images, snntorch_cnn(cnn), "spikes")
    hoisted = snntorch_cnn(cnn, hoisted=True)
    add("a", HOISTED, lambda: hoisted(images), spikes=lambda: hoisted(images))

    fc = fc_graph()
    spikes_01 = (rng.random((100, 64, 784)) < 0.1).astype(np.float32)
    spikes_001 = (rng.random((100, 64, 784)) < 0.01).astype(np.float32)
    fc_run, fc_stream = snntorch_fc(fc)
    peers("b", fc, spikes_01, fc_run, "spikes")
    numba_fc = snnir.compile(fc, "numba")
    add("b p=0.01", "numba", lambda: numba_fc.run(spikes_001), spikes=lambda: numba_fc.run(spikes_001)["spikes"])
    add("b p=0.01", SNNTORCH, lambda: fc_run(spikes_001), spikes=lambda: fc_run(spikes_001))

    one = np.ascontiguousarray(spikes_01[:, :1])
    numba_one = snnir.compile(fc, "numba")
    outputs["c"] = {"numba": numba_one.run(one)["spikes"]}  # what every streamed peer must reproduce
    add("c", "numba step()", stream(numba_one, one), per=100, spikes=lambda: streamed(numba_one, one))
    add("c", "numba kernel alone (no checks, no results)", kernel_only(numba_one, one), per=100)
    add("c", SNNTORCH_STEP, fc_stream(one), per=100, spikes=lambda: fc_run(one))
    torch_one, _ = optional_backend(fc, "torch")
    if torch_one is not None:
        add("c", "snnir torch backend step (no_grad)", no_grad(stream(torch_one, one)), per=100,
            spikes=no_grad(lambda: streamed(torch_one, one)))
    onnx_one, _ = optional_backend(fc, "onnx", threads=threads)
    if onnx_one is not None:
        add("c", "onnxruntime step (snnir onnx backend)", stream(onnx_one, one), per=100, spikes=lambda: streamed(onnx_one, one))

    failures = check_agreement(rows, outputs)
    for group in ("main", "onnxruntime"):
        interleaved_medians([row for row in rows if row["round"] == group], repeats)
    if any(row["round"] == "onnxruntime" for row in rows):
        notes.append("onnxruntime rows were timed in rounds of their own, with snnTorch again (its spinning threads "
                     "would slow the next peer); their ratios are against that round's snnTorch")
    compare(rows)
    activity = {r["runner"]: r["median_s"] for r in rows if r["workload"] == "b p=0.01"}
    dense = {r["runner"]: r["median_s"] for r in rows if r["workload"] == "b"}
    activity_ratio = activity["numba"] / dense["numba"]
    costs = [] if args.quick else compile_costs(threads)
    environment = {
        **provenance(), "torch_imported_before_this_module": TORCH_PRELOADED,
        "threads": threads, "numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER, "repeats": repeats,
    }
    _report(rows, costs, activity_ratio, environment, notes + failures, args.output)
    for failure in failures:
        print(f"FAILED agreement: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _report(rows: list[dict], costs: list[dict], activity_ratio: float, environment: dict, notes: list[str], output: Path) -> None:
    print(f"numba inference benchmark: {environment['threads']} thread(s) per peer (numba {environment['numba_threads']}, "
          f"torch {environment['torch_threads']}), median of {environment['repeats']} interleaved rounds, "
          f"{environment['cpu_count']} CPUs, load {environment['load_average_1min']:.1f}, OMP_WAIT_POLICY={environment['omp_wait_policy']}")
    if environment["torch_imported_before_this_module"]:
        print("note: torch was imported before this benchmark, so OMP_WAIT_POLICY may not apply; run it alone")
    labels = {"a": "(a) seed CNN, B128 T25", "b": "(b) FC, B64 T100 p=0.1", "b p=0.01": "(b) FC, p=0.01", "c": "(c) streaming, B1"}
    print(f"{'workload':<24} {'runner':<44} {'median':>14} {'(min - max)':>17} {'vs snnTorch':>12} {'per round':>14} "
          f"{'vs hoisted':>11} {'differ/spike':>13}")
    for r in rows:
        scale, unit = (1e6, "us/step") if r["workload"] == "c" else (1e3, "ms")
        shown = f"{r['median_s'] * scale:.2f} {unit}"
        spread = f"({r['min_s'] * scale:.2f} - {r['max_s'] * scale:.2f})"
        rounds = r["speedup_vs_snntorch_per_round"]
        per_round = f"{rounds['min']:.1f}-{rounds['max']:.1f}x"
        hoisted = f"{r['speedup_vs_hoisted_snntorch']:.2f}x" if "speedup_vs_hoisted_snntorch" in r else ""
        differ = f"{r['agreement_with_numba']['mismatch_per_spike']:.4f}" if "agreement_with_numba" in r else ""
        print(f"{labels[r['workload']]:<24} {r['runner'] + (' [onnx round]' if r['round'] != 'main' and not r['runner'].startswith('onnx') else ''):<44} "
              f"{shown:>14} {spread:>17} {r['speedup_vs_snntorch']:>11.2f}x {per_round:>14} {hoisted:>11} {differ:>13}")
    print(f"activity: numba time at p=0.01 / p=0.1 = {activity_ratio:.3f} (target <= 0.2)")
    for row in costs:
        print(f"compile, {row['what']:<52} compile+load {row['compile_and_load_s']:6.2f} s, to first result {row['to_first_result_s']:6.2f} s "
              f"(imports {row['import_s']:.2f} s)")
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    document = {"environment": environment, "rows": rows, "activity_ratio_p001_over_p01": activity_ratio, "compile": costs, "notes": list(dict.fromkeys(notes))}
    write_results(output, document)
    print(f"wrote {output}")


if __name__ == "__main__":
    raise SystemExit(main())
