"""Neuron time loops as custom autograd functions with hand-written reverse-time backward passes.

A neuron layer over a whole sequence is one :class:`LIFScan`, :class:`CubaScan` or :class:`LIScan`
call. The forward pass loops over time with in-place operations in the exact order of the reference
(docs/semantics.md) and builds no autograd graph; the backward pass loops back over time with two
to six tensor operations per step, everything else (surrogate slopes, parameter gradients) being
vectorised over ``T``.

Kept for the backward pass: the membrane of every neuron-step (one potential per neuron-step); in
addition the synaptic current when a CubaLIF's ``alpha`` is learnable, and the pre-reset potential
with ``reset_timing="same_step"``. Spikes, resets and surrogate slopes are recomputed from those.
The drive may hold a single step ``[1, B, ...]`` standing for every step (a hoisted, time-invariant
input); its gradient is then summed over time.

Gradients are those of snnTorch 1.0's autograd graph: the reset ``R[t] = H(U[t−1] − θ)`` is detached;
spikes use the surrogate of ``U − θ``, so a learnable threshold receives ``−σ'`` through every spike
and ``−R`` through every subtractive reset; ``beta``/``alpha`` arrive clamped (the clamp's gradient
mask is applied by autograd outside). With same-step timing the reset ``(S − R)·θ`` (or ``(S − R)·U``)
carries the surrogate gradient, as snnTorch's ``spk / graded_spikes_factor`` does. With ``V`` the
membrane before a same-step reset and ``G`` the gradient of the stored membrane, the recurrences are::

    G[t]  = gM[t] + carry[t+1]             gM: gradient of the recorded membrane
    gV[t] = G[t]·k[t] + a[t]               a = σ'(V − θ)·g·gS;  k = dU_stored/dV (1 for next_step)
    carry[t] = m[t]·gV[t]                  m = β, or β·(1 − R) for a zero reset (LIF)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .surrogates import SurrogateBackward


@dataclass(frozen=True)
class Dynamics:
    """The non-tensor configuration of a spiking scan."""

    steps: int
    reset: str  # "subtract" | "zero" | "none"
    same_step: bool
    graded: float
    surrogate: SurrogateBackward


def _broadcast(first: torch.Size, *others: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes`` with a fast path for scalar or same-shape parameters (its general
    form costs tens of microseconds per call, a millisecond per training step of a small net)."""
    if all(len(shape) == 0 or shape == first for shape in others):
        return first
    return torch.broadcast_shapes(first, *others)


def _at(drive: torch.Tensor, t: int) -> torch.Tensor:
    return drive[t] if drive.shape[0] > 1 else drive[0]


def _zeros(shape, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(shape, dtype=like.dtype, device=like.device)


def _previous(stored: torch.Tensor, initial: torch.Tensor | None) -> torch.Tensor:
    """``[U0, U[0], ..., U[T−2]]``: the state each step starts from."""
    first = torch.zeros_like(stored[:1]) if initial is None else initial.unsqueeze(0).expand_as(stored[:1])
    return torch.cat((first, stored[:-1]))


def _spikes(potential: torch.Tensor, threshold: torch.Tensor, graded: float) -> torch.Tensor:
    spikes = torch.gt(potential, threshold, out=torch.empty_like(potential))
    return spikes if graded == 1.0 else spikes.mul_(graded)


def _reset_same_step(u: torch.Tensor, reset: torch.Tensor, threshold: torch.Tensor, mode: str) -> None:
    """In place: ``U − (S − R)·θ`` (subtract) or ``U − (S − R)·U`` (zero), S and R as 0/1."""
    correction = (u > threshold).to(u.dtype).sub_(reset.to(u.dtype))
    if mode == "subtract":
        u.sub_(correction.mul_(threshold))
    elif mode == "zero":
        u.sub_(correction.mul_(u))


def _reduce(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to a parameter's shape (scalar or per-neuron)."""
    return grad.sum().reshape(shape) if len(shape) == 0 else grad.sum_to_size(shape)


def _drive_grad(grad: torch.Tensor, drive_steps: int) -> torch.Tensor:
    return grad.sum(0, keepdim=True) if drive_steps == 1 and grad.shape[0] > 1 else grad


def _accumulate(*terms: torch.Tensor | None) -> torch.Tensor | None:
    """Left-to-right sum of the terms that are present."""
    total = None
    for term in terms:
        if term is not None:
            total = term if total is None else total + term
    return total


def _surrogate_terms(pre, threshold, grad_spikes, dyn: Dynamics):
    """``(σ'(V − θ) or None, a = σ'·g·gS or None)``; σ' alone is needed only by same-step resets."""
    shifted = pre - threshold
    slope = dyn.surrogate(shifted, torch.ones_like(shifted)) if dyn.same_step and dyn.reset != "none" else None
    if grad_spikes is None:
        return slope, None
    scaled = grad_spikes if dyn.graded == 1.0 else grad_spikes * dyn.graded
    return slope, (dyn.surrogate(shifted, scaled) if slope is None else scaled * slope)


def _same_step_factors(pre, reset, threshold, slope, dyn: Dynamics):
    """``k = dU_stored/dV`` and ``q = ∂U_stored/∂θ`` of a same-step reset (None for next_step)."""
    if not dyn.same_step or dyn.reset == "none":
        return None, None
    correction = (pre > threshold).to(pre.dtype) - reset
    if dyn.reset == "subtract":
        return 1 - threshold * slope, threshold * slope - correction
    return 1 - correction - pre * slope, pre * slope


def _threshold_grad(a, stored_grads, q, reset, grad_v, subtract: bool, shape) -> torch.Tensor:
    """``Σ (−a + G·q − R·gV)``: θ enters through the spike, a same-step reset and a subtractive reset."""
    total = _accumulate(None if a is None else -a, None if q is None else stored_grads * q,
                        -(reset * grad_v) if subtract else None)
    return _reduce(total if total is not None else torch.zeros_like(grad_v), shape)


def _reverse_next_step(a, grad_membranes, grad_last, m, per_step: bool, like: torch.Tensor):
    """``gV[t] = (a[t] + gM[t]) + m[t+1]·gV[t+1]``, accumulated in place in a buffer of our own.

    ``grad_last`` (the gradient of the carried last membrane) joins ``gM[T−1]``.
    """
    if a is not None:
        grad_v = a if grad_membranes is None else a.add_(grad_membranes)
    elif grad_membranes is not None:
        grad_v = grad_membranes.clone()
    else:
        grad_v = torch.zeros_like(like)
    if grad_last is not None:
        grad_v[-1].add_(grad_last)
    steps = grad_v.unbind(0)
    for t in range(len(steps) - 1, 0, -1):
        # One fused operation per step; a fused multiply-add may round m·gV differently from snnTorch's
        # separate product in the last bit, well inside the gradient contract (1e-5 relative).
        steps[t - 1].addcmul_(steps[t], m[t] if per_step else m)
    return grad_v, None


def _reverse_same_step(a, grad_membranes, grad_last, k, m, per_step: bool):
    """``G[t] = gM[t] + m[t+1]·gV[t+1]``, ``gV[t] = G[t]·k[t] + a[t]``; returns ``(gV, G)``."""
    stored_grads = torch.zeros_like(k) if grad_membranes is None else grad_membranes.clone()
    if grad_last is not None:
        stored_grads[-1].add_(grad_last)
    grad_v = torch.empty_like(k)
    for t in range(k.shape[0] - 1, -1, -1):
        if t < k.shape[0] - 1:
            stored_grads[t].add_(grad_v[t + 1] * (m[t + 1] if per_step else m))
        torch.mul(stored_grads[t], k[t], out=grad_v[t])
        if a is not None:
            grad_v[t].add_(a[t])
    return grad_v, stored_grads


def _lif_wants_reset(needs, dyn: Dynamics) -> bool:
    """Whether the LIF backward pass needs ``R[t]``: zero and same-step resets, θ's gradient."""
    return dyn.reset == "zero" or dyn.same_step or (needs[3] and dyn.reset == "subtract")


def _lif_wants_previous(ctx, dyn: Dynamics) -> bool:
    return _lif_wants_reset(ctx.needs_input_grad, dyn) or ctx.needs_input_grad[2]


def _cuba_wants_reset(needs, dyn: Dynamics) -> bool:
    """Whether the CubaLIF backward pass needs ``R[t]``: zero and same-step resets, θ's gradient."""
    return dyn.reset == "zero" or (dyn.same_step and dyn.reset != "none") or (needs[5] and dyn.reset == "subtract")


class LIFScan(torch.autograd.Function):
    """LIF/IF over a sequence: ``(D, U0 | None, β, θ, dyn) -> (spikes, membranes, last membrane)``.

    ``spikes`` and ``membranes`` are ``[T, B, *shape]``; the last membrane ``[B, *shape]`` is a copy
    of ``membranes[-1]`` for the state carried to the next chunk or call, so that its gradient arrives
    as one step instead of a zero-filled sequence.
    """

    @staticmethod
    def forward(ctx, drive, initial, beta, threshold, dyn: Dynamics):  # type: ignore[override]
        shape = (dyn.steps, *_broadcast(drive.shape[1:], threshold.shape, beta.shape))
        stored = drive.new_empty(shape)
        pre = drive.new_empty(shape) if dyn.same_step else stored
        spikes = None if dyn.same_step else drive.new_empty(shape)
        previous = _zeros(shape[1:], drive) if initial is None else initial
        flag = drive.new_empty(shape[1:])  # R = H(U' − θ) as 0/1 (or 1 − R for a zero reset)
        # Per-step views made once (unbind) rather than by indexing in the loop.
        pres, kept, drives = pre.unbind(0), stored.unbind(0), drive.unbind(0)
        fired = None if spikes is None else spikes.unbind(0)
        # With next-step timing and ungraded spikes the reset R[t] is the previous step's spike.
        reuse = fired is not None and dyn.graded == 1.0
        for t in range(dyn.steps):
            u = pres[t]
            # U' > θ is the same predicate as (U' − θ) > 0 for finite floats without flush-to-zero.
            if dyn.reset == "zero":
                torch.le(previous, threshold, out=flag)  # 1 − R
                torch.mul(previous, flag, out=u)  # (1 − R)·U'
                u.mul_(beta)
            else:
                torch.mul(beta, previous, out=u)
            u.add_(drives[t] if len(drives) > 1 else drives[0])
            if dyn.reset == "subtract":
                reset = fired[t - 1] if reuse and t > 0 else torch.gt(previous, threshold, out=flag)
                u.addcmul_(reset, threshold, value=-1)  # R·θ is exactly θ or 0: fusing cannot change the result
            if dyn.same_step:
                reset = (previous > threshold).to(u.dtype)
                kept[t].copy_(u)
                _reset_same_step(kept[t], reset, threshold, dyn.reset)
            else:
                torch.gt(u, threshold, out=fired[t])
            previous = kept[t]
        ctx.dyn = dyn
        ctx.drive_steps = drive.shape[0]
        ctx.has_initial = initial is not None
        ctx.set_materialize_grads(False)
        # U0 is needed only for the resets and β's gradient; not keeping it otherwise spares a step per chunk.
        ctx.save_for_backward(stored, pre if dyn.same_step else None, initial if _lif_wants_previous(ctx, dyn) else None,
                              beta, threshold)
        if spikes is None:
            spikes = _spikes(pre, threshold, dyn.graded)
        elif dyn.graded != 1.0:
            spikes.mul_(dyn.graded)
        return spikes, stored, stored[-1].clone()

    @staticmethod
    def backward(ctx, grad_spikes, grad_membranes, grad_last):  # type: ignore[override]
        stored, pre, initial, beta, threshold = ctx.saved_tensors
        dyn: Dynamics = ctx.dyn
        needs = ctx.needs_input_grad
        if grad_spikes is None and grad_membranes is None and grad_last is None:
            return None, None, None, None, None
        pre = stored if pre is None else pre
        wants_reset = _lif_wants_reset(needs, dyn)
        previous = _previous(stored, initial) if wants_reset or needs[2] else None
        reset = (previous > threshold).to(stored.dtype) if wants_reset else None
        slope, a = _surrogate_terms(pre, threshold, grad_spikes, dyn)
        k, q = _same_step_factors(pre, reset, threshold, slope, dyn)
        m = beta * (1 - reset) if dyn.reset == "zero" else beta
        # θ's gradient through the spikes, −Σ a, before the reverse loop reuses a's buffer.
        threshold_from_spikes = _reduce(-a, threshold.shape) if needs[3] and a is not None else None
        if k is None:
            grad_v, stored_grads = _reverse_next_step(a, grad_membranes, grad_last, m, dyn.reset == "zero", stored)
        else:
            grad_v, stored_grads = _reverse_same_step(a, grad_membranes, grad_last, k, m, dyn.reset == "zero")
        grad_beta = grad_threshold = None
        if needs[2]:
            kept = previous * (1 - reset) if dyn.reset == "zero" else previous
            grad_beta = _reduce(grad_v * kept, beta.shape)
        if needs[3]:
            rest = _threshold_grad(None, stored_grads, q, reset, grad_v, dyn.reset == "subtract", threshold.shape)
            grad_threshold = rest if threshold_from_spikes is None else threshold_from_spikes + rest
        grad_drive = _drive_grad(grad_v, ctx.drive_steps) if needs[0] else None
        grad_initial = None
        if needs[1] and ctx.has_initial:
            grad_initial = grad_v[0] * (m[0] if dyn.reset == "zero" else m)
        return grad_drive, grad_initial, grad_beta, grad_threshold, None


class CubaScan(torch.autograd.Function):
    """CubaLIF over a sequence: ``(I, J0, U0, α, β, θ, b, dyn) -> (spikes, currents, membranes, J[T−1], U[T−1])``.

    ``J = α·J' + I``; ``V = β·U' + (J + b)``; then the reset: subtract ``V − R·θ``, zero ``V − V·R``.
    Currents are kept for the backward pass only when ``alpha`` needs a gradient.
    """

    @staticmethod
    def forward(ctx, drive, current0, membrane0, alpha, beta, threshold, bias, dyn: Dynamics):  # type: ignore[override]
        parts = [drive.shape[1:], alpha.shape, beta.shape, threshold.shape] + ([] if bias is None else [bias.shape])
        shape = (dyn.steps, *_broadcast(*parts))
        currents = drive.new_empty(shape)
        stored = drive.new_empty(shape)
        pre = drive.new_empty(shape) if dyn.same_step else stored
        previous = _zeros(shape[1:], drive) if membrane0 is None else membrane0
        current = _zeros(shape[1:], drive) if current0 is None else current0
        for t in range(dyn.steps):
            reset = previous > threshold
            j = currents[t]
            torch.mul(alpha, current, out=j)
            j.add_(_at(drive, t))
            u = pre[t]
            torch.mul(beta, previous, out=u)
            u.add_(j if bias is None else j + bias)
            if dyn.reset == "subtract":
                u.sub_(reset * threshold)
            elif dyn.reset == "zero":
                u.sub_(u * reset)
            if dyn.same_step:
                stored[t].copy_(u)
                _reset_same_step(stored[t], reset, threshold, dyn.reset)
            previous, current = stored[t], j
        ctx.dyn = dyn
        ctx.drive_steps = drive.shape[0]
        ctx.initials = (current0 is not None, membrane0 is not None)
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.set_materialize_grads(False)
        needs = ctx.needs_input_grad
        kept_currents, kept_current0 = (currents, current0) if needs[3] else (None, None)
        kept_membrane0 = membrane0 if _cuba_wants_reset(needs, dyn) or needs[4] else None
        ctx.save_for_backward(stored, pre if dyn.same_step else None, kept_currents, kept_current0, kept_membrane0,
                              alpha, beta, threshold)
        return _spikes(pre, threshold, dyn.graded), currents, stored, currents[-1].clone(), stored[-1].clone()

    @staticmethod
    def backward(ctx, grad_spikes, grad_currents, grad_membranes, grad_current_last,  # type: ignore[override]
                 grad_membrane_last):
        stored, pre, currents, current0, membrane0, alpha, beta, threshold = ctx.saved_tensors
        dyn: Dynamics = ctx.dyn
        needs = ctx.needs_input_grad
        if all(g is None for g in (grad_spikes, grad_currents, grad_membranes, grad_current_last, grad_membrane_last)):
            return (None,) * 8
        pre = stored if pre is None else pre
        wants_reset = _cuba_wants_reset(needs, dyn)
        previous = _previous(stored, membrane0) if wants_reset or needs[4] else None
        reset = (previous > threshold).to(stored.dtype) if wants_reset else None
        slope, a = _surrogate_terms(pre, threshold, grad_spikes, dyn)
        k, q = _same_step_factors(pre, reset, threshold, slope, dyn)
        keep = 1 - reset if dyn.reset == "zero" else None
        grad_u = torch.zeros_like(stored)  # of U after the reset term, before a same-step reset
        grad_v = torch.empty_like(stored)  # of V = β·U' + (J + b)
        grad_j = torch.empty_like(stored)
        stored_grads = torch.zeros_like(stored) if k is not None else None
        carry_u, carry_j = grad_membrane_last, grad_current_last  # the carried last state joins step T − 1
        for t in range(dyn.steps - 1, -1, -1):
            g = _accumulate(None if grad_membranes is None else grad_membranes[t], carry_u)
            if k is not None and g is not None:
                stored_grads[t].copy_(g)
                g = g * k[t]
            g = _accumulate(g, None if a is None else a[t])
            if g is not None:
                grad_u[t].copy_(g)
            torch.mul(grad_u[t], keep[t], out=grad_v[t]) if keep is not None else grad_v[t].copy_(grad_u[t])
            carry_u = beta * grad_v[t]
            gj = _accumulate(grad_v[t], None if grad_currents is None else grad_currents[t], carry_j)
            grad_j[t].copy_(gj)
            carry_j = alpha * grad_j[t]
        grads = [
            _drive_grad(grad_j, ctx.drive_steps) if needs[0] else None,
            carry_j if needs[1] and ctx.initials[0] else None,
            carry_u if needs[2] and ctx.initials[1] else None,
            _reduce(grad_j * _previous(currents, current0), alpha.shape) if needs[3] else None,
            _reduce(grad_v * previous, beta.shape) if needs[4] else None,
            _threshold_grad(a, stored_grads, q, reset, grad_u, dyn.reset == "subtract", threshold.shape) if needs[5] else None,
            _reduce(grad_v, ctx.bias_shape) if needs[6] else None,
        ]
        return (*grads, None)


class LIScan(torch.autograd.Function):
    """Leaky integrator ``U = β·U' + D`` over a sequence: ``(D, U0 | None, β, steps) -> (membranes, U[T−1])``."""

    @staticmethod
    def forward(ctx, drive, initial, beta, steps: int):  # type: ignore[override]
        shape = (steps, *_broadcast(drive.shape[1:], beta.shape))
        stored = drive.new_empty(shape)
        previous = _zeros(shape[1:], drive) if initial is None else initial
        for t in range(steps):
            u = stored[t]
            torch.mul(beta, previous, out=u)
            u.add_(_at(drive, t))
            previous = u
        ctx.drive_steps = drive.shape[0]
        ctx.steps = steps
        ctx.has_initial = initial is not None
        ctx.set_materialize_grads(False)
        learn = ctx.needs_input_grad[2]
        ctx.save_for_backward(stored if learn else None, initial if learn else None, beta)
        return stored, stored[-1].clone()

    @staticmethod
    def backward(ctx, grad_membranes, grad_last):  # type: ignore[override]
        stored, initial, beta = ctx.saved_tensors
        if grad_membranes is None and grad_last is None:
            return None, None, None, None
        if grad_membranes is None:
            grad_v = grad_last.new_empty((ctx.steps, *grad_last.shape))
        else:
            grad_v = torch.empty_like(grad_membranes)
        carry = grad_last
        for t in range(grad_v.shape[0] - 1, -1, -1):
            out = grad_v[t]
            if grad_membranes is None:
                out.copy_(carry)  # only the carried last membrane has a gradient
            elif carry is None:
                out.copy_(grad_membranes[t])
            else:
                torch.add(grad_membranes[t], carry, out=out)
            carry = beta * out
        needs = ctx.needs_input_grad
        grad_beta = _reduce(grad_v * _previous(stored, initial), beta.shape) if needs[2] else None
        grad_drive = _drive_grad(grad_v, ctx.drive_steps) if needs[0] else None
        return grad_drive, (carry if needs[1] and ctx.has_initial else None), grad_beta, None


__all__ = ["Dynamics", "LIFScan", "CubaScan", "LIScan"]
