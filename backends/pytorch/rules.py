"""The torch backend's lowering table: node kind -> a small rule building one module.

A rule is ``rule(node, input_shape, output_shape) -> nn.Module``. Stateless modules map a batch
``[N, *in]`` to ``[N, *out]`` (``stateful = False``); neuron modules offer ``sequence``/``step``/
``init_state`` (see :mod:`.neurons`). Every module writes its parameters back with ``to_node``.
Users replace or add rules per compile call: ``snnir.compile(g, "torch", overrides={LIF: my_rule})``.
"""

from __future__ import annotations

from snnir.ir.layers import AvgPool2d, Conv1d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale, SumPool2d, Threshold
from snnir.ir.neurons import IF, LI, LIF, CubaLIF
from snnir.lowering import LoweringTable

from . import layers, neurons

RULES = LoweringTable("torch")


@RULES.register(Linear)
def _linear(node, input_shape, output_shape):
    return layers.Linear(node)


@RULES.register(Conv1d, Conv2d)
def _conv(node, input_shape, output_shape):
    return layers.Conv(node)


@RULES.register(MaxPool2d)
def _max_pool(node, input_shape, output_shape):
    return layers.MaxPool(node)


@RULES.register(AvgPool2d)
def _avg_pool(node, input_shape, output_shape):
    return layers.AvgPool(node, divisor=None)


@RULES.register(SumPool2d)
def _sum_pool(node, input_shape, output_shape):
    return layers.AvgPool(node, divisor=1)


@RULES.register(Flatten)
def _flatten(node, input_shape, output_shape):
    return layers.Reshape(output_shape)


@RULES.register(Scale)
def _scale(node, input_shape, output_shape):
    return layers.Scale(node)


@RULES.register(Dropout)
def _dropout(node, input_shape, output_shape):
    return layers.Dropout(node)


@RULES.register(Threshold)
def _threshold(node, input_shape, output_shape):
    return layers.Threshold(node)


@RULES.register(LIF, IF)
def _lif(node, input_shape, output_shape):
    return neurons.LIF(node, output_shape)


@RULES.register(CubaLIF)
def _cuba(node, input_shape, output_shape):
    return neurons.CubaLIF(node, output_shape)


@RULES.register(LI)
def _li(node, input_shape, output_shape):
    return neurons.LI(node, output_shape)


__all__ = ["RULES"]
