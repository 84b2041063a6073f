"""Stateless torch layers <-> snnir nodes, one small rule per kind in each direction.

Shapes: torch layers see ``[B, ...]``; snnir shapes exclude the batch, so a torch ``Flatten(start_dim=1)``
is snnir's ``Flatten(start_dim=0)``. Every option whose semantics snnir does not share (ceil mode,
dilated pooling, circular padding...) raises :class:`~snnir.errors.UnsupportedNodeError` naming it.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from snnir.errors import UnsupportedNodeError
from snnir.ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from snnir.ir.node import Node, Shape
from snnir.lowering import LoweringTable

from . import modules
from .surrogates import identify_surrogate, make_spike_grad
from .tensors import to_numpy, to_tensor

#: rule(module, input_shape, where) -> snnir node, or None for the identity
ImportRule = Callable[[nn.Module, Shape, str], "Node | None"]


class ModuleTable:
    """Import rules keyed by torch module class.

    A subclass is accepted only if it keeps its base's ``forward`` (a subclass that overrides it computes
    something else, which the rule cannot see).
    """

    def __init__(self) -> None:
        self._rules: dict[type, Callable] = {}

    def register(self, *classes: type) -> Callable[[Callable], Callable]:
        def decorate(rule: Callable) -> Callable:
            for cls in classes:
                self._rules[cls] = rule
            return rule

        return decorate

    def find(self, module: Any) -> Callable | None:
        for cls in type(module).__mro__:
            if cls in self._rules:
                return self._rules[cls] if type(module).forward is cls.forward else None
        return None

    def names(self) -> list[str]:
        return sorted(f"{cls.__module__.split('.')[0]}.{cls.__name__}" for cls in self._rules)


LAYERS = ModuleTable()
EXPORTS = LoweringTable("snntorch")


def flatten_node(start_dim: int, end_dim: int, where: str) -> Flatten:
    """snnir's Flatten for torch's ``flatten(start_dim, end_dim)`` on a batched tensor."""
    if start_dim == 0 or end_dim == 0:
        raise UnsupportedNodeError(f"{where}: flatten(start_dim={start_dim}, end_dim={end_dim}) merges the batch axis")
    return Flatten(start_dim=start_dim - 1 if start_dim > 0 else start_dim, end_dim=end_dim - 1 if end_dim > 0 else end_dim)


def _pair(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _bias(module: nn.Module, where: str) -> Any:
    return None if module.bias is None else to_numpy(module.bias, f"{where}.bias")


@LAYERS.register(nn.Linear)
def _import_linear(module: nn.Linear, shape: Shape, where: str) -> Node:
    return Linear(weight=to_numpy(module.weight, f"{where}.weight"), bias=_bias(module, where))


def _conv_padding(module: nn.Conv1d | nn.Conv2d, where: str) -> tuple[int, ...]:
    """The symmetric padding per axis; ``"same"`` is resolved here so that a refusal names the module."""
    if not isinstance(module.padding, str):
        return tuple(module.padding)
    if module.padding == "valid":
        return (0,) * len(module.kernel_size)
    total = [d * (k - 1) for k, d in zip(module.kernel_size, module.dilation)]
    if any(t % 2 for t in total):  # torch puts the odd zero at the end; snnir pads both sides alike
        raise UnsupportedNodeError(
            f"{where}: padding='same' with kernel_size={tuple(module.kernel_size)} and dilation={tuple(module.dilation)} "
            "needs one more zero after the input than before it, but snnir convolutions pad symmetrically; use an odd "
            "kernel_size (or an even dilation) for 'same', or an integer padding (which changes the output size)"
        )
    return tuple(t // 2 for t in total)


@LAYERS.register(nn.Conv1d, nn.Conv2d)
def _import_conv(module: nn.Conv1d | nn.Conv2d, shape: Shape, where: str) -> Node:
    padding = _conv_padding(module, where)
    if module.padding_mode != "zeros" and any(padding):  # without padding the mode changes nothing
        raise UnsupportedNodeError(f"{where}: padding_mode={module.padding_mode!r}; snnir convolutions pad with zeros only")
    kind = Conv1d if isinstance(module, nn.Conv1d) else Conv2d
    return kind(
        weight=to_numpy(module.weight, f"{where}.weight"),
        bias=_bias(module, where),
        stride=tuple(module.stride),
        padding=padding,
        dilation=tuple(module.dilation),
        groups=module.groups,
    )


def _pool_options(where: str, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool) -> dict[str, Any]:
    if ceil_mode:
        raise UnsupportedNodeError(f"{where}: ceil_mode=True; snnir pools round the output size down")
    return {"kernel_size": kernel_size, "stride": stride or kernel_size, "padding": padding}  # stride None or []


def max_pool_node(
    where: str, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False,
    return_indices: bool = False,
) -> Node:
    """snnir's MaxPool2d for ``nn.MaxPool2d`` or ``F.max_pool2d`` with these arguments; other semantics are refused."""
    if return_indices:
        raise UnsupportedNodeError(f"{where}: return_indices=True has no snnir equivalent")
    if set(_pair(dilation)) != {1}:
        raise UnsupportedNodeError(f"{where}: dilation={dilation}; snnir max pooling is not dilated")
    return MaxPool2d(**_pool_options(where, kernel_size, stride, padding, ceil_mode))


def avg_pool_node(
    where: str, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
    count_include_pad: bool = True, divisor_override: Any = None,
) -> Node:
    """snnir's AvgPool2d (or SumPool2d for ``divisor_override=1``) for ``nn.AvgPool2d`` or ``F.avg_pool2d``."""
    options = _pool_options(where, kernel_size, stride, padding, ceil_mode)
    if divisor_override == 1:
        return SumPool2d(**options)  # the window sum, as to_snntorch writes snnir's SumPool2d
    if divisor_override is not None:
        raise UnsupportedNodeError(f"{where}: divisor_override={divisor_override}; snnir knows the mean (None) and the sum (1)")
    if not count_include_pad and set(_pair(padding)) != {0}:
        raise UnsupportedNodeError(f"{where}: count_include_pad=False with padding; snnir's AvgPool2d counts padded zeros")
    return AvgPool2d(**options)


@LAYERS.register(nn.MaxPool2d)
def _import_maxpool(module: nn.MaxPool2d, shape: Shape, where: str) -> Node:
    m = module
    return max_pool_node(where, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices)


@LAYERS.register(nn.AvgPool2d)
def _import_avgpool(module: nn.AvgPool2d, shape: Shape, where: str) -> Node:
    m = module
    return avg_pool_node(where, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override)


@LAYERS.register(nn.Flatten)
def _import_flatten(module: nn.Flatten, shape: Shape, where: str) -> Node:
    return flatten_node(module.start_dim, module.end_dim, where)


@LAYERS.register(nn.Dropout)
def _import_dropout(module: nn.Dropout, shape: Shape, where: str) -> Node:
    return Dropout(float(module.p))


@LAYERS.register(nn.Identity)
def _import_identity(module: nn.Identity, shape: Shape, where: str) -> None:
    return None


@LAYERS.register(modules.Scale)
def _import_scale(module: modules.Scale, shape: Shape, where: str) -> Node:
    return Scale(to_numpy(module.factor, f"{where}.factor"))


@LAYERS.register(modules.Threshold)
def _import_threshold(module: modules.Threshold, shape: Shape, where: str) -> Node:
    return Threshold(to_numpy(module.threshold, f"{where}.threshold"), surrogate=identify_surrogate(module.spike_grad, where))


#: what to do instead, for unsupported layers users often have
_HINTS = {
    **dict.fromkeys(
        ("BatchNorm1d", "BatchNorm2d"),
        " (at inference it is an affine map: fold it into the Linear or Conv before it with "
        "torch.nn.utils.fuse_conv_bn_eval / fuse_linear_bn_eval, then convert)",
    ),
}


def import_layer(module: nn.Module, shape: Shape, where: str, extra_supported: tuple[str, ...] | list[str] = ()) -> Node | None:
    """The snnir node of a stateless torch layer (None for the identity); raises if there is no rule."""
    rule = LAYERS.find(module)
    if rule is None and any(True for _ in module.children()):
        raise UnsupportedNodeError(
            f"{where}: {type(module).__name__} is a container that is not an nn.Sequential; from_snntorch walks "
            "nn.Sequential stacks only, but traces through any nested module of a model with an explicit time loop"
        )
    if rule is None:
        supported = ", ".join(LAYERS.names() + list(extra_supported))
        hint = _HINTS.get(type(module).__name__, "")
        raise UnsupportedNodeError(
            f"{where}: {type(module).__module__}.{type(module).__name__} has no snnir equivalent{hint}; supported: {supported}"
        )
    return rule(module, tuple(shape), where)


# -- export: snnir node -> torch module ---------------------------------------------------------
def _copy(parameter: torch.Tensor | None, array: Any) -> None:
    if parameter is not None:
        with torch.no_grad():
            parameter.copy_(to_tensor(array))


@EXPORTS.register(Linear)
def _export_linear(node: Linear) -> nn.Module:
    layer = nn.Linear(node.in_features, node.out_features, bias=node.bias is not None)
    _copy(layer.weight, node.weight)
    _copy(layer.bias, node.bias)
    return layer


@EXPORTS.register(Conv1d, Conv2d)
def _export_conv(node: Conv1d | Conv2d) -> nn.Module:
    kind = nn.Conv1d if isinstance(node, Conv1d) else nn.Conv2d
    layer = kind(
        node.in_channels, node.out_channels, node.kernel_size, stride=node.stride, padding=node.padding,
        dilation=node.dilation, groups=node.groups, bias=node.bias is not None,
    )
    _copy(layer.weight, node.weight)
    _copy(layer.bias, node.bias)
    return layer


@EXPORTS.register(MaxPool2d)
def _export_maxpool(node: MaxPool2d) -> nn.Module:
    return nn.MaxPool2d(node.kernel_size, stride=node.stride, padding=node.padding)


@EXPORTS.register(AvgPool2d)
def _export_avgpool(node: AvgPool2d) -> nn.Module:
    return nn.AvgPool2d(node.kernel_size, stride=node.stride, padding=node.padding, count_include_pad=True)


@EXPORTS.register(SumPool2d)
def _export_sumpool(node: SumPool2d) -> nn.Module:
    return nn.AvgPool2d(node.kernel_size, stride=node.stride, padding=node.padding, divisor_override=1)


@EXPORTS.register(Flatten)
def _export_flatten(node: Flatten) -> nn.Module:
    return nn.Flatten(node.start_dim + 1 if node.start_dim >= 0 else node.start_dim, node.end_dim + 1 if node.end_dim >= 0 else node.end_dim)


@EXPORTS.register(Scale)
def _export_scale(node: Scale) -> nn.Module:
    return modules.Scale(node.factor)


@EXPORTS.register(Dropout)
def _export_dropout(node: Dropout) -> nn.Module:
    return nn.Dropout(node.p)


@EXPORTS.register(Threshold)
def _export_threshold(node: Threshold) -> nn.Module:
    return modules.Threshold(node.threshold, make_spike_grad(node.surrogate))


__all__ = ["LAYERS", "EXPORTS", "ModuleTable", "import_layer", "flatten_node", "max_pool_node", "avg_pool_node"]
