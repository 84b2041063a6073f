"""The torch operations a traced time step may use between modules, and what each becomes in snnir.

==================================================  ==============================================
operation                                            snnir
==================================================  ==============================================
``x.flatten(1)``, ``torch.flatten(x, 1)``            ``Flatten`` (dims shifted past the batch)
``x.view(B, -1)``, ``x.reshape(B, -1)``              ``Flatten`` (when it flattens all but the batch)
``a + b``, ``torch.add(a, b)``, ``a += b``           fan-in: both feed the consumer, summed in order
``x + c``, ``x - c`` right before a LIF/IF/LI         the neuron's ``bias`` (``D = I + b``, ``b = -c``)
``x * c``, ``c * x`` (number or constant tensor)     ``Scale(c)``
``x / c`` (c a power of two, per element)            ``Scale(1/c)`` (exact only for powers of two)
``-x``                                               ``Scale(-1)``
``F.max_pool2d``, ``F.avg_pool2d``                   ``MaxPool2d``, ``AvgPool2d`` / ``SumPool2d``
``x.clone()``, ``.detach()``, ``.contiguous()``...   nothing (the identity; ``.detach()`` warns)
``x[step]`` on a ``sequence`` input                  the input at step ``t``
==================================================  ==============================================

A constant is a Python number, a module buffer or parameter, or a tensor made in forward by a
deterministic factory (``torch.tensor(0.3)``, see :data:`~.tracer.CONSTANT_FACTORIES`). Anything else in
the path from the input to a recorded value raises UnsupportedNodeError naming the operation and the
line. A rule receives the recorded :class:`~.tracer.Call` and returns an :class:`Op`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from snnir.errors import UnsupportedNodeError
from snnir.ir.layers import Flatten, Scale
from snnir.ir.node import Node

from .layers import avg_pool_node, flatten_node, max_pool_node
from .tensors import per_neuron
from .tracer import CONSTANT_FACTORIES, Call, Ref


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
        raise UnsupportedNodeError(f"{call.describe()}: computes a constant in forward; a constant must be {_CONSTANTS} (precompute it as a buffer)")
    shapes = {tuple(args["input"].tensor.shape), tuple(args["other"].tensor.shape)}
    if len(shapes) != 1:
        raise UnsupportedNodeError(
            f"{call.describe()}: adds tensors of shapes {sorted(shapes)}; fan-in needs equal shapes, and a constant must be "
            f"{_CONSTANTS}, not a tensor computed in forward (precompute it as a buffer)"
        )
    return Op("sum", [args["input"], args["other"]])


def _sub(call: Call) -> Op:
    """``x - c`` is ``x + (-c)`` bit for bit (IEEE 754 defines subtraction so), hence a neuron's bias ``-c``."""
    args = bind(call, ("input", "other", "alpha"), {"alpha": 1})
    if args["alpha"] != 1:
        raise UnsupportedNodeError(f"{call.describe()}: sub with alpha={args['alpha']} is not supported")
    if not _signal(args["input"]) and not _signal(args["other"]):
        raise UnsupportedNodeError(f"{call.describe()}: computes a constant in forward; a constant must be {_CONSTANTS} (precompute it as a buffer)")
    if not _signal(args["input"]) or _signal(args["other"]):
        raise UnsupportedNodeError(
            f"{call.describe()}: only a constant may be subtracted from a signal (x - c, a neuron's bias); for a - b "
            "write a + b * -1.0, which float32 computes identically"
        )
    shape = tuple(args["input"].tensor.shape[1:])
    return Op("bias", [args["input"]], bias=-_constant(args["other"], shape, call, "the constant"))


def _neg(call: Call) -> Op:
    return Op("node", [call.args[0]], Scale(np.float32(-1.0)))  # -x == x * -1 exactly


def _mul(call: Call) -> Op:
    args = bind(call, ("input", "other"), {})
    operands = [args["input"], args["other"]]
    signals = [v for v in operands if _signal(v)]
    if len(signals) == 2:
        raise UnsupportedNodeError(
            f"{call.describe()}: multiplies two signals; only a signal times a number or a constant tensor (snnir's Scale) "
            "is supported"
        )
    if not signals:
        raise UnsupportedNodeError(f"{call.describe()}: computes a constant in forward; a constant must be {_CONSTANTS} (precompute it as a buffer)")
    signal = signals[0]
    factor = operands[1] if operands[0] is signal else operands[0]
    return Op("node", [signal], Scale(_constant(factor, tuple(signal.tensor.shape[1:]), call, "the factor")))


def _div(call: Call) -> Op:
    """``x / c`` as ``Scale(1/c)``: equal bit for bit only when ``1/c`` is exact in float32 (c a power of two)."""
    args = bind(call, ("input", "other", "rounding_mode"), {"rounding_mode": None})
    signal, divisor = args["input"], args["other"]
    if args["rounding_mode"] is not None or not _signal(signal) or _signal(divisor):
        raise UnsupportedNodeError(
            f"{call.describe()}: only a signal divided by a constant (x / c, without rounding_mode) is supported"
        )
    divisor = _constant(divisor, tuple(signal.tensor.shape[1:]), call, "the divisor")
    with np.errstate(divide="ignore", over="ignore"):
        reciprocal = np.float32(1.0) / divisor
    exact = np.all(np.isfinite(reciprocal)) and np.all(reciprocal.astype(np.float64) * divisor.astype(np.float64) == 1.0)
    if not exact:
        raise UnsupportedNodeError(
            f"{call.describe()}: divides by {divisor if divisor.size <= 4 else 'a constant tensor'}; snnir scales by "
            "multiplication (Scale), and x * (1/c) rounds differently from x / c unless c is a power of two. "
            "Write x * (1/c) in the model (its results change in the last bit) to convert it"
        )
    return Op("node", [signal], Scale(reciprocal))


def _pool(make: Callable, names: tuple[str, ...]) -> Callable[[Call], Op]:
    """The rule of a functional pool: ``make(where, **options)`` from the layer rules, so options snnir lacks are
    refused as for the module form."""

    def rule(call: Call) -> Op:
        args = bind(call, ("input", *names), {})
        source = args.pop("input")
        if not _signal(source):
            raise UnsupportedNodeError(f"{call.describe()}: pools a constant")
        return Op("node", [source], make(call.describe(), **args))

    return rule


_max_pool = _pool(max_pool_node, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"))
_avg_pool = _pool(avg_pool_node, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"))


def _constant(value: Any, shape: tuple, call: Call, what: str) -> np.ndarray:
    """A number or constant tensor as a scalar or per-element float32 array for a signal of ``shape``."""
    if isinstance(value, Ref):
        return per_neuron(value.tensor, shape, f"{call.describe()}: {what}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.float32(value)
    raise UnsupportedNodeError(f"{call.describe()}: {what} {value!r} is not a number or a tensor")


#: what a constant operand may be, for messages
_CONSTANTS = ("a Python number, a module buffer or parameter, or a tensor made in forward by torch."
              + ", ".join(sorted(factory.__name__ for factory in CONSTANT_FACTORIES)))


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
    torch.Tensor.squeeze: _reshape,
    torch.Tensor.unsqueeze: _reshape,
    torch.Tensor.add: _add,
    torch.Tensor.add_: _add,
    torch.add: _add,
    torch.Tensor.sub: _sub,
    torch.Tensor.sub_: _sub,
    torch.sub: _sub,
    torch.Tensor.mul: _mul,
    torch.Tensor.mul_: _mul,
    torch.mul: _mul,
    torch.Tensor.div: _div,
    torch.Tensor.div_: _div,
    torch.div: _div,
    torch.Tensor.neg: _neg,
    torch.Tensor.neg_: _neg,
    torch.neg: _neg,
    F.max_pool2d: _max_pool,
    F.avg_pool2d: _avg_pool,
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
            "flatten, view/reshape to (B, -1), +, - and * by a constant, / by a power of two, unary -, "
            "torch.nn.functional.max_pool2d/avg_pool2d, clone/detach/contiguous, and x[step]"
        )
    return rule(call)


__all__ = ["Op", "FUNCTIONS", "function_op", "bind"]
