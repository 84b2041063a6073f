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


def _positive_steps(num_steps: Any) -> int:
    """``num_steps`` as an int, refusing what snnir's runs refuse (``run(x, num_steps=...)``)."""
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise InputError(f"num_steps must be a positive integer, found {num_steps!r}")
    return int(num_steps)


def _first_steps(tensors: list[torch.Tensor], encodings: dict[str, str], num_steps: int) -> list[torch.Tensor]:
    """The inputs (``encodings``: name -> encoding, in order) with every sequence cut to its first ``num_steps``
    steps, as snnir's runs do; a shorter sequence is refused."""
    pairs = list(zip(tensors, encodings.items()))
    short = [
        f"sequence input {name!r} holds {t.shape[0]} steps" for t, (name, e) in pairs if e == "sequence" and t.shape[0] < num_steps
    ]
    if short:
        raise InputError(f"num_steps={num_steps}, but {', '.join(short)}")
    return [t[:num_steps] if e == "sequence" else t for t, (_, e) in pairs]


@contextmanager
def _loop_steps(module: nn.Module, num_steps: int | None) -> Iterator[None]:
    """Inside: a time-loop module runs ``num_steps`` steps on direct inputs (its ``num_steps`` is put back after);
    with sequence inputs it runs as many steps as they hold, which :func:`_first_steps` has already cut."""
    saved = module.num_steps
    module.num_steps = saved if num_steps is None else num_steps
    try:
        yield
    finally:
        module.num_steps = saved


def _run_loop(module: nn.Module, tensors: list[torch.Tensor], num_steps: int | None) -> dict[str, torch.Tensor]:
    """:func:`simulate` for a time-loop module: its own forward, over ``num_steps`` steps when given."""
    encodings = module.snnir_spec["encoding"]
    if len(tensors) != len(encodings):
        raise InputError(f"the module takes {len(encodings)} inputs {list(encodings)}, found {len(tensors)}")
    if num_steps is not None:
        tensors = _first_steps(tensors, encodings, num_steps)
    with fresh_states(module), _loop_steps(module, num_steps):
        returned = module(*tensors)
    if isinstance(returned, torch.Tensor):
        returned = (returned,)
    elif isinstance(returned, dict):
        returned = tuple(returned.values())
    return dict(zip(module.output_names, returned))


def _run_sequential(module: nn.Module, tensors: list[torch.Tensor], num_steps: int | None) -> dict[str, torch.Tensor]:
    """:func:`simulate` for an ``nn.Sequential``: stepped once per step, like the snnTorch tutorials do."""
    spec = module.snnir_spec
    if len(tensors) != 1:
        raise InputError(f"an nn.Sequential takes one input, found {len(tensors)}")
    x = tensors[0]
    if num_steps is not None:
        (x,) = _first_steps([x], {spec["input"]: spec["encoding"]}, num_steps)
    if spec["encoding"] == "sequence":
        steps = int(x.shape[0])
        if not steps:
            raise InputError("the sequence input holds zero steps")
    else:
        steps = spec["num_steps"] if num_steps is None else num_steps
    with fresh_states(module):
        stacked = stack_steps(step_sequential(module, x, steps, spec["encoding"]))
    return {name: stacked[index] for name, index in spec["outputs"].items()}


def simulate(module: nn.Module, *inputs: Any, num_steps: int | None = None) -> dict[str, torch.Tensor]:
    """Run a module made by :func:`~snnir.frontends.snntorch.to_snntorch` and name its outputs.

    Both forms run from fresh states, in eval mode, for as many steps as ``snnir.compile(graph, ...).run(x,
    num_steps=num_steps)``: ``num_steps`` if given (the first ``num_steps`` steps of sequence inputs, which must
    hold that many), else the length ``T`` of the sequence inputs, else the graph's ``num_steps``. A time-loop
    module runs its own forward; an ``nn.Sequential`` is stepped with the same input (``direct``) or ``x[t]``
    (``sequence``). Returns ``{output_name: tensor [T, B, ...]}``.

    Raises:
        InputError: a module not made by ``to_snntorch``, the wrong number of inputs, ``num_steps`` not a
            positive integer or longer than a sequence input.
    """
    spec = getattr(module, "snnir_spec", None)
    if spec is None:
        raise InputError("simulate() runs modules made by to_snntorch (they carry an snnir_spec attribute)")
    steps = None if num_steps is None else _positive_steps(num_steps)
    device = module_device(module)
    tensors = [_as_tensor(x, device) for x in inputs]
    if spec["form"] == "loop":
        return _run_loop(module, tensors, steps)
    return _run_sequential(module, tensors, steps)


__all__ = ["fresh_states", "simulate", "module_device", "step_sequential", "stack_steps"]
