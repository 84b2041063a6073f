"""Numba kernels of the primitives, called by the generated per-graph modules (synapses: synapses.py).

Each kernel updates one sample's flat float32 buffers in place. They are compiled once per machine
(numba's disk cache) and linked into every generated kernel that calls them, which keeps compiling a
new graph structure to a second or two: the generated code only sequences calls.

Numerics: one float32 operation per expression, in the order of ``snnir/reference/neurons.py`` and
``kernels.py`` (docs/semantics.md); no fastmath, so LLVM never fuses a multiply and an add.
``conv_rows`` and ``conv`` are the scatter convolutions used where synapses.py's band and plane
kernels do not apply; they add a synapse's inputs' contributions in input order, then the bias.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

ZERO = np.float32(0.0)
ONE = np.float32(1.0)
NEG_INF = np.float32(-np.inf)

#: Reset codes of the neuron kernels (``LIF.reset``).
RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}

# numpy's error model: no ZeroDivisionError checks inside loops (divisors are never zero here).
jit = njit(cache=True, nogil=True, error_model="numpy")


# -- data movement -----------------------------------------------------------------------------------
@intrinsic
def borrowed(typing_context, array):
    """The same array without its memory-manager reference (meminfo and parent null).

    Numba counts references to every array view it creates and passes (an atomic add and subtract
    on the buffer's meminfo per slice and per callee argument: ~100 per step of a small network,
    ~0.4 us). A view of a borrowed array carries the null meminfo, so those counts become null
    tests. Only for arrays the caller keeps alive for the whole call and that never escape it:
    the generated ``samples`` borrows its arguments, whose owners are the Python caller's."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        value = context.make_array(signature.args[0])(context, builder, args[0])
        value.meminfo = context.get_constant_null(types.MemInfoPointer(types.voidptr))
        value.parent = context.get_constant_null(types.pyobject)
        return value._getvalue()

    return array(array), codegen


@jit
def copy_into(dst, src):
    for i in range(dst.size):
        dst[i] = src[i]


@jit
def add_into(dst, src):
    """``dst = dst + src``: one more edge of a fan-in sum, added after the previous ones."""
    for i in range(dst.size):
        dst[i] = dst[i] + src[i]


@jit
def gather_into(dst, src, index):
    """``dst[i] = src[index[i]]``: read ``src`` in another storage order (see layout.py)."""
    for i in range(dst.size):
        dst[i] = src[index[i]]


@jit
def gather_add(dst, src, index):
    for i in range(dst.size):
        dst[i] = dst[i] + src[index[i]]


@jit
def record_into(record, offset, step, batch, sample, value):
    """Write ``value`` at ``[step, sample]`` of the ``[T, B, n]`` region starting at ``offset``."""
    start = offset + (step * batch + sample) * value.size
    target = record[start : start + value.size]
    for j in range(value.size):
        target[j] = value[j]


@jit
def record_gather(record, offset, step, batch, sample, value, index):
    """:func:`record_into` for a value stored in another order: canonical element j is ``value[index[j]]``."""
    start = offset + (step * batch + sample) * index.size
    target = record[start : start + index.size]
    for j in range(index.size):
        target[j] = value[index[j]]


@jit
def all_finite(values):
    """No NaN or infinity in a float32 array: an all-ones exponent marks both. Integer operations
    only, so the loop vectorizes (a float test with an early exit would not)."""
    bits = values.ravel().view(np.int32)
    found = 0
    for i in range(bits.size):
        found |= (bits[i] & 0x7F800000) == 0x7F800000
    return found == 0


# -- synapses (the scatter convolutions; the others are in synapses.py) ------------------------------
@jit
def add_bias(y, bias):
    for o in range(y.size):
        y[o] = y[o] + bias[o]


@jit
def conv(x, weight, y, geometry, taps_h, taps_w, event_driven):
    """Convolution as a scatter: every (nonzero) input element adds its kernel patch to the outputs
    it reaches; ``y`` is channels-last, so each patch row is a contiguous run of output channels.

    ``weight[c, kh, kw, j]`` is what input channel ``c`` adds at kernel offset ``(kh, kw)`` to output
    channel ``g0 + j`` of its group. ``taps_h[ih, kh]`` is the output row input row ``ih`` reaches
    through kernel row ``kh`` (-1: none; stride, padding and dilation are folded in), ``taps_w``
    likewise for columns. ``geometry``: input ``C, H, W`` and storage strides ``sc, sh, sw``, then
    output width and channels, and channels per group in and out.
    """
    c_in, h, w, sc, sh, sw = geometry[0], geometry[1], geometry[2], geometry[3], geometry[4], geometry[5]
    ow_n, c_out, in_group, out_group = geometry[6], geometry[7], geometry[8], geometry[9]
    kh_n, kw_n = weight.shape[1], weight.shape[2]
    for p in range(y.size):
        y[p] = ZERO
    for c in range(c_in):
        g0 = (c // in_group) * out_group
        for ih in range(h):
            for iw in range(w):
                v = x[c * sc + ih * sh + iw * sw]
                if event_driven and v == ZERO:
                    continue
                for kh in range(kh_n):
                    oh = taps_h[ih, kh]
                    if oh < 0:
                        continue
                    for kw in range(kw_n):
                        ow = taps_w[iw, kw]
                        if ow < 0:
                            continue
                        base = (oh * ow_n + ow) * c_out + g0
                        segment = y[base : base + out_group]
                        row = weight[c, kh, kw]
                        for j in range(out_group):
                            segment[j] = segment[j] + v * row[j]


@jit
def conv_rows(x, weight, y, geometry, taps_h, ev_c, ev_v, event_driven):
    """:func:`conv` for the common case of one group, unit stride and unit dilation along the width.

    Then an input element reaches, through kernel row ``kh``, a contiguous run of output columns, and
    in channels-last storage those outputs (all channels) are one contiguous segment of ``y``. With
    ``weight[c, kh, r·O + o]`` holding kernel column ``kw = KW − 1 − r`` (columns reversed), each
    (input position, kernel row) pair is one long vector loop over that segment, adding the patches
    of the position's (nonzero) input channels two at a time, in channel order.
    ``geometry``: input ``C, H, W, sc, sh, sw``, output width and channels, kernel width and padding.
    """
    c_in, h, w, sc, sh, sw = geometry[0], geometry[1], geometry[2], geometry[3], geometry[4], geometry[5]
    ow_n, c_out, kw_n, p_w = geometry[6], geometry[7], geometry[8], geometry[9]
    kh_n = weight.shape[1]
    for p in range(y.size):
        y[p] = ZERO
    for ih in range(h):
        for iw in range(w):
            first = iw + p_w - (kw_n - 1)  # output column of r = 0
            r_lo = max(0, -first)
            r_hi = min(kw_n, ow_n - first)
            if r_lo >= r_hi:
                continue
            n = 0
            for c in range(c_in):
                v = x[c * sc + ih * sh + iw * sw]
                ev_c[n] = c
                ev_v[n] = v
                n += (v != ZERO) or not event_driven
            start, length = r_lo * c_out, (r_hi - r_lo) * c_out
            for kh in range(kh_n):
                oh = taps_h[ih, kh]
                if oh < 0 or n == 0:
                    continue
                base = (oh * ow_n + first + r_lo) * c_out
                segment = y[base : base + length]  # views: the inner index runs from 0, so LLVM vectorizes
                k = 0
                while k + 2 <= n:
                    row0 = weight[ev_c[k], kh, start : start + length]
                    row1 = weight[ev_c[k + 1], kh, start : start + length]
                    v0, v1 = ev_v[k], ev_v[k + 1]
                    for m in range(length):
                        segment[m] = (segment[m] + v0 * row0[m]) + v1 * row1[m]
                    k += 2
                if k < n:
                    row0 = weight[ev_c[k], kh, start : start + length]
                    v0 = ev_v[k]
                    for m in range(length):
                        segment[m] = segment[m] + v0 * row0[m]


# -- pooling and elementwise -----------------------------------------------------------------------
@jit
def pool(x, y, geometry, take_max):
    """Window maximum (``take_max``) or sum; padded positions are skipped: they never win a max and
    add zero to a sum. ``geometry``: input ``C, H, W, sc, sh, sw``, output ``OH, OW`` and strides
    ``oc, ohs, ows``, then kernel, stride and padding (h, w)."""
    c_n, h, w, sc, sh, sw = geometry[0], geometry[1], geometry[2], geometry[3], geometry[4], geometry[5]
    oh_n, ow_n, oc, ohs, ows = geometry[6], geometry[7], geometry[8], geometry[9], geometry[10]
    kh_n, kw_n, s_h, s_w, p_h, p_w = geometry[11], geometry[12], geometry[13], geometry[14], geometry[15], geometry[16]
    for c in range(c_n):
        for oh in range(oh_n):
            for ow in range(ow_n):
                acc = NEG_INF if take_max else ZERO
                for kh in range(kh_n):
                    ih = oh * s_h - p_h + kh
                    if ih < 0 or ih >= h:
                        continue
                    for kw in range(kw_n):
                        iw = ow * s_w - p_w + kw
                        if iw < 0 or iw >= w:
                            continue
                        v = x[c * sc + ih * sh + iw * sw]
                        if take_max:
                            acc = v if v > acc else acc
                        else:
                            acc = acc + v
                y[c * oc + oh * ohs + ow * ows] = acc


@jit
def pool_channels_last(x, y, geometry, take_max):
    """:func:`pool` on channels-last storage: the channel loop is innermost and contiguous, so each
    window position updates all channels at once (same values, same order per channel)."""
    c_n, h, w = geometry[0], geometry[1], geometry[2]
    oh_n, ow_n = geometry[6], geometry[7]
    kh_n, kw_n, s_h, s_w, p_h, p_w = geometry[11], geometry[12], geometry[13], geometry[14], geometry[15], geometry[16]
    for oh in range(oh_n):
        for ow in range(ow_n):
            out = y[(oh * ow_n + ow) * c_n : (oh * ow_n + ow + 1) * c_n]  # views: vectorizable loops
            for c in range(c_n):
                out[c] = NEG_INF if take_max else ZERO
            for kh in range(kh_n):
                ih = oh * s_h - p_h + kh
                if ih < 0 or ih >= h:
                    continue
                for kw in range(kw_n):
                    iw = ow * s_w - p_w + kw
                    if iw < 0 or iw >= w:
                        continue
                    src = x[(ih * w + iw) * c_n : (ih * w + iw + 1) * c_n]
                    for c in range(c_n):
                        v = src[c]
                        if take_max:
                            out[c] = v if v > out[c] else out[c]
                        else:
                            out[c] = out[c] + v


@jit
def divide(y, divisor):
    """Average pooling's last step: the window sum divided (not multiplied by a reciprocal)."""
    for i in range(y.size):
        y[i] = y[i] / divisor


@jit
def scale(x, factor, y):
    for i in range(y.size):
        y[i] = x[i] * factor[i]


@jit
def threshold(x, theta, y):
    """``y = H(x − θ)`` with ``H(z) = 1 if z > 0 else 0``."""
    for i in range(y.size):
        y[i] = ONE if x[i] - theta[i] > ZERO else ZERO


# -- neurons ---------------------------------------------------------------------------------------
@jit
def lif(x, membrane, beta, theta, bias, graded, y, reset_mode, same_step):
    """LIF/IF step. ``R = H(U' − θ)``, ``D = I + b`` (``bias`` empty: ``D = I``); then
    subtract ``U = (βU' + D) − Rθ``, zero ``U = β((1 − R)U') + D``, none ``U = βU' + D``;
    ``S = H(U − θ)``; same-step timing stores ``U − (S − R)θ`` (subtract) or ``U − (S − R)U`` (zero);
    output ``g·S``."""
    has_bias = bias.size > 0
    for i in range(y.size):
        prev = membrane[i]
        drive = x[i] + bias[i] if has_bias else x[i]
        reset = ONE if prev - theta[i] > ZERO else ZERO
        if reset_mode == 1:
            u = beta[i] * ((ONE - reset) * prev) + drive
        else:
            u = beta[i] * prev + drive
            if reset_mode == 0:
                u = u - reset * theta[i]
        spike = ONE if u - theta[i] > ZERO else ZERO
        if same_step and reset_mode == 0:
            u = u - (spike - reset) * theta[i]
        elif same_step and reset_mode == 1:
            u = u - (spike - reset) * u
        membrane[i] = u
        y[i] = spike * graded


@jit
def cuba_lif(x, current, membrane, alpha, beta, theta, bias, graded, y, reset_mode, same_step):
    """CubaLIF step. ``R = H(U' − θ)``; ``J = αJ' + I``; ``U = βU' + (J + b)``; subtract ``U − Rθ``,
    zero ``U − U·R`` (the whole new membrane); then fire and correct as :func:`lif`."""
    has_bias = bias.size > 0
    for i in range(y.size):
        prev = membrane[i]
        reset = ONE if prev - theta[i] > ZERO else ZERO
        j = alpha[i] * current[i] + x[i]
        u = beta[i] * prev + (j + bias[i] if has_bias else j)
        if reset_mode == 0:
            u = u - reset * theta[i]
        elif reset_mode == 1:
            u = u - u * reset
        spike = ONE if u - theta[i] > ZERO else ZERO
        if same_step and reset_mode == 0:
            u = u - (spike - reset) * theta[i]
        elif same_step and reset_mode == 1:
            u = u - (spike - reset) * u
        current[i] = j
        membrane[i] = u
        y[i] = spike * graded


@jit
def li(x, membrane, beta, bias, y):
    """Leaky integrator ``U = βU' + D``; the output is the membrane."""
    has_bias = bias.size > 0
    for i in range(y.size):
        u = beta[i] * membrane[i] + (x[i] + bias[i] if has_bias else x[i])
        membrane[i] = u
        y[i] = u


__all__ = [
    "RESET_CODES",
    "copy_into",
    "add_into",
    "gather_into",
    "gather_add",
    "record_into",
    "record_gather",
    "all_finite",
    "add_bias",
    "conv",
    "conv_rows",
    "pool",
    "pool_channels_last",
    "divide",
    "scale",
    "threshold",
    "lif",
    "cuba_lif",
    "li",
]
