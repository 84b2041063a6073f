"""snnTorch neurons <-> snnir neuron nodes (plus the recurrent synapse of RLeaky/RSynaptic).

============  =====================================================================  ==================
snnTorch       snnir                                                                  state arguments
============  =====================================================================  ==================
Leaky          LIF                                                                    mem
Synaptic       CubaLIF                                                                syn, mem
RLeaky         LIF  + recurrent synapse (Linear / Conv2d / Scale for all_to_all=False)  spk, mem
RSynaptic      CubaLIF + recurrent synapse                                            spk, syn, mem
============  =====================================================================  ==================

Carried exactly: ``beta``/``alpha`` (scalar or per neuron), ``threshold``, the reset mechanism (read
from the ``state_function`` snnTorch actually calls), ``reset_delay`` (``next_step``/``same_step``),
``learn_beta``/``learn_alpha``/``learn_threshold``, the surrogate and ``graded_spikes_factor``.

The recurrent synapse ``rec`` is wired ``neuron -> rec`` with delay 1 and ``rec -> neuron`` without
delay, so that ``rec`` sees the previous spikes and its bias arrives from step 0 on, as in snnTorch
(``recurrent(spk)`` with ``spk = 0`` at the first step is the bias). snnTorch adds the recurrent term
last, ``(β·U + I) + rec``; snnir sums the fan-in first, ``β·U + (I + rec)``: the two can differ in the
last bit of the membrane (never with dyadic values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from snntorch import Leaky, RLeaky, RSynaptic, SpikingNeuron, Synaptic
from torch import nn

from snnir.errors import UnsupportedNodeError
from snnir.ir.layers import Conv2d, Linear, Scale
from snnir.ir.neurons import IF, LI, LIF, CubaLIF
from snnir.ir.node import Node, Shape
from snnir.lowering import LoweringTable

from .layers import import_layer
from .surrogates import identify_surrogate, make_spike_grad
from .tensors import is_learnable, per_neuron, scalar, to_tensor

#: the reset each of snnTorch's state functions applies
_STATE_FUNCTIONS = {"_base_sub": "subtract", "_base_zero": "zero", "_base_int": "none"}
#: snnTorch state argument -> the output variable that carries it from one step to the next
STATE_VARIABLES = {"spk": "value", "syn": "current", "mem": "membrane"}


@dataclass(frozen=True)
class NeuronSpec:
    """How one snnTorch neuron class converts, and how it is called.

    Attributes:
        convert: ``(module, shape, where) -> (neuron node, recurrent synapse or None)``.
        state_args: the state parameters of ``forward`` after the input (``("syn", "mem")``).
        outputs: what the returned tuple holds, as snnir record names (``("value", "current", "membrane")``).
    """

    convert: Callable[[nn.Module, Shape, str], tuple[Node, Node | None]]
    state_args: tuple[str, ...]
    outputs: tuple[str, ...]


def _spiking_fields(module: nn.Module, shape: Shape, where: str) -> dict[str, Any]:
    """Threshold, reset, timing, graded spikes, surrogate and learn_threshold of any snnTorch neuron."""
    if module.inhibition:
        raise UnsupportedNodeError(f"{where}: inhibition=True (winner-take-all spiking) has no snnir equivalent")
    if module.state_quant:
        raise UnsupportedNodeError(f"{where}: state_quant quantises the state; snnir has no quantised neurons")
    if is_learnable(module.graded_spikes_factor):
        raise UnsupportedNodeError(f"{where}: learn_graded_spikes_factor=True; snnir's graded_spikes_factor is not trainable")
    reset = _STATE_FUNCTIONS.get(getattr(module.state_function, "__name__", ""))
    if reset is None or reset != module.reset_mechanism:
        raise UnsupportedNodeError(
            f"{where}: reset_mechanism is {module.reset_mechanism!r} but the neuron integrates with "
            f"{getattr(module.state_function, '__name__', '?')} (the mechanism was changed after construction, "
            "which snnTorch 1.0 applies only half-way); construct the neuron with the reset you want"
        )
    return {
        "threshold": per_neuron(module.threshold, shape, f"{where}.threshold"),
        "reset": reset,
        "reset_timing": "next_step" if module.reset_delay else "same_step",
        "graded_spikes_factor": scalar(module.graded_spikes_factor, f"{where}.graded_spikes_factor"),
        "surrogate": identify_surrogate(module.spike_grad, where),
        "learn_threshold": is_learnable(module.threshold),
    }


def _leaky(module: Leaky, shape: Shape, where: str) -> tuple[Node, None]:
    fields = _spiking_fields(module, shape, where)
    return LIF(per_neuron(module.beta, shape, f"{where}.beta"), learn_beta=is_learnable(module.beta), **fields), None


def _synaptic(module: Synaptic, shape: Shape, where: str) -> tuple[Node, None]:
    fields = _spiking_fields(module, shape, where)
    return (
        CubaLIF(
            per_neuron(module.alpha, shape, f"{where}.alpha"),
            per_neuron(module.beta, shape, f"{where}.beta"),
            learn_alpha=is_learnable(module.alpha),
            learn_beta=is_learnable(module.beta),
            **fields,
        ),
        None,
    )


def _recurrent(module: RLeaky | RSynaptic, shape: Shape, where: str) -> Node:
    """The recurrent synapse of RLeaky/RSynaptic as a shape-preserving snnir node."""
    if not module.all_to_all:  # V: trained unless learn_recurrent=False, as in snnTorch
        return Scale(per_neuron(module.V, shape, f"{where}.V"), learn_factor=bool(module.learn_recurrent))
    if not module.learn_recurrent:
        raise UnsupportedNodeError(
            f"{where}: learn_recurrent=False with all_to_all=True; snnir's recurrent {type(module.recurrent).__name__} "
            "is always trained"
        )
    node = import_layer(module.recurrent, shape, f"{where}.recurrent")
    produced = node.infer_output(tuple(shape))
    if produced != tuple(shape):
        raise UnsupportedNodeError(
            f"{where}: the recurrent {type(module.recurrent).__name__} maps the layer shape {tuple(shape)} to {produced} "
            "(an even kernel_size with padding kernel_size // 2 grows the map); use an odd kernel_size"
        )
    return node


def _rleaky(module: RLeaky, shape: Shape, where: str) -> tuple[Node, Node]:
    fields = _spiking_fields(module, shape, where)
    if fields["reset"] == "zero":
        raise UnsupportedNodeError(
            f"{where}: RLeaky with reset_mechanism='zero' zeroes the whole new membrane (β·U + I + rec), which snnir's "
            "LIF zero reset does not express; RSynaptic(alpha=0, reset_mechanism='zero') computes exactly that and converts"
        )
    neuron = LIF(per_neuron(module.beta, shape, f"{where}.beta"), learn_beta=is_learnable(module.beta), **fields)
    return neuron, _recurrent(module, shape, where)


def _rsynaptic(module: RSynaptic, shape: Shape, where: str) -> tuple[Node, Node]:
    if not module.reset_delay:
        raise UnsupportedNodeError(
            f"{where}: RSynaptic(reset_delay=False) is broken in snnTorch 1.0 (its same-step reset is computed on a "
            "discarded local variable, and fails with init_hidden=True); use reset_delay=True"
        )
    neuron, _ = _synaptic(module, shape, where)
    return neuron, _recurrent(module, shape, where)


#: exact snnTorch class -> spec (subclasses are refused: they may override any step of the update)
NEURONS: dict[type, NeuronSpec] = {
    Leaky: NeuronSpec(_leaky, ("mem",), ("value", "membrane")),
    Synaptic: NeuronSpec(_synaptic, ("syn", "mem"), ("value", "current", "membrane")),
    RLeaky: NeuronSpec(_rleaky, ("spk", "mem"), ("value", "membrane")),
    RSynaptic: NeuronSpec(_rsynaptic, ("spk", "syn", "mem"), ("value", "current", "membrane")),
}


def neuron_spec(module: Any) -> NeuronSpec | None:
    """The spec of an snnTorch neuron module, None for anything else."""
    return NEURONS.get(type(module))


def is_snntorch_neuron(module: Any) -> bool:
    """True for any snnTorch spiking neuron, supported or not (they are leaves for tracing): the SpikingNeuron
    subclasses and the neuron layers built on plain nn.Module (LeakyParallel, StateLeaky, ...)."""
    return isinstance(module, SpikingNeuron) or type(module).__module__.startswith("snntorch._neurons")


def supported_neurons() -> list[str]:
    return [f"snntorch.{cls.__name__}" for cls in NEURONS]


# -- export: snnir neuron (+ recurrent synapse) -> snnTorch module ---------------------------------
NEURON_EXPORTS = LoweringTable("snntorch")


def _common_args(node: LIF | IF | CubaLIF) -> dict[str, Any]:
    return {
        "threshold": to_tensor(node.threshold),
        "spike_grad": make_spike_grad(node.surrogate),
        "learn_threshold": node.learn_threshold,
        "reset_mechanism": node.reset,
        "reset_delay": node.reset_timing == "next_step",
    }


def _set_graded(module: nn.Module, node: Node) -> nn.Module:
    """Synaptic, RLeaky and RSynaptic take no graded_spikes_factor argument; set their buffer instead."""
    module.graded_spikes_factor = torch.tensor(node.graded_spikes_factor, dtype=torch.float32)
    return module


def _recurrent_args(recurrent: Node) -> dict[str, Any]:
    if isinstance(recurrent, Scale):
        return {"all_to_all": False, "V": to_tensor(recurrent.factor), "learn_recurrent": recurrent.learn_factor}
    if isinstance(recurrent, Linear):
        return {"linear_features": recurrent.out_features}
    return {"conv2d_channels": recurrent.out_channels, "kernel_size": recurrent.kernel_size}


def _load_recurrent(module: nn.Module, recurrent: Node) -> nn.Module:
    if isinstance(recurrent, (Linear, Conv2d)):
        with torch.no_grad():
            module.recurrent.weight.copy_(to_tensor(recurrent.weight))
            if recurrent.bias is None:
                module.recurrent.bias = None
            else:
                module.recurrent.bias.copy_(to_tensor(recurrent.bias))
    return module


def recurrent_mismatch(node: Node, recurrent: Node, bias_from_step_zero: bool) -> str | None:
    """Why ``node`` with ``recurrent`` cannot become an RLeaky/RSynaptic (None when it can).

    ``bias_from_step_zero`` is False when the graph delays the synapse's output (``rec -> neuron`` has the
    delay), so the synapse's bias only arrives from step 1 on, unlike in snnTorch.
    """
    if not isinstance(node, (LIF, IF, CubaLIF)):
        return f"snnTorch has no recurrent {node.kind}"
    if node.bias is not None:
        return "RLeaky and RSynaptic take no constant bias"
    if isinstance(node, (LIF, IF)) and node.reset == "zero":
        return "RLeaky's zero reset differs from snnir's LIF zero reset"
    if isinstance(node, CubaLIF) and node.reset_timing == "same_step":
        return "RSynaptic(reset_delay=False) is broken in snnTorch 1.0"
    if not bias_from_step_zero and getattr(recurrent, "bias", None) is not None:
        return "the recurrent bias would arrive one step early"
    if isinstance(recurrent, Scale):
        return None
    if isinstance(recurrent, Linear):
        return None if recurrent.in_features == recurrent.out_features else "the recurrent Linear is not square"
    if isinstance(recurrent, Conv2d):
        square = recurrent.in_channels == recurrent.out_channels and recurrent.groups == 1
        same = set(recurrent.stride) == {1} and set(recurrent.dilation) == {1}
        padded = recurrent.padding == tuple(k // 2 for k in recurrent.kernel_size) and all(k % 2 for k in recurrent.kernel_size)
        return None if square and same and padded else "the recurrent Conv2d is not RLeaky's (odd kernel, padding k//2, stride 1)"
    return f"snnTorch has no recurrent {recurrent.kind}"


@NEURON_EXPORTS.register(LIF, IF)
def _export_leaky(node: LIF | IF, recurrent: Node | None, name: str, **flags: Any) -> nn.Module:
    beta = to_tensor(node.beta) if isinstance(node, LIF) else torch.tensor(1.0)
    learn_beta = isinstance(node, LIF) and node.learn_beta
    if recurrent is None:
        return Leaky(beta, learn_beta=learn_beta, graded_spikes_factor=node.graded_spikes_factor, **_common_args(node), **flags)
    module = RLeaky(beta, learn_beta=learn_beta, **_recurrent_args(recurrent), **_common_args(node), **flags)
    return _set_graded(_load_recurrent(module, recurrent), node)


@NEURON_EXPORTS.register(CubaLIF)
def _export_synaptic(node: CubaLIF, recurrent: Node | None, name: str, **flags: Any) -> nn.Module:
    if node.bias is not None:
        raise UnsupportedNodeError(
            f"node {name!r} (CubaLIF) has a bias, which enters after the current decay (U = β·U + (J + b)); "
            "snnTorch's Synaptic has no such term"
        )
    args = dict(learn_alpha=node.learn_alpha, learn_beta=node.learn_beta, **_common_args(node), **flags)
    if recurrent is None:
        module = Synaptic(to_tensor(node.alpha), to_tensor(node.beta), **args)
    else:
        module = _load_recurrent(RSynaptic(to_tensor(node.alpha), to_tensor(node.beta), **_recurrent_args(recurrent), **args), recurrent)
    return _set_graded(module, node)


@NEURON_EXPORTS.register(LI)
def _export_li(node: LI, recurrent: Node | None, name: str, **flags: Any) -> nn.Module:
    # A Leaky that never resets integrates U = β·U + I exactly like LI; its membrane is LI's value.
    return Leaky(to_tensor(node.beta), learn_beta=node.learn_beta, reset_mechanism="none", **flags)


def export_neuron(node: Node, name: str, recurrent: Node | None = None, **flags: Any) -> nn.Module:
    """The snnTorch neuron for ``node`` (RLeaky/RSynaptic with ``recurrent``); ``flags``: init_hidden, output.

    A LIF/IF/LI ``bias`` is not part of the module: the caller adds it to the input (``D = I + b``).
    """
    return NEURON_EXPORTS.rule_for(node, name)(node, recurrent, name, **flags)


__all__ = [
    "NeuronSpec",
    "NEURONS",
    "STATE_VARIABLES",
    "neuron_spec",
    "is_snntorch_neuron",
    "supported_neurons",
    "export_neuron",
    "recurrent_mismatch",
]
