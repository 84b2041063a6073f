"""``make demo``: the snnTorch quickstart, end to end, with snnir.

1. declare: load the quickstart CNN from ``examples/quickstart_cnn.yaml``;
2. train: surrogate-gradient BPTT with the torch backend on scikit-learn's digits (offline, resized to
   28x28), ``mse_count_loss(0.8, 0.2)``, Adam, as in the snnTorch quickstart;
3. deploy: write the trained graph back, compile it with numba (no torch) and export it to ONNX
   (run by onnxruntime), and compare accuracy, agreement with torch and speed side by side;
4. keep: the trained ``.snnir``, the ``.onnx`` and PNG plots (curves, raster, activity) in ``--out``.
   Each file is written atomically: a run that fails or is interrupted leaves every artefact whole,
   from this run or from the previous one.

``python -m snnir.demo --quick`` runs a reduced version (one short epoch) for tests.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

import snnir
from snnir.data import batches, load_dataset
from snnir.formats.atomic import atomic_write, make_directory


def _default_model() -> Path:
    """The quickstart CNN: installed with snnir (``snnir.examples``), or in the checkout's examples/."""
    try:
        return Path(str(resources.files("snnir.examples") / "quickstart_cnn.yaml"))
    except ModuleNotFoundError:  # run from a checkout that is not installed
        return Path(__file__).resolve().parents[1] / "examples" / "quickstart_cnn.yaml"


DEFAULT_MODEL = _default_model()


def _predict(model, x: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Predicted classes, output spike counts and the median seconds per batch."""
    predictions, counts, timings = [], [], []
    for xb, _ in batches(x, np.zeros(len(x)), batch):
        start = time.perf_counter()
        spikes = model.run(xb)["spikes"]
        timings.append(time.perf_counter() - start)
        counts.append(spikes.sum(0))
        predictions.append(spikes.sum(0).argmax(-1))
    return np.concatenate(predictions), np.concatenate(counts), float(np.median(timings))


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model to train (default: the quickstart CNN)")
    parser.add_argument("--out", default="demo-output", help="folder for the artefacts (default: demo-output)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default: 12)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default: 128, as the quickstart)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default: 2e-3, as the quickstart)")
    parser.add_argument("--quick", action="store_true", help="a reduced run (1 epoch on 256 samples) for tests")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    snnir.get_backend("torch")  # fail early, naming the extra, if torch is missing
    import torch

    from snnir.backends.pytorch import evaluate, fit
    from snnir.plots import plot_activity, plot_history, plot_raster

    torch.manual_seed(0)
    out = make_directory(args.out)  # now, not after training: a bad --out fails in a second

    # 1. declare
    graph = snnir.load(args.model)
    print(graph.summary(), "\n")

    # 2. train
    data = load_dataset("digits", graph.nodes[graph.inputs[0]].shape)
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    epochs = args.epochs
    if args.quick:
        x_train, y_train, x_test, y_test, epochs = x_train[:256], y_train[:256], x_test[:64], y_test[:64], 1
    print(f"{data}; training on {len(x_train)}, testing on {len(x_test)}")
    loss = {"name": "mse_count_loss", "correct_rate": 0.8, "incorrect_rate": 0.2}
    model = snnir.compile(graph, "torch")
    start = time.perf_counter()
    history = fit(model, (x_train, y_train), epochs=epochs, loss=loss, optimizer="adam", lr=args.lr,
                  batch_size=args.batch, validation=(x_test, y_test), progress=not args.quiet)
    train_seconds = time.perf_counter() - start
    for row in history.epochs:
        print(f"epoch {row['epoch'] + 1:2d}: loss {row['loss']:.4f}  train {row['accuracy'] * 100:5.1f}%  "
              f"test {row['val_accuracy'] * 100:5.1f}%  ({row['time']:.1f} s)")
    scores = evaluate(model, (x_test, y_test), loss=loss)
    print(f"trained in {train_seconds:.0f} s; test accuracy (torch) {scores['accuracy'] * 100:.2f}%\n")

    # 3. deploy: the trained graph, on every backend
    trained = model.to_graph()
    trained = trained.replace(metadata={**trained.metadata, "training": {
        "data": "digits", "epochs": epochs, "lr": args.lr, "loss": loss, "test_accuracy": scores["accuracy"],
        "history": history.to_dict()["epochs"]}})
    graph_path = snnir.save(trained, out / f"{graph.name}.snnir")
    onnx_path = snnir.export_onnx(trained, out / f"{graph.name}.onnx", mode="sequence")
    deployed = {"torch": model}
    compile_seconds = {}
    for backend in ("torch", "numba", "onnx", "reference"):
        start = time.perf_counter()
        if backend != "torch":
            deployed[backend] = snnir.compile(snnir.load(graph_path), backend)
        deployed[backend].run(x_test[: args.batch])  # first call: JIT compilation, session set-up, caches
        compile_seconds[backend] = time.perf_counter() - start
    results = {name: _predict(m, x_test, args.batch) for name, m in deployed.items()}
    base_pred, base_counts, base_time = results["torch"]
    rows = [("backend", "test accuracy", "same class as torch", "same spike counts", f"ms per batch of {args.batch}",
             "set-up + first batch s")]
    for name, (pred, counts, seconds) in results.items():
        rows.append((name, f"{np.mean(pred == y_test) * 100:.2f}%", f"{np.mean(pred == base_pred) * 100:.2f}%",
                     f"{np.mean(counts == base_counts) * 100:.2f}%", f"{seconds * 1e3:.1f}", f"{compile_seconds[name]:.2f}"))
    print(_table(rows), "\n")

    # 4. keep: plots and a machine-readable summary
    recording = deployed["reference"].run(x_test[:16], probes=["lif1", "lif2", "lif3"])
    curves = {"loss": history.loss, "train accuracy": history.accuracy, "test accuracy": history.val_accuracy}
    plots = [
        plot_history(curves, out / "training.png", title=graph.name),
        plot_raster(recording["spikes"], out / "raster.png", sample=0, dt=graph.time.dt,
                    title=f"output spikes, test sample 0 (label {y_test[0]})"),
        plot_activity({k: v.mean(axis=(0, 1)) for k, v in recording.probes.items()}, out / "activity.png"),
    ]
    summary = {
        "test_accuracy": {name: float(np.mean(r[0] == y_test)) for name, r in results.items()},
        "agreement_with_torch": {name: float(np.mean(r[0] == base_pred)) for name, r in results.items()},
        "ms_per_batch": {name: r[2] * 1e3 for name, r in results.items()},
        "artefacts": [str(p) for p in (graph_path, onnx_path, *plots)],
    }
    atomic_write(out / "summary.json", lambda handle: handle.write(json.dumps(summary, indent=1).encode()))
    print("artefacts:")
    for path in summary["artefacts"] + [str(out / "summary.json")]:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except snnir.SnnirError as error:  # as the CLI: one line naming the file and the cause, no traceback
        raise SystemExit(f"snnir demo: error: {error}") from None
