"""snnTorch surrogate closures <-> snnir :class:`~snnir.ir.Surrogate` specifications.

snnTorch builds a surrogate with a factory such as ``surrogate.fast_sigmoid(slope=25)``, which returns
a closure ``inner(x)`` over its parameters. The closure carries no name of its own, so we recognise it
by its code object (the factory's ``inner`` is the same code object for every call) and read the
parameters out of its closure cells by their free-variable names. Every supported factory has a
Heaviside forward ``(x > 0).float()``; the backward formulas are listed in :mod:`snnir.ir.surrogate`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from snntorch import surrogate as snn_surrogate

from snnir.errors import UnsupportedNodeError
from snnir.ir.surrogate import Surrogate

#: snnTorch factory name -> snnir surrogate name. The parameter names are the same on both sides.
FACTORIES: dict[str, str] = {
    "atan": "atan",
    "fast_sigmoid": "fast_sigmoid",
    "sigmoid": "sigmoid",
    "triangular": "triangular",
    "straight_through_estimator": "straight_through",
    "spike_rate_escape": "spike_rate_escape",
    "heaviside": "heaviside",
}
_SNNIR_TO_FACTORY = {snnir_name: factory for factory, snnir_name in FACTORIES.items()}
#: code object of each factory's inner closure -> factory name
_CODES = {getattr(snn_surrogate, factory)().__code__: factory for factory in FACTORIES}


def identify_surrogate(spike_grad: Any, where: str) -> Surrogate:
    """The snnir surrogate equivalent to snnTorch's ``spike_grad`` closure; raises if there is none.

    Args:
        spike_grad: the ``spike_grad`` attribute of an snnTorch neuron.
        where: the module, for error messages (``"Net.lif1 (Leaky)"``).
    """
    supported = ", ".join(f"surrogate.{name}()" for name in FACTORIES)
    if getattr(spike_grad, "__name__", "") == "_surrogate_bypass":
        raise UnsupportedNodeError(
            f"{where}: surrogate_disable=True has no snnir equivalent (its spikes carry no gradient at all); "
            f"construct the neuron without it, or with one of: {supported}"
        )
    factory = _CODES.get(getattr(spike_grad, "__code__", None))
    if factory is None:
        found = getattr(spike_grad, "__qualname__", type(spike_grad).__name__)
        raise UnsupportedNodeError(
            f"{where}: spike_grad {found!r} is not a surrogate snnir knows; supported: {supported} "
            "(SSO, LSO, SFS and custom_surrogate have no snnir equivalent)"
        )
    code = spike_grad.__code__
    cells = spike_grad.__closure__ or ()
    params: dict[str, float] = {}
    for name, cell in zip(code.co_freevars, cells):
        value = cell.cell_contents
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UnsupportedNodeError(f"{where}: surrogate.{factory} parameter {name}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise UnsupportedNodeError(f"{where}: surrogate.{factory} parameter {name}={value!r} is not finite")
        params[name] = number
    return Surrogate(FACTORIES[factory], tuple(params.items()))


def make_spike_grad(spec: Surrogate) -> Callable:
    """The snnTorch closure for an snnir surrogate (``Surrogate("fast_sigmoid", (("slope", 25.0),))``)."""
    factory = getattr(snn_surrogate, _SNNIR_TO_FACTORY[spec.name])
    return factory(**dict(spec.params))


__all__ = ["FACTORIES", "identify_surrogate", "make_spike_grad"]
