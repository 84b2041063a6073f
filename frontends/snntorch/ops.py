"""The torch operations a traced time step may use between modules, and what each becomes in snnir.

==================================================  ==============================================
operation                                            snnir
==================================================  ==============================================
``x.flatten(1)``, ``torch.flatten(x, 1)``            ``Flatten`` (dims shifted past the batch)
``x.view(B, -1)``, ``x.reshape(B, -1)``              ``Flatten`` (when it flattens all but the batch)
``a + b``, ``torch.add(a, b)``, ``a += b``           fan-in: both feed the consumer, summed in order
``x + c`` (constant) right before a LIF/IF/LI        the neuron's ``bias`` (``D = I + b``)
``x * c``, ``c * x`` (number or constant tensor)     ``Scale(c)``
``x.clone()``, ``.detach()``, ``.contiguous()``...   nothing (the identity)
``x[step]`` on a ``sequence`` input                  the input at step ``t``
==================================================  ==============================================

Anything else in the path from the input to a recorded value raises UnsupportedNodeError naming the
operation and the line. A rule receives the recorded :class:`~.tracer.Call` and returns an :class:`Op`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from snnir.errors import UnsupportedNodeError
from snnir.ir.layers import Flatten, Scale
from snnir.ir.node import Node

from .layers import flatten_node
from .tensors import per_neuron
from .tracer import Call, Ref


@dataclass
class Op:
    """What one recorded call becomes.

    ``kind``: ``"node"`` (a stateless snnir node fed by the sum of ``inputs``), ``"neuron"`` (``node`` plus an
    optional ``recurrent`` synapse), ``"alias"`` (the value of ``inputs[0]``), ``"sum"`` (the values of
    ``inputs`` summed in order), ``"bias"`` (``inputs[0]`` plus the constant ``bias``: only a LIF/IF/LI neuron may
    take it, as its constant drive) or ``"sequence"`` (the input tensor of the current step).
    ``outputs`` names what each output of the call is (``"value"``, ``"membrane"``, ``"current"``).
    """

    kind: str
    inputs: list[Ref] = field(default_factory=list)
    node: Node | None = None
    recurrent: Node | None = None
    outputs: tuple[str, ...] = ("value",)
    bias: np.ndarray | None = None


def bind(call: Call, names: tuple[str, ...], defaults: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a recorded call by name (positional ones in the order of ``names``)."""
    bound = dict(defaults)
    bound.update(zip(names, call.args))
    for key, value in call.kwargs.items():
        if key not in names:
            raise UnsupportedNodeError(f"{call.describe()}: argument {key}={value!r} is not supported")
        bound[key] = value
    return bound


def _signal(value: Any) -> bool:
    """A tensor computed from the input (not a constant)."""
    return isinstance(value, Ref) and value.source != "const"


def _flatten(call: Call) -> Op:
    args = bind(call, ("input", "start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1})
    return Op("node", [args["input"]], flatten_node(args["start_dim"], args["end_dim"], call.describe()))


def _reshape(call: Call) -> Op:
    source, result = call.args[0], call.outputs[0]
    before = tuple(source.tensor.shape)
    after = tuple(result.shape)
    if after == before:
        return Op("alias", [source])
    if len(after) == 2 and after[0] == before[0]:
        return Op("node", [source], Flatten())
    raise UnsupportedNodeError(
        f"{call.describe()}: reshapes {before} to {after}; only flattening everything but the batch axis "
        "(x.view(x.shape[0], -1)) has an snnir equivalent"
    )


def _add(call: Call) -> Op:
    args = bind(call, ("input", "other", "alpha"), {"alpha": 1})
    if args["alpha"] != 1:
        raise UnsupportedNodeError(f"{call.describe()}: add with alpha={args['alpha']} is not supported")
    signals = [v for v in (args["input"], args["other"]) if _signal(v)]
    if len(signals) == 1:  # a constant drive: valid only right before a LIF/IF/LI neuron (its bias)
        constant = args["other"] if signals[0] is args["input"] else args["input"]
        shape = tuple(signals[0].tensor.shape[1:])
        return Op("bias", signals, bias=_constant(constant, shape, call, "the constant"))
    if not signals:
        raise UnsupportedNodeError(f"{call.describe()}: adds two constants")
    shapes = {tuple(args["input"].tensor.shape), tuple(args["other"].tensor.shape)}
    if len(shapes) != 1:
        raise UnsupportedNodeError(f"{call.describe()}: adds tensors of shapes {sorted(shapes)}; fan-in needs equal shapes")
    return Op("sum", [args["input"], args["other"]])


def _mul(call: Call) -> Op:
    args = bind(call, ("input", "other"), {})
    operands = [args["input"], args["other"]]
    signals = [v for v in operands if _signal(v)]
    if len(signals) != 1:
        raise UnsupportedNodeError(
            f"{call.describe()}: multiplies {'two signals' if len(signals) == 2 else 'constants'}; only a signal "
            "times a number or a constant tensor (snnir's Scale) is supported"
        )
    signal = signals[0]
    factor = operands[1] if operands[0] is signal else operands[0]
    return Op("node", [signal], Scale(_constant(factor, tuple(signal.tensor.shape[1:]), call, "the factor")))


def _constant(value: Any, shape: tuple, call: Call, what: str) -> np.ndarray:
    """A number or constant tensor as a scalar or per-element float32 array for a signal of ``shape``."""
    if isinstance(value, Ref):
        return per_neuron(value.tensor, shape, f"{call.describe()}: {what}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.float32(value)
    raise UnsupportedNodeError(f"{call.describe()}: {what} {value!r} is not a number or a tensor")


def _identity(call: Call) -> Op:
    source, result = call.args[0], call.outputs[0]
    if result.dtype != torch.float32 or result.shape != source.tensor.shape:
        raise UnsupportedNodeError(f"{call.describe()}: changes the tensor to {result.dtype} {tuple(result.shape)}")
    return Op("alias", [source])


def _select(call: Call) -> Op:
    source, index = call.args[0], call.args[1]
    if isinstance(source, Ref) and source.source == "input" and isinstance(index, int) and not isinstance(index, bool):
        return Op("sequence")
    raise UnsupportedNodeError(
        f"{call.describe()}: indexing is supported only as x[step] on a sequence input "
        "(time first: [T, B, ...], with encoding='sequence')"
    )


FUNCTIONS: dict[Callable, Callable[[Call], Op]] = {
    torch.Tensor.flatten: _flatten,
    torch.flatten: _flatten,
    torch.Tensor.view: _reshape,
    torch.Tensor.reshape: _reshape,
    torch.reshape: _reshape,
    torch.Tensor.add: _add,
    torch.Tensor.add_: _add,
    torch.add: _add,
    torch.Tensor.mul: _mul,
    torch.Tensor.mul_: _mul,
    torch.mul: _mul,
    torch.Tensor.clone: _identity,
    torch.Tensor.detach: _identity,
    torch.Tensor.contiguous: _identity,
    torch.Tensor.float: _identity,
    torch.Tensor.to: _identity,
    torch.Tensor.__getitem__: _select,
}


def function_op(call: Call) -> Op:
    """The Op of a recorded torch function call; raises UnsupportedNodeError for anything unknown."""
    rule = FUNCTIONS.get(call.target)
    if rule is None:
        raise UnsupportedNodeError(
            f"{call.describe()}: this operation has no snnir equivalent; between modules a traced step may use "
            "flatten, view/reshape to (B, -1), +, * by a constant, clone/detach/contiguous, and x[step]"
        )
    return rule(call)


__all__ = ["Op", "FUNCTIONS", "function_op", "bind"]
