"""examples/quickstart.py runs on MNIST IDX files (here a small synthetic set) and on digits."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("torch")
pytest.importorskip("numba")


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_quickstart_reads_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 96), ("t10k", 32)):
        _idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        _idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, count))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--mnist", str(tmp_path), "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("Dataset('mnist': 96 train, 32 test", "CNN test set accuracy", "Trained decay rates of the second layer",
                 "FC test set accuracy", "numba predictions agree with torch on 100.00%"):
        assert line in done.stdout, line
