"""``from_snntorch``: dispatch to the Sequential walker or the loop tracer, then check the result.

The check runs the converted graph on snnir's reference interpreter with the probe input and compares
every recorded output with what snnTorch computed for the same input. It is the guarantee against a
silent gap: a model that converts without error computes what the snnTorch model computes.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from snnir.errors import GraphError, ShapeError, add_note
from snnir.ir.graph import Graph, TimeSpec
from snnir.ir.io import ENCODINGS

from .assemble import Returned
from .running import fresh_states, module_device
from .sequential import convert_sequential, walk
from .traced import convert_traced

#: snnTorch buffer holding each recorded state variable
_STATE_BUFFERS = {"membrane": "mem", "current": "syn"}

#: Tolerances of the check (docs/semantics.md's contract for general float32 graphs): values within 1e-4, and at
#: most one element in a thousand off (a spike flipped by a last-bit difference of a membrane).
ATOL = RTOL = 1e-4
MAX_MISMATCH = 1e-3


def _is_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _input_shape(value: Any) -> tuple[int, ...]:
    shape = (value,) if isinstance(value, numbers.Integral) else tuple(value)
    if not shape or not all(isinstance(n, numbers.Integral) and n >= 1 for n in shape):
        raise GraphError(f"input_shape must be positive ints without the batch axis (e.g. (1, 28, 28)), found {value!r}")
    return tuple(int(n) for n in shape)


def make_probe(input_shape: tuple, time: TimeSpec, encoding: str, batch_size: int, seed: int, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) data (images, rates) of the shape the module expects."""
    generator = torch.Generator().manual_seed(seed)
    leading = (batch_size,) if encoding == "direct" else (time.num_steps, batch_size)
    return torch.rand((*leading, *input_shape), generator=generator).to(device)


def _sequential_returns(graph: Graph, module: nn.Sequential, probe: torch.Tensor, time: TimeSpec, encoding: str) -> list[Returned]:
    """What snnTorch computes for each graph output: the last layer's result and, for a neuron, its state
    buffers (``mem``, ``syn``), which hold the same values whether or not it was built with ``output=True``."""
    last = [m for _, m in walk(module) if not isinstance(m, nn.Identity)][-1]  # the graph's last node
    records = {name: graph.nodes[name].record for name in graph.outputs}
    steps: dict[str, list[torch.Tensor]] = {name: [] for name in records}
    with fresh_states(module):
        for step in range(time.num_steps):
            result = module(probe if encoding == "direct" else probe[step])
            value = result[0] if isinstance(result, tuple) else result
            for name, record in records.items():
                steps[name].append(value if record in ("value", "spikes") else getattr(last, _STATE_BUFFERS[record]))
    return [Returned(name, False, torch.stack(values)) for name, values in steps.items()]


def check_conversion(graph: Graph, probe: torch.Tensor, returned: Iterable[Returned]) -> dict[str, float]:
    """Run ``graph`` on the reference backend with ``probe``; raise GraphError unless every output agrees.

    Returns the fraction of mismatching elements per output (0.0 when identical).
    """
    from snnir.compiler import compile as compile_graph

    result = compile_graph(graph, "reference").run(probe.detach().cpu().numpy())
    report = {}
    for item in returned:
        found = result[item.output][-1] if item.last_step else result[item.output]
        expected = item.tensor.detach().cpu().numpy()
        if found.shape != expected.shape:
            raise GraphError(f"conversion check: output {item.output!r} has shape {found.shape}, snnTorch returned {expected.shape}")
        wrong = ~np.isclose(found, expected, atol=ATOL, rtol=RTOL)
        report[item.output] = float(wrong.mean()) if wrong.size else 0.0
        if report[item.output] > MAX_MISMATCH:
            index = tuple(int(i) for i in np.argwhere(wrong)[0])
            raise GraphError(
                f"conversion check failed: output {item.output!r} differs from snnTorch in {int(wrong.sum())} of {wrong.size} "
                f"values (first at {index}: snnir {found[index]!r}, snnTorch {expected[index]!r}); this is a converter bug "
                "or a module feature snnir misses, please report it"
            )
    return report


def from_snntorch(
    module: nn.Module,
    input_shape: Iterable[int] | int,
    num_steps: int,
    *,
    dt: float = 1e-3,
    encoding: str = "direct",
    name: str | None = None,
    batch_size: int = 2,
    seed: int = 0,
    check: bool = True,
) -> Graph:
    """Convert an snnTorch model into an snnir graph with the same dynamics.

    Args:
        module: an ``nn.Sequential`` of torch layers and ``init_hidden=True`` snnTorch neurons, stepped once
            per time step; or any ``nn.Module`` whose forward runs its own time loop (like the snnTorch
            quickstart's ``Net``), traced on a probe input (see docs/frontend-snntorch.md).
        input_shape: one sample's shape, without batch (and time), e.g. ``(1, 28, 28)``.
        num_steps: the number of steps; for a time-loop module, the length of its loop.
        dt: seconds per step (metadata for continuous-time conversions).
        encoding: ``"direct"`` (the same input every step) or ``"sequence"`` (input ``[T, B, ...]``).
        name: the graph's name (default: the module's class name).
        batch_size, seed: the probe input used for tracing and for the check (uniform [0, 1)).
        check: run the graph on the reference backend and compare with snnTorch (recommended).

    Returns:
        A materialised, validated graph. A Sequential records its last layer (``spikes``, ``membrane``,
        ``current`` for Synaptic, or ``output``); a time-loop module records what its forward returns plus
        the last neuron's spikes and membrane. ``graph.metadata["snntorch"]`` keeps the module paths.

    Raises:
        UnsupportedNodeError: a module, operation or option with no snnir equivalent (named in the message).
        GraphError: a model whose steps cannot be folded, or a failed check.
    """
    if encoding not in ENCODINGS:
        raise GraphError(f"encoding must be one of {list(ENCODINGS)}, found {encoding!r}")
    if not isinstance(module, nn.Module):
        raise GraphError(f"from_snntorch expects a torch nn.Module, found {type(module).__name__}")
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise GraphError(f"batch_size must be a positive int, found {batch_size!r}")
    shape = _input_shape(input_shape)
    time = TimeSpec(num_steps, dt)
    name = name or type(module).__name__.lower()
    probe = make_probe(shape, time, encoding, int(batch_size), seed, module_device(module))
    try:
        if _is_sequential(module):
            graph = convert_sequential(module, shape, time.num_steps, time.dt, encoding, name)
            returned = _sequential_returns(graph, module, probe, time, encoding) if check else []
        else:
            graph, returned = convert_traced(module, probe, shape, time, encoding, name)
    except ShapeError as error:
        if len(shape) > 1:  # a common slip: the batch axis included in input_shape
            add_note(error, f"input_shape={shape} is the shape of one sample, without the batch axis")
        raise
    if check:
        check_conversion(graph, probe, returned)
    return graph


__all__ = ["from_snntorch", "check_conversion", "make_probe"]
