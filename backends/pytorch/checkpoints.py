"""Per-epoch history and checkpoints of :func:`~snnir.backends.pytorch.fit`.

A checkpoint holds the model and optimizer state (with the optimizer's class), the epoch, the history
and the RNG states (torch and the shuffling generator), written atomically; loading checks that it fits
the model and optimizer before anything is restored where that can be known in advance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from snnir.errors import FormatError
from snnir.formats.atomic import atomic_write


@dataclass
class History:
    """Per-epoch results: ``epochs[i]`` holds epoch, loss, accuracy, time (s) and val_loss/val_accuracy."""

    epochs: list[dict[str, Any]] = field(default_factory=list)

    def _column(self, key: str) -> list:
        return [row.get(key) for row in self.epochs]

    @property
    def loss(self) -> list[float]:
        return self._column("loss")

    @property
    def accuracy(self) -> list[float | None]:
        return self._column("accuracy")

    @property
    def time(self) -> list[float]:
        return self._column("time")

    @property
    def val_loss(self) -> list[float | None]:
        return self._column("val_loss")

    @property
    def val_accuracy(self) -> list[float | None]:
        return self._column("val_accuracy")

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": [dict(row) for row in self.epochs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls([dict(row) for row in data.get("epochs", [])])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    epoch: int, history: History, rng: np.random.Generator | None = None) -> None:
    """Write model, optimizer, epoch, history and RNG states atomically (never a partial file)."""
    payload = {
        "format": "snnir-torch-checkpoint",
        "version": 1,
        "epoch": epoch,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "optimizer_class": type(optimizer).__name__,
        "history": history.to_dict(),
        "torch_rng": torch.get_rng_state(),
        # CUDA generators too (Dropout masks on a GPU), so that a resumed run repeats an uninterrupted one there
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "numpy_rng": None if rng is None else rng.bit_generator.state,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def _read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a format error
        raise FormatError(f"{path}: not a readable snnir torch checkpoint ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != "snnir-torch-checkpoint":
        raise FormatError(f"{path}: not an snnir torch checkpoint")
    return payload


def checkpoint_epochs(path: str | os.PathLike) -> int:
    """How many epochs the checkpoint at ``path`` holds (``fit(..., resume=True)`` continues after them)."""
    return int(_read_checkpoint(path)["epoch"]) + 1


def _check_model_fits(path: str | os.PathLike, current: Mapping[str, Any], saved: Mapping[str, Any]) -> None:
    """Refuse a checkpoint of another model before anything is loaded: its entries and their shapes."""
    missing, unexpected = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    reshaped = [f"{key} {list(saved[key].shape)} (here {list(current[key].shape)})"
                for key in current if key in saved and tuple(saved[key].shape) != tuple(current[key].shape)]
    problems = [f"{what}: {', '.join(items[:4])}{', ...' if len(items) > 4 else ''}"
                for what, items in (("missing", missing), ("unexpected", unexpected), ("other shapes", reshaped)) if items]
    if problems:
        raise FormatError(f"{path}: the checkpoint does not fit this model; {'; '.join(problems)}")


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    rng: np.random.Generator | None = None) -> tuple[int, History]:
    """Restore what :func:`save_checkpoint` wrote; returns ``(epoch, history)``."""
    payload = _read_checkpoint(path)
    saved_class = payload.get("optimizer_class")
    if optimizer is not None and saved_class not in (None, type(optimizer).__name__):
        raise FormatError(f"{path}: the checkpoint holds the state of a {saved_class} optimizer, not of this "
                          f"{type(optimizer).__name__}; resume with the same optimizer (or train afresh)")
    _check_model_fits(path, unwrap(model).state_dict(), payload["model"])
    if optimizer is not None:
        saved = [len(group["params"]) for group in payload["optimizer"].get("param_groups", [])]
        current = [len(group["params"]) for group in optimizer.state_dict()["param_groups"]]
        if saved != current:
            raise FormatError(f"{path}: the optimizer state covers parameter groups of sizes {saved}, this optimizer {current} "
                              "(a model with other learnable parameters?); nothing was loaded")
    try:
        unwrap(model).load_state_dict(payload["model"])
    except RuntimeError as error:
        detail = " ".join(str(error).split())  # torch lists every key on its own lines
        detail = detail if len(detail) <= 240 else detail[:240] + "..."
        raise FormatError(f"{path}: the checkpoint does not fit this model: {detail}") from None
    if optimizer is not None:
        try:  # its state holds the learning rate and moments of the checkpoint: they continue, whatever lr is given
            optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError) as error:
            raise FormatError(f"{path}: the optimizer state does not fit this model's parameters ({error}); the model's "
                              "weights were loaded, the optimizer's state was not") from None
    torch.set_rng_state(payload["torch_rng"])
    if payload.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    if rng is not None and payload["numpy_rng"] is not None:
        rng.bit_generator.state = payload["numpy_rng"]
    return int(payload["epoch"]), History.from_dict(payload["history"])


__all__ = ["History", "save_checkpoint", "load_checkpoint", "checkpoint_epochs"]
