"""The one place where NIR's continuous-time parameters become snnir's discrete ones, and back.

Every NIR leaky equation has the form ``τ·dx/dt = −x + drive`` (docs/frontend-nir.md lists them).
Over one step of ``dt`` seconds it becomes ``x[t] = a·x[t−1] + g·drive[t]`` with, by scheme:

==========  ====================  ==========================
scheme      decay ``a``           drive gain ``g``
==========  ====================  ==========================
``euler``   ``1 − dt/τ``          ``dt/τ``
``exact``   ``exp(−dt/τ)``        ``1 − exp(−dt/τ)``
==========  ====================  ==========================

``euler`` is the forward-Euler convention of NIR's reference exporters (snnTorch, Norse);
``exact`` integrates the equation exactly for a drive held constant over the step (zero-order hold).
From these, per node (``gm``/``gs`` are the gains of the membrane and synaptic equations)::

    LIF, LI   β = a(τ)         input gain = g·r                     bias = g·v_leak
    CubaLIF   α = a(τ_syn)     β = a(τ_mem)   input gain = gs·w_in·gm·r   bias = gm·v_leak
    IF, I     β = 1            input gain = dt·r

All arithmetic is float64, left to right as written, rounded to float32 once at the end. The
inverse functions (export) pick continuous values whose forward conversion gives back the float32
discrete values bit for bit (the exporter checks every node), so snnir → NIR → snnir is lossless.
"""

from __future__ import annotations

import numpy as np

from snnir.errors import NodeParameterError

SCHEMES = ("euler", "exact")
#: Time constant (in steps) standing for "no leak": its decay rounds to exactly 1 in float32
#: (1 − 2^-26 is closer to 1 than to the float32 below 1), yet its gain and r stay finite.
NO_LEAK_STEPS = 2.0**26
#: Time constant (in steps) standing for "no memory" under ``exact``: exp(−128) rounds to 0 in float32.
NO_MEMORY_STEPS = 2.0**-7
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_scheme(scheme: object) -> str:
    if scheme not in SCHEMES:
        raise NodeParameterError(f"discretization: expected one of {list(SCHEMES)}, found {scheme!r}")
    return str(scheme)


def _float64(value: object, where: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if np.isnan(array).any():
        raise NodeParameterError(f"{where}: contains NaN")
    return array


def decay(tau: object, dt: float, scheme: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(a, g)`` of ``τ·dx/dt = −x + drive`` over one step (float64); ``τ = inf`` means no leak."""
    tau = _float64(tau, where)
    if (tau <= 0).any():
        bad = tau[tau <= 0].flat[0]
        raise NodeParameterError(f"{where}: time constants must be positive, found {bad}")
    ratio = dt / tau
    if scheme == "euler":
        if (ratio > 1).any():
            bad = tau[ratio > 1].flat[0]
            raise NodeParameterError(
                f"{where}: dt = {dt:g} s exceeds the time constant {bad:g} s, so Euler's decay 1 − dt/τ "
                "would be negative; use discretization='exact' or a smaller dt"
            )
        return 1.0 - ratio, ratio
    return np.exp(-ratio), -np.expm1(-ratio)


def to_float32(value: np.ndarray, where: str) -> np.ndarray:
    """Round once to float32, refusing values that overflow it."""
    value = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(value) | (np.abs(value) > _FLOAT32_MAX)
    if bad.any():
        raise NodeParameterError(f"{where}: the converted value {value[bad].flat[0]} does not fit in float32")
    return value.astype(np.float32)


# -- NIR -> snnir -------------------------------------------------------------------------------------
def leaky(tau: object, r: object, v_leak: object, dt: float, scheme: str, where: str) -> dict[str, np.ndarray]:
    """LIF/LI: ``{"beta", "gain", "bias"}`` as float32."""
    a, g = decay(tau, dt, scheme, f"{where}.tau")
    return {
        "beta": to_float32(a, f"{where}.beta"),
        "gain": to_float32(g * _float64(r, f"{where}.r"), f"{where} input gain g·r"),
        "bias": to_float32(g * _float64(v_leak, f"{where}.v_leak"), f"{where} bias g·v_leak"),
    }


def current_based(
    tau_syn: object, tau_mem: object, r: object, v_leak: object, w_in: object, dt: float, scheme: str, where: str
) -> dict[str, np.ndarray]:
    """CubaLIF: ``{"alpha", "beta", "gain", "bias"}`` as float32."""
    a_syn, g_syn = decay(tau_syn, dt, scheme, f"{where}.tau_syn")
    a_mem, g_mem = decay(tau_mem, dt, scheme, f"{where}.tau_mem")
    gain = g_syn * _float64(w_in, f"{where}.w_in") * g_mem * _float64(r, f"{where}.r")
    return {
        "alpha": to_float32(a_syn, f"{where}.alpha"),
        "beta": to_float32(a_mem, f"{where}.beta"),
        "gain": to_float32(gain, f"{where} input gain gs·w_in·gm·r"),
        "bias": to_float32(g_mem * _float64(v_leak, f"{where}.v_leak"), f"{where} bias gm·v_leak"),
    }


def integrator(r: object, dt: float, where: str) -> np.ndarray:
    """IF/I: the input gain ``dt·r`` as float32 (no leak, so both schemes agree)."""
    return to_float32(dt * _float64(r, f"{where}.r"), f"{where} input gain dt·r")


# -- snnir -> NIR -------------------------------------------------------------------------------------
def time_constant(factor: np.ndarray, dt: float, scheme: str) -> np.ndarray:
    """``τ`` whose decay is ``factor`` (float32, clamped to [0, 1]); inverse of :func:`decay`.

    ``a = 1`` gives ``τ = 2^26·dt`` (finite, so ``r`` stays finite; other tools see a leak of 1.5e-8
    per step), ``a = 0`` under ``exact`` gives ``τ = dt/128``.
    """
    a = np.clip(np.asarray(factor, np.float64), 0.0, 1.0)
    no_leak = a >= 1.0
    safe = np.where(no_leak, 0.5, a)
    if scheme == "euler":
        tau = dt / (1.0 - safe)
    else:
        zero = safe <= 0.0
        tau = np.where(zero, dt * NO_MEMORY_STEPS, -dt / np.log(np.where(zero, 0.5, safe)))
    return np.where(no_leak, dt * NO_LEAK_STEPS, tau)


def to_leaky(beta: np.ndarray, bias: np.ndarray | None, dt: float, scheme: str) -> dict[str, np.ndarray]:
    """LIF/LI: ``τ``, ``r = 1/g`` (input gain exactly 1) and ``v_leak = b/g`` (float64, shape of ``beta``)."""
    tau = time_constant(beta, dt, scheme)
    _, gain = decay(tau, dt, scheme, "export")
    v_leak = np.zeros_like(tau) if bias is None else np.asarray(bias, np.float64) / gain
    return {"tau": tau, "r": 1.0 / gain, "v_leak": v_leak}


def to_current_based(alpha: np.ndarray, beta: np.ndarray, bias: np.ndarray | None, dt: float, scheme: str) -> dict[str, np.ndarray]:
    """CubaLIF: ``τ_syn``, ``w_in = 1/gs`` and the membrane's ``τ_mem``, ``r``, ``v_leak`` of :func:`to_leaky`."""
    tau_syn = time_constant(alpha, dt, scheme)
    _, gain_syn = decay(tau_syn, dt, scheme, "export")
    membrane = to_leaky(beta, bias, dt, scheme)
    return {"tau_syn": tau_syn, "w_in": 1.0 / gain_syn, "tau_mem": membrane["tau"], "r": membrane["r"], "v_leak": membrane["v_leak"]}


def to_integrator(shape: tuple[int, ...], dt: float) -> np.ndarray:
    """IF/I: ``r = 1/dt``, so that the input gain ``dt·r`` is 1."""
    return np.full(shape, 1.0 / dt)


__all__ = [
    "SCHEMES",
    "check_scheme",
    "decay",
    "leaky",
    "current_based",
    "integrator",
    "time_constant",
    "to_leaky",
    "to_current_based",
    "to_integrator",
    "to_float32",
]
