"""Surrogate-gradient specifications (training attributes of spiking nodes).

The forward pass of every surrogate is the strict Heaviside step ``S = H(U - θ) = [U - θ > 0]``;
only the backward pass differs. With ``x = U - θ`` the derivatives follow snnTorch 1.0
(``snntorch/surrogate.py``) exactly:

============================  ==========================================  ==================
name                          dS/dx                                       parameters
============================  ==========================================  ==================
``atan`` (default)            α/2 / (1 + (π/2 · α · x)²)                  alpha = 2
``fast_sigmoid``              1 / (slope·|x| + 1)²                        slope = 25
``sigmoid``                   slope·e^(−slope·x) / (e^(−slope·x) + 1)²    slope = 25
``triangular``                threshold if x < 0 else −threshold          threshold = 1
``straight_through``          1                                           —
``spike_rate_escape``         slope · e^(−beta·|x − 1|)                   beta = 1, slope = 25
``heaviside``                 H(x)  (the spike itself)                    —
============================  ==========================================  ==================

Inference backends ignore surrogates; the torch backend implements the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import NodeParameterError

#: Known surrogates and their default parameters, in snnTorch's argument order.
SURROGATE_DEFAULTS: Mapping[str, Mapping[str, float]] = {
    "atan": {"alpha": 2.0},
    "fast_sigmoid": {"slope": 25.0},
    "sigmoid": {"slope": 25.0},
    "triangular": {"threshold": 1.0},
    "straight_through": {},
    "spike_rate_escape": {"beta": 1.0, "slope": 25.0},
    "heaviside": {},
}


@dataclass(frozen=True)
class Surrogate:
    """A surrogate gradient: a name from :data:`SURROGATE_DEFAULTS` and its parameters.

    ``params`` always holds every parameter of the surrogate (defaults filled in), as a tuple of
    ``(name, value)`` pairs in snnTorch's order, so that two equal surrogates compare equal.
    """

    name: str = "atan"
    params: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        defaults = SURROGATE_DEFAULTS.get(self.name)
        if defaults is None:
            known = ", ".join(SURROGATE_DEFAULTS)
            raise NodeParameterError(f"unknown surrogate {self.name!r}; expected one of: {known}")
        given = dict(self.params)
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise NodeParameterError(
                f"surrogate {self.name!r} takes {list(defaults) or 'no parameters'}, found {unknown}"
            )
        merged = []
        for key, default in defaults.items():
            value = given.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise NodeParameterError(f"surrogate {self.name!r}: {key} must be a finite number, found {value!r}")
            merged.append((key, float(value)))
        object.__setattr__(self, "params", tuple(merged))

    def __getitem__(self, key: str) -> float:
        return dict(self.params)[key]

    @classmethod
    def of(cls, spec: Any) -> Surrogate:
        """Accept a Surrogate, a name (``"fast_sigmoid"``) or a mapping (``{"name": ..., "slope": 25}``)."""
        if isinstance(spec, Surrogate):
            return spec
        if spec is None:
            return cls()
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Mapping):
            raw = dict(spec)
            name = raw.pop("name", None)
            if not isinstance(name, str):
                raise NodeParameterError(f"a surrogate mapping needs a 'name' string, found {spec!r}")
            return cls(name, tuple(raw.items()))
        raise NodeParameterError(f"expected a surrogate name, mapping or Surrogate, found {type(spec).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dict(self.params)}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.name}({args})"


__all__ = ["Surrogate", "SURROGATE_DEFAULTS"]
