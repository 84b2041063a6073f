"""PNG plots (matplotlib, ``snnir[plot]``): training curves, spike rasters and layer activity.

Every function writes its figure atomically and returns the path; nothing opens a window (Agg backend).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import InputError
from .formats.atomic import atomic_write


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("plots need matplotlib: pip install 'snnir[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        _pyplot().close(figure)  # also when savefig fails: pyplot keeps every unclosed figure alive
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def plot_history(history: Mapping[str, Sequence[float]], path: str | os.PathLike, title: str = "training") -> Path:
    """Loss and accuracy curves from ``{"loss": [...], "accuracy": [...], "test_accuracy": [...]}`` (per epoch)."""
    plt = _pyplot()
    losses = {k: v for k, v in history.items() if "loss" in k and len(v)}
    accuracies = {k: v for k, v in history.items() if "acc" in k and len(v)}
    if not losses and not accuracies:
        raise InputError(f"nothing to plot: history has keys {sorted(history)} without loss or accuracy values")
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, values in losses.items():
        axes[0].plot(np.arange(1, len(values) + 1), values, marker="o", label=key)
    axes[0].set(xlabel="epoch", ylabel="loss", title=f"{title}: loss")
    for key, values in accuracies.items():
        axes[1].plot(np.arange(1, len(values) + 1), np.asarray(values) * 100, marker="o", label=key)
    axes[1].set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title}: accuracy")
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend()
    return _save(figure, path)


def plot_raster(spikes: np.ndarray, path: str | os.PathLike, *, sample: int = 0, title: str = "spike raster",
                dt: float | None = None) -> Path:
    """Raster of one sample: ``spikes`` is ``[T, B, *shape]`` (or ``[T, N]``); each dot is a spike."""
    plt = _pyplot()
    spikes = np.asarray(spikes)
    if spikes.ndim >= 3:
        if not 0 <= sample < spikes.shape[1]:
            raise InputError(f"sample {sample} is outside the batch of {spikes.shape[1]}")
        spikes = spikes[:, sample]
    if spikes.ndim == 1:
        spikes = spikes[:, None]
    if spikes.ndim == 0 or spikes.size == 0:
        raise InputError(f"nothing to plot: spikes of shape {list(np.shape(spikes))} hold no step or no neuron")
    spikes = spikes.reshape(spikes.shape[0], -1)
    steps, neurons = np.nonzero(spikes)
    figure, axis = plt.subplots(figsize=(8, max(2.0, min(8.0, 0.25 * spikes.shape[1] + 1))))
    times = steps * dt * 1e3 if dt else steps
    axis.scatter(times, neurons, s=6, marker="|" if spikes.shape[1] > 40 else "o", color="black")
    axis.set(xlabel="time (ms)" if dt else "step", ylabel="neuron", title=title,
             xlim=(-0.5, (spikes.shape[0] - 0.5) * (dt * 1e3 if dt else 1)), ylim=(-0.5, spikes.shape[1] - 0.5))
    axis.yaxis.get_major_locator().set_params(integer=True)
    return _save(figure, path)


def plot_activity(rates: Mapping[str, np.ndarray], path: str | os.PathLike, title: str = "firing rates") -> Path:
    """Per-layer firing-rate distributions: ``rates`` maps a layer to its per-neuron rates (spikes per step)."""
    plt = _pyplot()
    if not rates:
        raise InputError("nothing to plot: no layers given")
    figure, axis = plt.subplots(figsize=(max(4.0, 1.4 * len(rates) + 2), 3.6))
    names = list(rates)
    axis.boxplot([np.asarray(rates[n]).ravel() for n in names], showfliers=False)
    axis.set_xticks(range(1, len(names) + 1), [f"{n}\nmean {np.mean(rates[n]):.3f}" for n in names])
    axis.set(ylabel="spikes per step", title=title)
    axis.grid(alpha=0.3, axis="y")
    return _save(figure, path)


__all__ = ["plot_history", "plot_raster", "plot_activity"]
