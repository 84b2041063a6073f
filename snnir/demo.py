"""``make demo``: declare the quickstart CNN from YAML, check it, simulate it and save it.

Usage: ``python -m snnir.demo [--model examples/quickstart_cnn.yaml] [--out demo-output]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import snnir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="examples/quickstart_cnn.yaml")
    parser.add_argument("--out", default="demo-output")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    graph = snnir.load(args.model)
    print(graph.summary(), "\n")
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, *graph.nodes["x"].shape), dtype=np.float32)
    model = snnir.compile(graph, "reference")
    start = time.perf_counter()
    result = model.run(images, probes=["lif1"])
    elapsed = time.perf_counter() - start
    spikes = result["spikes"]
    print(f"reference run: {spikes.shape[0]} steps x batch {spikes.shape[1]} in {elapsed:.3f} s; "
          f"output firing rate {spikes.mean():.3f}, lif1 firing rate {result.probes['lif1'].mean():.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = snnir.save(graph, out / f"{graph.name}.snnir")
    reloaded = snnir.compile(snnir.load(saved), "reference").run(images)
    identical = np.array_equal(reloaded["spikes"], spikes)
    print(f"saved {saved} ({saved.stat().st_size:,} bytes); reloaded run identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
