"""Datasets: MNIST IDX files, .npz arrays, scikit-learn digits, and the bilinear resize."""

import gzip

import numpy as np
import pytest

from snnir import FormatError, InputError
from snnir.data import batches, load_dataset, read_idx, resize_images


def _write_idx(path, array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 20))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (6, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 6))
    return tmp_path


def test_mnist_idx_directory(mnist_dir):
    data = load_dataset(mnist_dir, (1, 28, 28))
    assert data.x_train.shape == (20, 1, 28, 28) and data.x_test.shape == (6, 1, 28, 28)
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 1
    raw = read_idx(mnist_dir / "t10k-images-idx3-ubyte")
    np.testing.assert_allclose(data.x_test[:, 0], raw / raw.max())
    flat = load_dataset(mnist_dir, (784,))
    assert flat.x_train.shape == (20, 784)


def test_bad_idx_files(tmp_path, mnist_dir):
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(FormatError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    good = (mnist_dir / "t10k-labels-idx1-ubyte").read_bytes()
    (tmp_path / "short").write_bytes(good[:-2])
    with pytest.raises(FormatError, match=r"shape \(6,\) needs 6 bytes of data, found 4"):
        read_idx(tmp_path / "short")
    (mnist_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FormatError, match="no MNIST file t10k-labels-idx1-ubyte"):
        load_dataset(mnist_dir, (1, 28, 28))


def test_npz_forms(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "xy.npz", x=rng.random((50, 8, 8)), y=rng.integers(0, 3, 50))
    data = load_dataset(tmp_path / "xy.npz", (1, 16, 16), test_fraction=0.2)
    assert data.x_train.shape == (40, 1, 16, 16) and data.x_test.shape == (10, 1, 16, 16) and data.classes <= 3
    np.savez(tmp_path / "bad.npz", x=rng.random((5, 4)), y=np.array([0.5] * 5))
    with pytest.raises(FormatError, match="non-negative integer labels"):
        load_dataset(tmp_path / "bad.npz", (4,))
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(FormatError, match="expected arrays x, y"):
        load_dataset(tmp_path / "other.npz", (4,))
    with pytest.raises(InputError, match="do not fit the model input"):
        load_dataset(tmp_path / "xy.npz", (3, 8, 8))
    with pytest.raises(FormatError, match="expected 'digits'"):
        load_dataset(tmp_path / "nothing.txt", (4,))


def test_npz_series_for_a_sequence_input(tmp_path):
    """A sequence input takes one series [T, *shape] per sample, values as they are (no scaling)."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, size=(20, 7, 4)).astype(np.float32)  # counts up to 2: kept, not rescaled
    np.savez(tmp_path / "series.npz", x=x, y=rng.integers(0, 3, 20))
    data = load_dataset(tmp_path / "series.npz", (4,), sequence=True, test_fraction=0.25)
    assert data.x_train.shape == (15, 7, 4) and data.x_test.shape == (5, 7, 4) and data.x_train.max() == 2
    with pytest.raises(InputError, match=r"one series \[T, 2, 2\] per sample \(x of shape \[N, T, 2, 2\]\); found samples of shape \[7, 4\]"):
        load_dataset(tmp_path / "series.npz", (2, 2), sequence=True)
    with pytest.raises(InputError, match="encode the images into spike trains"):
        load_dataset("digits", (64,), sequence=True)
    np.savez(tmp_path / "short.npz", x_train=x, y_train=np.zeros(19, np.int64), x_test=x, y_test=np.zeros(20, np.int64))
    with pytest.raises(FormatError, match="20 train samples but 19 labels"):
        load_dataset(tmp_path / "short.npz", (4,), sequence=True)


def test_digits_are_offline_and_resized():
    pytest.importorskip("sklearn")
    data = load_dataset("digits", (1, 28, 28))
    assert len(data.x_train) + len(data.x_test) == 1797 and data.classes == 10
    assert data.x_train.shape[1:] == (1, 28, 28) and data.x_train.max() <= 1.0


def test_resize_matches_torch_bilinear():
    torch = pytest.importorskip("torch")
    images = np.random.default_rng(2).random((3, 8, 8)).astype(np.float32)
    ours = resize_images(images, (28, 20))
    theirs = torch.nn.functional.interpolate(torch.from_numpy(images)[:, None], size=(28, 20), mode="bilinear",
                                             align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_batches_cover_everything_once():
    x, y = np.arange(10), np.arange(10)
    seen = np.concatenate([yb for _, yb in batches(x, y, 3, shuffle=True, seed=1)])
    assert sorted(seen) == list(range(10))
