"""What the benchmark scripts share: workload (b)'s network, the provenance of a run, and the agreement
check that lets a timing count only when the peers computed the same thing.

Workload (b)'s weights are PyTorch's default initialisation (uniform in ±1/√fan_in, weights and biases)
times :data:`FC_GAIN`. At the default scale the output layer of this untrained network never fires (0 of
64,000 output entries at p = 0.1), so an agreement check would compare zeros with zeros, and the
event-driven synapses would see a network quieter than any trained one. With the gain, at p = 0.1 the
hidden layer fires 7.8 % and the output layer 7.2 % of the time (1.3 % and 1.9 % at p = 0.01).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np

from snnir.formats.atomic import atomic_write, check_writable, make_directory

ROOT = Path(__file__).resolve().parents[1]
#: Gain on workload (b)'s default-initialised weights and biases (see the module docstring).
FC_GAIN = 3.0
#: A peer's spikes count as the same computation when at most this many entries differ per spike of the
#: reference (float32 sums in another order flip a few spikes near threshold, and flips propagate in time)...
MAX_MISMATCH_PER_SPIKE = 0.02
#: ... and the predicted class (the output neuron with the most spikes) agrees on at least this fraction.
MIN_SAME_PREDICTION = 0.98


def fc_parameters(hidden: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    """Workload (b)'s weights: ``fc1`` 784 → hidden, ``fc2`` hidden → 10 (``[out, in]``), as float32."""
    rng = np.random.default_rng(seed)

    def layer(out_features: int, in_features: int) -> tuple[np.ndarray, np.ndarray]:
        bound = 1.0 / np.sqrt(in_features)
        weight = rng.uniform(-bound, bound, (out_features, in_features)) * FC_GAIN
        bias = rng.uniform(-bound, bound, out_features) * FC_GAIN
        return weight.astype(np.float32), bias.astype(np.float32)

    (w1, b1), (w2, b2) = layer(hidden, 784), layer(10, hidden)
    return {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}


def fc_graph(steps: int = 100, hidden: int = 512):
    """Workload (b) as an snnir graph: FC 784-hidden-10, LIF β = 0.9, a ``sequence`` (spike-train) input."""
    import snnir

    p = fc_parameters(hidden)
    return snnir.Sequential(
        snnir.Linear(weight=p["fc1.weight"], bias=p["fc1.bias"]), snnir.LIF(0.9),
        snnir.Linear(weight=p["fc2.weight"], bias=p["fc2.bias"]), snnir.LIF(0.9),
        input_shape=(784,), num_steps=steps, encoding="sequence", name=f"fc_784_{hidden}_10",
    )


def snntorch_fc(graph) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], Callable[[], None]]]:
    """Workload (b) in snnTorch (``nn.Linear`` + ``snn.Leaky``, the graph's weights), under ``no_grad``: a
    whole-sequence runner ``[T, B, 784] -> spikes [T, B, 10]``, and a factory of streaming loops that step
    through a given ``[T, B, 784]`` one step per call of the network."""
    import snntorch
    import torch

    layers = []
    for name in ("fc1", "fc2"):
        node = graph.nodes[name]
        linear = torch.nn.Linear(node.in_features, node.out_features)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(node.weight)))
            linear.bias.copy_(torch.from_numpy(np.array(node.bias)))
        layers.append((linear, snntorch.Leaky(beta=0.9)))

    def step(x_t: Any, membranes: list) -> Any:
        current = x_t
        for i, (linear, lif) in enumerate(layers):
            current, membranes[i] = lif(linear(current), membranes[i])
        return current

    @torch.no_grad()
    def run(spikes: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(spikes)
        membranes = [lif.init_leaky() for _, lif in layers]
        return torch.stack([step(x[t], membranes) for t in range(x.shape[0])]).numpy()

    def streaming(spikes: np.ndarray) -> Callable[[], None]:
        x = torch.from_numpy(spikes)

        @torch.no_grad()
        def loop() -> None:
            membranes = [lif.init_leaky() for _, lif in layers]
            for t in range(x.shape[0]):
                step(x[t], membranes)

        return loop

    return run, streaming


def agreement(found: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """How far a peer's spike record ``[T, B, C]`` is from the reference's: entries that differ per spike
    of the reference (a record of zeros scores 1.0 against a reference that fires, not the fraction of
    equal zeros), and the fraction of samples whose predicted class (most output spikes) is the same."""
    found, reference = np.asarray(found), np.asarray(reference)
    spikes = int(np.count_nonzero(reference))
    mismatched = int(np.count_nonzero(found != reference))
    same = float(np.mean(found.sum(0).argmax(-1) == reference.sum(0).argmax(-1)))
    return {"reference_spikes": spikes, "mismatched": mismatched, "mismatch_per_spike": mismatched / max(spikes, 1),
            "same_prediction": same}


def agreement_failure(label: str, stats: dict[str, Any]) -> str | None:
    """Why ``stats`` (:func:`agreement`) does not show the same computation, or None when it does."""
    if stats["reference_spikes"] == 0:
        return f"{label}: the reference record holds no spike, so agreement shows nothing"
    if stats["mismatch_per_spike"] > MAX_MISMATCH_PER_SPIKE or stats["same_prediction"] < MIN_SAME_PREDICTION:
        return (f"{label}: {stats['mismatched']} entries differ for {stats['reference_spikes']} spikes "
                f"({stats['mismatch_per_spike']:.2%}, limit {MAX_MISMATCH_PER_SPIKE:.0%}), same prediction on "
                f"{stats['same_prediction']:.1%} (limit {MIN_SAME_PREDICTION:.0%})")
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.rstrip("\n") if done.returncode == 0 else None  # porcelain lines start with a space


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - an absent or broken package: no version to report
        return None


def provenance() -> dict[str, Any]:
    """What a result depends on besides the code: the commit (and whether the tree had changes), the time,
    the machine and its load, the versions of every peer, the OpenMP wait policy."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    changed = sorted(line[3:] for line in status.splitlines()) if status else []
    return {
        "commit": _git("rev-parse", "HEAD"), "files_changed_since_commit": changed if status is not None else None,
        "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
        "machine": platform.machine(), "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        **{name: _version(name) for name in ("snnir", "torch", "snntorch", "numba", "onnxruntime")},
    }


def check_output(path: str | os.PathLike) -> Path:
    """Create the result file's directory and check that the file can be written, before any measurement
    (a run of minutes should not end in a refusal); a WriteError names the file and the cause."""
    make_directory(Path(path).parent)
    return check_writable(path)


def write_results(path: str | os.PathLike, document: dict[str, Any], indent: int = 1) -> Path:
    """Write a result document as indented JSON, atomically: the previous results stay whole until the
    new ones are complete."""
    text = json.dumps(document, indent=indent) + "\n"
    make_directory(Path(path).parent)
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


__all__ = ["FC_GAIN", "fc_parameters", "fc_graph", "snntorch_fc", "agreement", "agreement_failure", "provenance", "check_output",
           "write_results"]
