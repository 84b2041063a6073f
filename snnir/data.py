"""Datasets for training and evaluation, all offline.

* ``"digits"``: scikit-learn's handwritten digits (1,797 images of 8x8, shipped inside scikit-learn;
  needs ``snnir[data]``), scaled to [0, 1] and resized bilinearly to the model's input.
* a directory of MNIST IDX files (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), read with NumPy.
* an ``.npz`` holding ``x`` and ``y`` (split here), or ``x_train``, ``y_train``, ``x_test``, ``y_test``.

Images come out as float32 ``[N, *input_shape]`` in [0, 1] and labels as int64 ``[N]``. For a model
whose input is a ``sequence`` (``sequence=True``), an ``.npz`` holds one time series or spike train
per sample, ``x`` of shape ``[N, T, *input_shape]``, taken as it is (any ``T``; no scaling); images
feed such a model once encoded (:mod:`snnir.encoders`, or ``--encode`` on the command line).
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError, InputError

MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """A train/test split of images and integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.x_train)} train, {len(self.x_test)} test, "
            f"input {tuple(self.x_train.shape[1:])}, {self.classes} classes)"
        )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic ``0 0 type ndim``, big-endian int32 sizes, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (OSError, EOFError) as error:
        raise FormatError(f"{path}: cannot read: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise FormatError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FormatError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise FormatError(f"{path}: shape {shape} needs {expected} bytes of data, found {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz", directory / stem.replace("-idx", ".idx")):
        if candidate.exists():
            return candidate
    raise FormatError(f"{directory}: no MNIST file {stem}[.gz]; expected {', '.join(MNIST_FILES.values())}")


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``[N, H, W]`` images to ``[N, *size]`` (pixel centres aligned, as PIL/torch)."""
    n, height, width = images.shape
    if (height, width) == tuple(size):
        return images.astype(np.float32)

    def axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, src - 1)
        return low, high, (position - low).astype(np.float32)

    (r0, r1, rw), (c0, c1, cw) = axis(height, size[0]), axis(width, size[1])
    rows = images[:, r0, :] * (1 - rw)[None, :, None] + images[:, r1, :] * rw[None, :, None]
    return (rows[:, :, c0] * (1 - cw) + rows[:, :, c1] * cw).astype(np.float32)


def _fit_to_input(x: np.ndarray, input_shape: tuple[int, ...], source: str) -> np.ndarray:
    """Scale to [0, 1] and shape images ``[N, H, W]`` for an input of shape ``(1, H', W')`` or ``(H'·W',)``."""
    x = x.astype(np.float32)
    top = float(x.max(initial=0.0))
    if top > 1.0:
        x = x / top
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim == 2 and len(input_shape) >= 2:  # flat data for an image model: cannot tell H from W
        raise InputError(f"{source}: flat samples cannot feed an image input {input_shape}")
    if x.ndim == 3:
        if len(input_shape) == 3 and input_shape[0] == 1:
            return resize_images(x, input_shape[1:])[:, None]
        if len(input_shape) == 2:
            return resize_images(x, input_shape)
        if len(input_shape) == 1:
            side = int(math.isqrt(input_shape[0]))
            if side * side == input_shape[0]:
                return resize_images(x, (side, side)).reshape(len(x), -1)
    if tuple(x.shape[1:]) == tuple(input_shape):
        return x
    raise InputError(f"{source}: samples of shape {tuple(x.shape[1:])} do not fit the model input {tuple(input_shape)}")


def _fit_sequences(x: np.ndarray, input_shape: tuple[int, ...], source: str) -> np.ndarray:
    """Samples ``[T, *input_shape]`` for a sequence input, as float32 (values as they are)."""
    if x.ndim != len(input_shape) + 2 or tuple(x.shape[2:]) != tuple(input_shape):
        shape = ", ".join(map(str, input_shape))
        raise InputError(f"{source}: a sequence input takes one series [T, {shape}] per sample (x of shape "
                         f"[N, T, {shape}]); found samples of shape {list(x.shape[1:])}")
    return x.astype(np.float32)


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(len(x))
    cut = len(x) - int(round(len(x) * test_fraction))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def load_digits_dataset(input_shape: tuple[int, ...] = (1, 8, 8), *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's digits, resized to ``input_shape``, split ``1 − test_fraction`` / ``test_fraction``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("the digits dataset needs scikit-learn: pip install 'snnir[data]'") from None
    digits = load_digits()
    x = _fit_to_input(digits.images / 16.0, input_shape, "digits")
    return Dataset("digits", *_split(x, digits.target.astype(np.int64), test_fraction, seed))


def load_mnist(directory: str | os.PathLike, input_shape: tuple[int, ...] = (1, 28, 28)) -> Dataset:
    """MNIST from the four IDX files in ``directory`` (the official 60,000/10,000 split)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory}: not a directory of MNIST IDX files")
    arrays = {key: read_idx(_find_idx(directory, stem)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise FormatError(f"{directory}: {split} images and labels differ in count")
    return Dataset(
        "mnist",
        _fit_to_input(arrays["x_train"], input_shape, "mnist"),
        arrays["y_train"].astype(np.int64),
        _fit_to_input(arrays["x_test"], input_shape, "mnist"),
        arrays["y_test"].astype(np.int64),
    )


def load_npz(path: str | os.PathLike, input_shape: tuple[int, ...], *, test_fraction: float = 0.2, seed: int = 0,
             sequence: bool = False) -> Dataset:
    """An ``.npz`` with ``x``/``y`` (split here) or ``x_train``/``y_train``/``x_test``/``y_test``; with
    ``sequence``, samples are series ``[T, *input_shape]`` (see the module docstring)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as error:
        raise FormatError(f"{path}: not a readable .npz: {error}") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        parts = [arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    elif {"x", "y"} <= set(arrays):
        parts = list(_split(arrays["x"], arrays["y"], test_fraction, seed))
    else:
        raise FormatError(f"{path}: expected arrays x, y or x_train, y_train, x_test, y_test; found {sorted(arrays)}")
    x_train, y_train, x_test, y_test = parts
    for name, labels in (("y_train", y_train), ("y_test", y_test)):
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
            raise FormatError(f"{path}: {name} must be non-negative integer labels [N]")
    for name, x, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(labels):
            raise FormatError(f"{path}: {len(x)} {name} samples but {len(labels)} labels")
    fit = _fit_sequences if sequence else _fit_to_input
    return Dataset(
        Path(path).stem,
        fit(x_train, input_shape, str(path)),
        y_train.astype(np.int64),
        fit(x_test, input_shape, str(path)),
        y_test.astype(np.int64),
    )


def load_dataset(spec: str | os.PathLike, input_shape: tuple[int, ...], *, sequence: bool = False, **kwargs) -> Dataset:
    """``"digits"``, an MNIST IDX directory, or an ``.npz`` file, fitted to ``input_shape``; with
    ``sequence`` (a model whose input is a sequence), an ``.npz`` of series ``[N, T, *input_shape]``."""
    path = Path(spec)
    if path.suffix == ".npz":
        return load_npz(path, input_shape, sequence=sequence, **kwargs)
    if sequence and (str(spec) == "digits" or path.is_dir()):
        raise InputError(f"{spec} holds images, and this model's input is a sequence (a series per sample): "
                         f"encode the images into spike trains (snnir.encoders; on the command line, --encode rate "
                         f"or --encode latency), or pass an .npz of x [N, T, *shape]")
    if str(spec) == "digits":
        return load_digits_dataset(input_shape, **kwargs)
    if path.is_dir():
        return load_mnist(path, input_shape)
    raise FormatError(f"{spec}: expected 'digits', a directory of MNIST IDX files, or an .npz file")


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0):
    """Yield ``(x, y)`` mini-batches (the last one may be smaller)."""
    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else np.arange(len(x))
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        yield x[index], y[index]


__all__ = ["Dataset", "load_dataset", "load_digits_dataset", "load_mnist", "load_npz", "read_idx", "resize_images", "batches"]
