"""Lowered stateless nodes: modules that map a batch ``[N, *in_shape]`` to ``[N, *out_shape]``.

The model calls them on the folded ``[T·B, ...]`` batch of a whole sequence, once on ``[B, ...]`` for
hoisted (time-invariant) nodes, or per step inside recurrent groups. Each layer also writes its
(possibly trained) parameters back into an IR node with :meth:`to_node`.

Protocol shared with the neuron layers (and with user rules passed as ``overrides``): an
``nn.Module`` with ``stateful = False``, ``forward(x)`` on a batch, and ``to_node(node) -> Node``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snnir.errors import UnsupportedNodeError
from snnir.ir.node import Node

from .events import event_linear, spike_grad_linear
from .pooling import max_pool2d
from .surrogates import spike, surrogate_backward


def tensor(array: np.ndarray) -> torch.Tensor:
    """A float32 torch copy of a node's (read-only) parameter array."""
    return torch.tensor(np.asarray(array, dtype=np.float32))


def register(module: nn.Module, name: str, array: np.ndarray | None, trainable: bool) -> None:
    """Add ``array`` to ``module`` as a Parameter (trainable) or a buffer; ``None`` registers an empty slot."""
    if array is None:
        module.register_parameter(name, None) if trainable else module.register_buffer(name, None)
    elif trainable:
        module.register_parameter(name, nn.Parameter(tensor(array)))
    else:
        module.register_buffer(name, tensor(array))


def to_array(value: torch.Tensor | None) -> np.ndarray | None:
    """float32 numpy copy of a parameter (rounded if the model runs in float64)."""
    return None if value is None else value.detach().to("cpu", torch.float32).numpy().copy()


def unchanged_node(module: nn.Module, node: Node) -> Node:
    """The default ``to_node`` of a module without trainable parameters: ``node`` as it is. A module with
    some must write them back itself; returning ``node`` would drop their training without a word."""
    trained = [name for name, parameter in module.named_parameters() if parameter.requires_grad]
    if trained:
        raise UnsupportedNodeError(
            f"{type(module).__name__} has trainable parameters ({', '.join(trained)}) but no to_node(node) to write "
            f"them back into the {node.kind} node; define it (e.g. node.replace(field=layers.to_array(self.field)))"
        )
    return node


class Stateless(nn.Module):
    """Base of the stateless layers; ``to_node`` returns the node unchanged unless overridden (and
    refuses to when the module has trainable parameters: :func:`unchanged_node`)."""

    stateful = False
    #: Whether ``forward`` reads ``self.training`` (inference then switches the module to eval mode).
    uses_training_mode = False

    def to_node(self, node: Node) -> Node:
        return unchanged_node(self, node)


#: Linear layers with at least this many outputs work from the events of a binary, sparse input on
#: the CPU (by default: the weight gradient always, the forward pass where it matches the GEMM bit
#: for bit); narrower ones keep the GEMM, which is cheaper there than scanning the input.
EVENT_MIN_OUTPUTS = 128


class Linear(Stateless):
    """``y = x Wᵀ + b`` (``F.linear``).

    ``events`` (set by the model for a Linear fed by a ``sequence`` input or a spiking layer):
    :data:`.events.EXACT` sums the weight columns of a binary, sparse input's events where that gives
    the GEMM's result bit for bit (:mod:`.events`); :data:`.events.ALWAYS` does so in any case. The
    dense path is ``F.linear``; on the CPU a wide layer then computes its weight gradient from the
    input's events when the input is binary and sparse (:func:`.events.spike_grad_linear`: same
    values, different summation order of the gradient).
    """

    def __init__(self, node):
        super().__init__()
        register(self, "weight", node.weight, True)
        register(self, "bias", node.bias, True)
        self.events: str | None = None
    def forward(self, x):
        if self.events is not None and x.dim() == 2:
            y = event_linear(x, self.weight, self.bias, self.events)
            if y is not None:
                return y
        if (x.dim() == 2 and x.device.type == "cpu" and self.weight.shape[0] >= EVENT_MIN_OUTPUTS
                and self.weight.requires_grad and torch.is_grad_enabled()):
            return spike_grad_linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)

    def to_node(self, node):
        return node.replace(weight=to_array(self.weight), bias=to_array(self.bias))


class Conv(Stateless):
    """``F.conv1d``/``F.conv2d`` with the node's stride, padding, dilation and groups."""

    def __init__(self, node):
        super().__init__()
        register(self, "weight", node.weight, True)
        register(self, "bias", node.bias, True)
        self.function = F.conv1d if node.spatial_dims == 1 else F.conv2d
        self.options = dict(stride=node.stride, padding=node.padding, dilation=node.dilation, groups=node.groups)

    def forward(self, x):
        return self.function(x, self.weight, self.bias, **self.options)

    def to_node(self, node):
        return node.replace(weight=to_array(self.weight), bias=to_array(self.bias))


class MaxPool(Stateless):
    """Window maximum; padded positions never win; the gradient goes to the first maximum (as PyTorch)."""

    def __init__(self, node):
        super().__init__()
        self.kernel, self.stride, self.padding = node.kernel_size, node.stride, node.padding

    def forward(self, x):
        return max_pool2d(x, self.kernel, self.stride, self.padding)


class AvgPool(Stateless):
    """Window sum divided by ``kh·kw`` (padding counted), or the plain sum for SumPool2d."""

    def __init__(self, node, divisor: int | None):
        super().__init__()
        self.options = dict(kernel_size=node.kernel_size, stride=node.stride, padding=node.padding,
                            count_include_pad=True, divisor_override=divisor)

    def forward(self, x):
        return F.avg_pool2d(x, **self.options)


class Reshape(Stateless):
    """Flatten: a view to the node's output shape."""

    def __init__(self, output_shape):
        super().__init__()
        self.shape = tuple(output_shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Scale(Stateless):
    """Element-wise gain ``y = s ⊙ x`` (a Parameter if the node's ``learn_factor`` is set, else a buffer)."""

    def __init__(self, node):
        super().__init__()
        register(self, "factor", node.factor, node.learn_factor)

    def forward(self, x):
        return x * self.factor

    def to_node(self, node):
        return node.replace(factor=to_array(self.factor)) if node.learn_factor else node


class Dropout(Stateless):
    """``nn.Dropout`` semantics while training (a fresh mask per step on the folded batch); identity otherwise."""

    training_only = True
    uses_training_mode = True

    def __init__(self, node):
        super().__init__()
        self.p = node.p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class Threshold(Stateless):
    """Stateless spike ``H(x − θ)`` with the node's surrogate gradient."""

    def __init__(self, node):
        super().__init__()
        register(self, "threshold", node.threshold, False)
        self.surrogate = surrogate_backward(node.surrogate)

    def forward(self, x):
        return spike(x - self.threshold, self.surrogate)


__all__ = ["Stateless", "Linear", "Conv", "MaxPool", "AvgPool", "Reshape", "Scale", "Dropout", "Threshold", "register", "to_array", "tensor",
           "unchanged_node"]
