"""The torch backend: surrogate-gradient BPTT training of snnir graphs (docs/torch.md).

``snnir.compile(graph, "torch", device=None, dtype=torch.float32)`` returns a
:class:`~snnir.backends.pytorch.model.TorchModel` (an ``nn.Module`` that also offers ``run``/``step``).
This package also provides snnTorch's losses and accuracy, a training loop (:func:`fit`,
:func:`evaluate`) and torch versions of the stochastic input encoders. See docs/torch.md.
"""

from __future__ import annotations

from typing import Any, Mapping

from snnir.optional import require

require("torch", "torch", "snnir.backends.pytorch")

import torch

from snnir.ir.graph import Graph

from . import encoders
from .allocator import keep_freed_memory
from .losses import (
    LOSSES,
    accuracy_rate,
    ce_count_loss,
    ce_max_membrane_loss,
    ce_rate_loss,
    mse_count_loss,
    mse_membrane_loss,
)
from .memory import saved_bytes
from .model import TorchModel
from .rules import RULES
from .checkpoints import History, checkpoint_epochs, load_checkpoint, save_checkpoint
from .training import TrainingDiverged, evaluate, fit


class TorchBackend:
    """``snnir.compile(graph, "torch", device=None, dtype=torch.float32, overrides=None, event_driven=None, chunk_steps=None)``."""

    name = "torch"
    extra = "torch"
    rules = RULES
    #: Features this backend cannot run, with the reason (none).
    known_gaps: Mapping[str, str] = {}
    #: Compile options the conformance suite uses (the defaults: float32 on the CPU).
    conformance_options: Mapping[str, Any] = {}

    def compile(
        self,
        graph: Graph,
        *,
        device: Any = None,
        dtype: torch.dtype = torch.float32,
        overrides: Mapping | None = None,
        event_driven: bool | None = None,
        chunk_steps: int | None = None,
    ) -> TorchModel:
        """Lower ``graph`` to a :class:`TorchModel` on ``device`` (default CPU) in ``dtype`` (float32/float64).

        ``event_driven`` chooses how Linear layers fed directly by a ``sequence`` input or a spiking
        layer treat sparse 0/1 inputs (:mod:`snnir.backends.pytorch.events`): None (default) sums
        the weight columns of the input events in wide layers wherever that reproduces the GEMM bit
        for bit (calibrated per shape on the CPU), the GEMM elsewhere; True sums events in every such
        layer (in input order where the GEMM's order is unknown: last-bit differences on general
        floats); False keeps the GEMM.
        ``overrides`` maps node kinds to replacement lowering rules. ``chunk_steps`` fixes how many steps
        run at a time (default: whole sequences on GPUs, chunks of a few MiB per layer on the CPU);
        results and gradients are those of the whole sequence either way.
        """
        return TorchModel(graph, RULES.with_overrides(overrides), device=device, dtype=dtype, event_driven=event_driven,
                          chunk_steps=chunk_steps)


__all__ = [
    "TorchBackend",
    "TorchModel",
    "RULES",
    "fit",
    "evaluate",
    "History",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_epochs",
    "TrainingDiverged",
    "mse_count_loss",
    "ce_count_loss",
    "ce_rate_loss",
    "ce_max_membrane_loss",
    "mse_membrane_loss",
    "accuracy_rate",
    "LOSSES",
    "encoders",
    "saved_bytes",
    "keep_freed_memory",
]
