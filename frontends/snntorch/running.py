"""Running snnTorch modules over time: fresh neuron states, and the ``simulate`` helper.

snnTorch neurons keep their state in buffers that persist between calls (``init_hidden=True``, or a
neuron called without its state arguments). Converting a model must not disturb the user's model, so
every run here starts from fresh states and puts the old ones (and the train/eval flags) back after.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from snnir.errors import InputError

from .neurons import is_snntorch_neuron

_MISSING = object()


@contextmanager
def fresh_states(root: nn.Module, *, evaluate: bool = True) -> Iterator[None]:
    """Inside: every snnTorch neuron of ``root`` starts from zero state, gradients are off and (with
    ``evaluate``) the model is in eval mode. On exit the neurons' previous states and the train/eval
    flags are restored."""
    neurons = [m for m in root.modules() if is_snntorch_neuron(m)]
    saved = [(m, dict(m._buffers), m.__dict__.get("reset", _MISSING)) for m in neurons]
    modes = [(m, m.training) for m in root.modules()]
    try:
        for module in neurons:
            for name in module._non_persistent_buffers_set:
                old = module._buffers.get(name)
                # An empty state makes snnTorch start from zeros of the input's shape (its own reset_mem()).
                module._buffers[name] = torch.zeros(0, device=old.device if old is not None else None)
        if evaluate:
            root.eval()
        with torch.no_grad():
            yield
    finally:
        for module, buffers, reset in saved:
            module._buffers.clear()
            module._buffers.update(buffers)
            if reset is _MISSING:
                module.__dict__.pop("reset", None)
            else:
                module.__dict__["reset"] = reset
        for module, training in modes:
            module.training = training


def _as_tensor(x: Any, device: torch.device | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


def module_device(module: nn.Module) -> torch.device:
    """Where the module's parameters (or buffers) live; CPU for a module without any."""
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


def step_sequential(module: nn.Module, x: torch.Tensor, num_steps: int, encoding: str) -> list[Any]:
    """The per-step results of an ``nn.Sequential`` of init_hidden neurons (the caller manages states)."""
    results = []
    for step in range(num_steps):
        results.append(module(x if encoding == "direct" else x[step]))
    return results


def stack_steps(results: list[Any]) -> tuple[torch.Tensor, ...]:
    """Stack per-step results (tensors or tuples of tensors) into ``[T, B, ...]`` tensors."""
    if isinstance(results[0], torch.Tensor):
        return (torch.stack(results),)
    return tuple(torch.stack([r[i] for r in results]) for i in range(len(results[0])))


def _sequential_steps(spec: dict, x: torch.Tensor, num_steps: int | None) -> int:
    """How many steps to run: ``num_steps``, else the sequence's length (as snnir's runs do), else the graph's."""
    if spec["encoding"] != "sequence":
        return spec["num_steps"] if num_steps is None else num_steps
    if num_steps is None:
        return int(x.shape[0])
    if num_steps > x.shape[0]:
        raise InputError(f"num_steps={num_steps}, but the sequence input holds {x.shape[0]} steps")
    return num_steps


def simulate(module: nn.Module, *inputs: Any, num_steps: int | None = None) -> dict[str, torch.Tensor]:
    """Run a module made by :func:`~snnir.frontends.snntorch.to_snntorch` and name its outputs.

    A time-loop module is simply called (a sequence input sets the number of steps); an ``nn.Sequential`` is
    stepped ``num_steps`` times (default: the graph's, or the length ``T`` of a sequence input) with the same
    input (``direct``) or ``x[t]`` (``sequence``), from fresh states, in eval mode.
    Returns ``{output_name: tensor [T, B, ...]}`` like ``snnir.compile(graph, ...).run(x)``.
    """
    spec = getattr(module, "snnir_spec", None)
    if spec is None:
        raise InputError("simulate() runs modules made by to_snntorch (they carry an snnir_spec attribute)")
    device = module_device(module)
    tensors = [_as_tensor(x, device) for x in inputs]
    if spec["form"] == "loop":
        with fresh_states(module):
            returned = module(*tensors)
        if isinstance(returned, torch.Tensor):
            returned = (returned,)
        elif isinstance(returned, dict):
            returned = tuple(returned.values())
        return dict(zip(module.output_names, returned))
    if len(tensors) != 1:
        raise InputError(f"an nn.Sequential takes one input, found {len(tensors)}")
    steps = _sequential_steps(spec, tensors[0], num_steps)
    with fresh_states(module):
        stacked = stack_steps(step_sequential(module, tensors[0], steps, spec["encoding"]))
    return {name: stacked[index] for name, index in spec["outputs"].items()}


__all__ = ["fresh_states", "simulate", "module_device", "step_sequential", "stack_steps"]
