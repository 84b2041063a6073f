"""The reference backend's lowering table: node -> kernel ``(x, state) -> (y, state)``."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from ..ir.neurons import IF, LI, LIF, CubaLIF
from ..ir.node import Shape
from ..lowering import LoweringTable
from . import kernels
from .neurons import CubaLIFKernel, LIFKernel, LIKernel, NeuronKernel

RULES = LoweringTable("reference")


class Stateless(NeuronKernel):
    """Adapts a pure function ``f(x)`` to the kernel interface (no state)."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray], shape: Shape):
        super().__init__(shape)
        self.function = function

    def __call__(self, x: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        return self.function(x), state


@RULES.register(Linear)
def _linear(node: Linear, input_shape: Shape, output_shape: Shape) -> Stateless:
    return Stateless(lambda x: kernels.linear(x, node.weight, node.bias), output_shape)


@RULES.register(Conv1d, Conv2d)
def _conv(node: Conv1d | Conv2d, input_shape: Shape, output_shape: Shape) -> Stateless:
    conv = kernels.conv1d if isinstance(node, Conv1d) else kernels.conv2d
    args = (node.weight, node.bias, node.stride, node.padding, node.dilation, node.groups)
    return Stateless(lambda x: conv(x, *args), output_shape)


@RULES.register(MaxPool2d, AvgPool2d, SumPool2d)
def _pool(node: MaxPool2d, input_shape: Shape, output_shape: Shape) -> Stateless:
    pool = {MaxPool2d: kernels.max_pool2d, AvgPool2d: kernels.avg_pool2d, SumPool2d: kernels.sum_pool2d}[type(node)]
    return Stateless(lambda x: pool(x, node.kernel_size, node.stride, node.padding), output_shape)


@RULES.register(Flatten)
def _flatten(node: Flatten, input_shape: Shape, output_shape: Shape) -> Stateless:
    return Stateless(lambda x: x.reshape(x.shape[0], *output_shape), output_shape)


@RULES.register(Scale)
def _scale(node: Scale, input_shape: Shape, output_shape: Shape) -> Stateless:
    return Stateless(lambda x: x * node.factor, output_shape)


@RULES.register(Dropout)
def _dropout(node: Dropout, input_shape: Shape, output_shape: Shape) -> Stateless:
    return Stateless(lambda x: x, output_shape)  # inference: the identity


@RULES.register(Threshold)
def _threshold(node: Threshold, input_shape: Shape, output_shape: Shape) -> Stateless:
    return Stateless(lambda x: kernels.heaviside(x - node.threshold), output_shape)


@RULES.register(LIF, IF)
def _lif(node: LIF | IF, input_shape: Shape, output_shape: Shape) -> LIFKernel:
    return LIFKernel(node, output_shape)


@RULES.register(CubaLIF)
def _cuba(node: CubaLIF, input_shape: Shape, output_shape: Shape) -> CubaLIFKernel:
    return CubaLIFKernel(node, output_shape)


@RULES.register(LI)
def _li(node: LI, input_shape: Shape, output_shape: Shape) -> LIKernel:
    return LIKernel(node, output_shape)


__all__ = ["RULES", "Stateless"]
