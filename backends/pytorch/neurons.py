"""Lowered neuron nodes: a whole-sequence scan (custom autograd) and a differentiable single step.

``sequence(drive, state, steps)`` runs the time loop of one layer in a custom autograd function
(:mod:`.scan`) and returns ``(value [T, B, ...], {state variable: [T, B, ...]}, final state)``; the drive
may be ``[1, B, ...]`` for an input that is the same at every step. ``step(x, state)`` advances one step
with ordinary autograd operations (recurrent groups, streaming); its gradients are snnTorch's,
surrogate spike and detached reset included. Both follow the reference operation order exactly.

Per-neuron parameters keep the node's shapes; ``beta``/``alpha``/``threshold`` are Parameters when the
node's ``learn_*`` flag is set, buffers otherwise, and an optional ``bias`` is always trainable.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snnir.ir.neurons import LIF as LIFNode

from .layers import register, to_array, unchanged_node
from .memory import register_spikes
from .scan import CubaScan, Dynamics, LIFScan, LIScan
from .surrogates import spike, surrogate_backward

State = dict[str, torch.Tensor]


class Neuron(nn.Module):
    """Base of the neuron layers of shape ``shape`` (without batch)."""

    stateful = True
    state_variables: tuple[str, ...] = ()
    uses_training_mode = False  # see layers.Stateless

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def init_state(self, batch_size: int, like: torch.Tensor) -> State:
        return {name: like.new_zeros((batch_size, *self.shape)) for name in self.state_variables}

    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.bias is None else x + self.bias

    def to_node(self, node):
        """``node`` unchanged for a user neuron without trainable parameters (:func:`.layers.unchanged_node`)."""
        return unchanged_node(self, node)


class _Spiking(Neuron):
    """Threshold, reset rule, timing, graded spikes and surrogate of LIF, IF and CubaLIF."""

    def __init__(self, node, shape):
        super().__init__(shape)
        register(self, "threshold", node.threshold, node.learn_threshold)
        register(self, "bias", node.bias, True)
        self.reset = node.reset
        self.same_step = node.reset_timing == "same_step"
        self.graded = float(node.graded_spikes_factor)
        self.surrogate = surrogate_backward(node.surrogate)

    def dynamics(self, steps: int) -> Dynamics:
        return Dynamics(steps, self.reset, self.same_step, self.graded, self.surrogate)

    def _fire(self, u: torch.Tensor, reset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spike on ``u``; with same-step timing also reset ``u`` (the gradient flows through the spike)."""
        spikes = spike(u - self.threshold, self.surrogate)
        if self.same_step and self.reset != "none":
            correction = spikes - reset
            u = u - correction * (self.threshold if self.reset == "subtract" else u)
        return (spikes if self.graded == 1.0 else spikes * self.graded), u

    def _written(self, node, **extra):
        return node.replace(threshold=to_array(self.threshold), bias=to_array(self.bias), **extra)


class LIF(_Spiking):
    """LIF (and IF, whose ``beta`` is the constant 1): see :class:`snnir.LIF` for the equations."""

    state_variables = ("membrane",)

    def __init__(self, node, shape):
        super().__init__(node, shape)
        self.leaky = isinstance(node, LIFNode)
        register(self, "beta", node.beta if self.leaky else np.float32(1.0), self.leaky and node.learn_beta)

    def _beta(self) -> torch.Tensor:
        return self.beta.clamp(0, 1) if self.leaky else self.beta

    def sequence(self, drive, state, steps):
        initial = None if state is None else state["membrane"]
        spikes, membranes, last = LIFScan.apply(self._drive(drive), initial, self._beta(), self.threshold, self.dynamics(steps))
        if not self.same_step:
            register_spikes(spikes, membranes, self.threshold, self.graded)
        return spikes, {"membrane": membranes}, {"membrane": last}

    def step(self, x, state):
        previous = state["membrane"]
        reset = (previous > self.threshold).to(previous.dtype)  # detached by construction
        drive, beta = self._drive(x), self._beta()
        if self.reset == "zero":
            u = beta * ((1 - reset) * previous) + drive
        else:
            u = beta * previous + drive
            if self.reset == "subtract":
                u = u - reset * self.threshold
        spikes, u = self._fire(u, reset)
        return spikes, {"membrane": u}

    def to_node(self, node):
        return self._written(node, beta=to_array(self.beta)) if self.leaky else self._written(node)


class CubaLIF(_Spiking):
    """Current-based LIF: see :class:`snnir.CubaLIF` for the equations."""

    state_variables = ("current", "membrane")

    def __init__(self, node, shape):
        super().__init__(node, shape)
        register(self, "alpha", node.alpha, node.learn_alpha)
        register(self, "beta", node.beta, node.learn_beta)

    def sequence(self, drive, state, steps):
        current0 = membrane0 = None
        if state is not None:
            current0, membrane0 = state["current"], state["membrane"]
        spikes, currents, membranes, current, membrane = CubaScan.apply(
            drive, current0, membrane0, self.alpha.clamp(0, 1), self.beta.clamp(0, 1), self.threshold, self.bias,
            self.dynamics(steps),
        )
        if not self.same_step:
            register_spikes(spikes, membranes, self.threshold, self.graded)
        return spikes, {"current": currents, "membrane": membranes}, {"current": current, "membrane": membrane}

    def step(self, x, state):
        previous = state["membrane"]
        reset = (previous > self.threshold).to(previous.dtype)
        current = self.alpha.clamp(0, 1) * state["current"] + x
        u = self.beta.clamp(0, 1) * previous + self._drive(current)
        if self.reset == "subtract":
            u = u - reset * self.threshold
        elif self.reset == "zero":
            u = u - u * reset
        spikes, u = self._fire(u, reset)
        return spikes, {"current": current, "membrane": u}

    def to_node(self, node):
        return self._written(node, alpha=to_array(self.alpha), beta=to_array(self.beta))


class LI(Neuron):
    """Leaky integrator read-out ``U = β·U' + D``; its value is the membrane."""

    state_variables = ("membrane",)

    def __init__(self, node, shape):
        super().__init__(shape)
        register(self, "beta", node.beta, node.learn_beta)
        register(self, "bias", node.bias, True)

    def sequence(self, drive, state, steps):
        initial = None if state is None else state["membrane"]
        membranes, last = LIScan.apply(self._drive(drive), initial, self.beta.clamp(0, 1), steps)
        return membranes, {"membrane": membranes}, {"membrane": last}

    def step(self, x, state):
        u = self.beta.clamp(0, 1) * state["membrane"] + self._drive(x)
        return u, {"membrane": u}

    def to_node(self, node):
        return node.replace(beta=to_array(self.beta), bias=to_array(self.bias))


__all__ = ["Neuron", "LIF", "CubaLIF", "LI"]
