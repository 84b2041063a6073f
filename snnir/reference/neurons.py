"""Neuron updates of the reference interpreter: the executable form of docs/semantics.md.

Each line is one float32 operation in the order docs/semantics.md fixes (snnTorch 1.0's), so other
backends can match these results bit for bit on dyadic data.
"""

from __future__ import annotations

import numpy as np

from ..ir.neurons import IF, LI, LIF, CubaLIF
from .kernels import heaviside

State = dict[str, np.ndarray]


def _clamp01(value: np.ndarray) -> np.ndarray:
    return np.clip(value, np.float32(0), np.float32(1)).astype(np.float32)


def _drive(x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``D[t] = I[t] + b``, or ``I[t]`` itself when the node has no bias."""
    return x if bias is None else x + bias


class NeuronKernel:
    """A neuron layer of shape ``shape``; ``__call__(x, state)`` returns ``(output, new_state)``."""

    state_variables: tuple[str, ...] = ()

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)

    def init_state(self, batch_size: int) -> State:
        return {name: np.zeros((batch_size, *self.shape), np.float32) for name in self.state_variables}


class _Spiking(NeuronKernel):
    """Threshold, reset and graded spikes shared by LIF, IF and CubaLIF."""

    def __init__(self, node: LIF | IF | CubaLIF, shape: tuple[int, ...]):
        super().__init__(shape)
        self.threshold = node.threshold
        self.reset_mode = node.reset
        self.same_step = node.reset_timing == "same_step"
        self.graded = np.float32(node.graded_spikes_factor)
        self.bias = node.bias

    def _fire(self, u: np.ndarray, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spike on ``u``; with same-step timing also return the already-reset membrane."""
        spike = heaviside(u - self.threshold)
        if self.same_step:
            correction = spike - reset
            if self.reset_mode == "subtract":
                u = u - correction * self.threshold
            elif self.reset_mode == "zero":
                u = u - correction * u
        return spike * self.graded, u


class LIFKernel(_Spiking):
    """``R = H(U' − θ)``; subtract ``(βU' + D) − Rθ``, zero ``β((1 − R)U') + D``, none ``βU' + D``."""

    state_variables = ("membrane",)

    def __init__(self, node: LIF | IF, shape: tuple[int, ...]):
        super().__init__(node, shape)
        self.beta = _clamp01(node.beta) if isinstance(node, LIF) else np.float32(1.0)

    def __call__(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        previous = state["membrane"]
        drive = _drive(x, self.bias)
        reset = heaviside(previous - self.threshold)
        if self.reset_mode == "subtract":
            u = self.beta * previous + drive
            u = u - reset * self.threshold
        elif self.reset_mode == "zero":
            kept = (np.float32(1) - reset) * previous
            u = self.beta * kept + drive
        else:
            u = self.beta * previous + drive
        spikes, u = self._fire(u, reset)
        return spikes, {"membrane": u}


class CubaLIFKernel(_Spiking):
    """``J = αJ' + I``; ``U = βU' + (J + b)``; subtract ``U − Rθ``, zero ``U − U·R``."""

    state_variables = ("current", "membrane")

    def __init__(self, node: CubaLIF, shape: tuple[int, ...]):
        super().__init__(node, shape)
        self.alpha = _clamp01(node.alpha)
        self.beta = _clamp01(node.beta)

    def __call__(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        previous = state["membrane"]
        reset = heaviside(previous - self.threshold)
        current = self.alpha * state["current"] + x
        u = self.beta * previous + _drive(current, self.bias)
        if self.reset_mode == "subtract":
            u = u - reset * self.threshold
        elif self.reset_mode == "zero":
            u = u - u * reset
        spikes, u = self._fire(u, reset)
        return spikes, {"current": current, "membrane": u}


class LIKernel(NeuronKernel):
    """``U = βU' + D``; the output is the membrane itself."""

    state_variables = ("membrane",)

    def __init__(self, node: LI, shape: tuple[int, ...]):
        super().__init__(shape)
        self.beta = _clamp01(node.beta)
        self.bias = node.bias

    def __call__(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        u = self.beta * state["membrane"] + _drive(x, self.bias)
        return u, {"membrane": u}


__all__ = ["NeuronKernel", "LIFKernel", "CubaLIFKernel", "LIKernel"]
