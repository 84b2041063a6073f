"""Numba kernels of the synapses (Linear, Conv1d/Conv2d), called by the generated per-graph modules.

Every synapse is a sum of weighted rows added to an output vector one at a time, in a fixed order:
``y[j] = (((0 + v₀·r₀[j]) + v₁·r₁[j]) + …)``. Two kernels do all the arithmetic:

* :func:`nonzeros` lists the nonzero inputs of a vector (their row offsets and values); skipping a
  zero changes no sum (it would add ±0 to an accumulator that is never −0), so an event-driven
  synapse's cost follows activity. It tests 64 inputs at a time with a vectorised compare into a bit
  mask and then visits only the set bits, so silent inputs cost a fraction of a cycle each.
* :func:`accumulate` adds listed rows of a flat weight table into ``y``, eight rows per pass over
  ``y`` (each ``y[j]`` still receives its terms one by one, in list order, so this is exactly "add the
  rows one after the other"); the inner loop runs over contiguous memory, so LLVM vectorises it.
* :func:`spike_masks` lists a whole spike-train input (only 0 and 1) before the kernel runs, as bit
  masks of its rows; :func:`linear_spikes` adds the rows of the set bits, so an event-driven Linear
  on that input never reads the input rows themselves (see docs/numba.md, "Spike-train inputs").

Linear: the rows are those of ``Wᵀ``. Convolutions (outputs channels-last, see layout.py) use one of:

* :func:`conv_band` (event-driven, stride and dilation 1 along the height): an input row ``ih``
  reaches the output rows ``ih + p − kh``, a contiguous band of the channels-last output, so every
  input element of the row has one weight row covering that whole band (zeros where its kernel
  does not reach, built at compile time). The nonzero inputs of an input row then add their band
  rows exactly as a Linear adds its rows: long vector loops instead of one short loop per tap.
* :func:`conv_planes` (dense, unit stride): every (input channel, kernel offset) tap adds a shifted
  copy of the zero-padded input plane, scaled by one weight, to an output plane computed at the
  padded width (the extra columns are dropped); again long contiguous loops, eight taps per pass.
* ``kernels.conv_rows`` and ``kernels.conv`` (scatter per input element) for the rest: large maps
  whose band table would not fit in cache, strided or dilated heights, strided dense convolutions.

Summation order of a convolution: input rows in ascending order, within a row in storage order
(``(iw, c)`` channels-last, ``(c, iw)`` canonical), in every one of these kernels but the fallbacks,
so the dense and the event-driven paths agree bit for bit on any data.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

ZERO = np.float32(0.0)
#: Every bit of a float32 but the sign: zero for +0.0 and −0.0 only.
MAGNITUDE = np.uint32(0x7FFFFFFF)

jit = njit(cache=True, nogil=True, error_model="numpy")


@intrinsic
def _trailing_zeros(typing_context, value):
    """``llvm.cttz``: index of the lowest set bit of a nonzero integer (one instruction)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return value(value), codegen


@intrinsic
def _nonzero_mask64(typing_context, bits, start):
    """Bit ``j`` of the result: whether ``bits[start + j] & MAGNITUDE`` is nonzero, for the 64 words
    from ``start`` (which must exist) of a contiguous uint32 vector. One ``<64 x i32>`` load, mask and
    compare, whose ``<64 x i1>`` result is the integer: LLVM emits a few vector tests into mask
    registers (``vptestmd`` + ``kmov`` with AVX-512), where the scalar loop shifts and ORs 64 times."""
    if not (
        isinstance(bits, types.Array) and bits.dtype == types.uint32 and bits.ndim == 1 and bits.layout == "C"
        and isinstance(start, types.Integer)
    ):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        vector = ir.VectorType(ir.IntType(32), 64)
        pointer = builder.bitcast(builder.gep(data, [args[1]]), vector.as_pointer())
        words = builder.and_(builder.load(pointer, align=4), ir.Constant(vector, [int(MAGNITUDE)] * 64))
        flags = builder.icmp_unsigned("!=", words, ir.Constant(vector, [0] * 64))
        return builder.bitcast(flags, ir.IntType(64))  # element j is bit j

    return types.uint64(bits, start), codegen


@jit
def nonzeros(x, ev_i, ev_v, n, base, stride, skip_zeros):
    """Append ``(base + stride·j, x[j])`` for every nonzero ``x[j]`` (every ``x[j]`` if not
    ``skip_zeros``: a dense synapse), in order, at position ``n`` of the lists ``ev_i``/``ev_v``;
    returns the new length. ``x`` is a contiguous vector."""
    if not skip_zeros:
        for j in range(x.size):
            ev_i[n + j] = base + stride * j
            ev_v[n + j] = x[j]
        return n + x.size
    bits = x.view(np.uint32)
    size = x.size
    start = 0
    while start < size:
        if start + 64 <= size:
            mask = _nonzero_mask64(bits, start)
        else:  # the last, partial block
            mask = np.uint64(0)
            for j in range(size - start):
                mask |= np.uint64((bits[start + j] & MAGNITUDE) != 0) << np.uint64(j)
        while mask != 0:
            j = start + np.int64(_trailing_zeros(mask))
            ev_i[n] = base + stride * j
            ev_v[n] = x[j]
            n += 1
            mask &= mask - np.uint64(1)
        start += 64
    return n


@jit
def accumulate(src, offsets, values, k, n, y):
    """``y[j] += values[k]·src[offsets[k] + j]`` for list entries ``k .. n − 1`` in order, each term
    added on its own (no fused multiply-add), eight rows per pass over ``y``."""
    size = y.size
    while k + 8 <= n:
        r0 = src[offsets[k] : offsets[k] + size]  # views: the inner index runs from 0, so LLVM vectorizes
        r1 = src[offsets[k + 1] : offsets[k + 1] + size]
        r2 = src[offsets[k + 2] : offsets[k + 2] + size]
        r3 = src[offsets[k + 3] : offsets[k + 3] + size]
        r4 = src[offsets[k + 4] : offsets[k + 4] + size]
        r5 = src[offsets[k + 5] : offsets[k + 5] + size]
        r6 = src[offsets[k + 6] : offsets[k + 6] + size]
        r7 = src[offsets[k + 7] : offsets[k + 7] + size]
        v0, v1, v2, v3 = values[k], values[k + 1], values[k + 2], values[k + 3]
        v4, v5, v6, v7 = values[k + 4], values[k + 5], values[k + 6], values[k + 7]
        for j in range(size):
            y[j] = (((((((y[j] + v0 * r0[j]) + v1 * r1[j]) + v2 * r2[j]) + v3 * r3[j]) + v4 * r4[j]) + v5 * r5[j]) + v6 * r6[j]) + v7 * r7[j]
        k += 8
    while k + 2 <= n:  # the rest two at a time (a shorter kernel than 4-2-1 passes: faster to compile)
        r0 = src[offsets[k] : offsets[k] + size]
        r1 = src[offsets[k + 1] : offsets[k + 1] + size]
        v0, v1 = values[k], values[k + 1]
        for j in range(size):
            y[j] = (y[j] + v0 * r0[j]) + v1 * r1[j]
        k += 2
    if k < n:
        r0 = src[offsets[k] : offsets[k] + size]
        v0 = values[k]
        for j in range(size):
            y[j] = y[j] + v0 * r0[j]


#: Bit patterns of the two values of a spike train.
ONE_BITS = np.uint32(0x3F800000)


@jit
def spike_masks(x, rows, masks):
    """List a spike-train input for :func:`linear_spikes`: for each of the ``rows`` rows of the flat
    float32 array ``x`` (``[T·B, n]`` stored end to end), ``masks`` receives ``⌈n/64⌉`` words whose
    bit ``j`` marks ``x[row, 64·w + j] != 0``. Stops at the first row holding anything but +0.0 and
    1.0 (graded values, −0.0, NaN or ±inf; such an input is read in place instead) and returns the
    number of rows listed (all of them, finite by construction, or those before that row). One
    sequential pass, which also brings the data into the cache (serial: two threads were slower on
    the 2-core development VM, whose memory bandwidth one thread fills)."""
    bits = x.view(np.uint32)
    n = bits.size // max(rows, 1)
    words = (n + 63) // 64
    for r in range(rows):
        row = bits[r * n : (r + 1) * n]
        other = 0
        for j in range(n):  # vectorised: a flag, no early exit inside the row
            other |= (row[j] != 0) & (row[j] != ONE_BITS)
        if other:
            return r
        out = masks[r * words : (r + 1) * words]
        for w in range(words):
            start = w * 64
            if start + 64 <= n:
                out[w] = _nonzero_mask64(row, start)
            else:  # the last, partial block
                mask = np.uint64(0)
                for j in range(n - start):
                    mask |= np.uint64(row[start + j] != 0) << np.uint64(j)
                out[w] = mask
    return rows


@jit
def linear_spikes(masks, weight, y, ev_i, ev_v):
    """``y = x @ weight`` for a spike vector ``x`` given by its bit masks (:func:`spike_masks`): the
    rows of the set bits, in input order, each times 1.0, so the sums are exactly those of
    :func:`linear` on ``x`` itself; the input row is never read."""
    n_out = y.size
    for o in range(n_out):
        y[o] = ZERO
    n = 0
    for w in range(masks.size):
        mask = masks[w]
        while mask != 0:
            ev_i[n] = (w * 64 + np.int64(_trailing_zeros(mask))) * n_out
            ev_v[n] = np.float32(1.0)
            n += 1
            mask &= mask - np.uint64(1)
    accumulate(weight, ev_i, ev_v, 0, n, y)


@jit
def linear(x, weight, y, ev_i, ev_v, event_driven):
    """``y = x @ weight``: ``weight`` is ``Wᵀ`` flattened (row ``i`` at ``i·n_out``); rows added in
    input order, only those of nonzero inputs when event-driven."""
    n_out = y.size
    for o in range(n_out):
        y[o] = ZERO
    n = nonzeros(x, ev_i, ev_v, 0, 0, n_out, event_driven)
    accumulate(weight, ev_i, ev_v, 0, n, y)


@jit
def conv_band(x, band, y, geometry, ev_i, ev_v, event_driven):
    """Convolution with unit stride and dilation along the height, by band rows (see the module
    docstring). ``band`` is flat: input element ``e`` of a row (in storage order) owns the row
    ``band[e·KH·R : (e + 1)·KH·R]``, block ``r`` of which (``R`` floats) goes to output row
    ``ih + p − (KH − 1) + r``. ``geometry``: input height, then a row as ``segments`` runs of
    ``length`` contiguous elements ``segment_stride`` apart starting at ``ih·row_stride``, then output
    height, output row size ``R`` (width × channels), kernel height and padding along the height."""
    h, segments, segment_stride, length, row_stride = geometry[0], geometry[1], geometry[2], geometry[3], geometry[4]
    oh_n, row_out, kh_n, pad = geometry[5], geometry[6], geometry[7], geometry[8]
    width = kh_n * row_out
    for p in range(y.size):
        y[p] = ZERO
    for ih in range(h):
        top = ih + pad - (kh_n - 1)  # output row of band block 0
        lo = max(top, 0)
        hi = min(ih + pad + 1, oh_n)
        if lo >= hi:
            continue
        first = (lo - top) * row_out  # band blocks above the output are skipped
        n = 0
        for s in range(segments):
            start = ih * row_stride + s * segment_stride
            run = x[start : start + length]
            n = nonzeros(run, ev_i, ev_v, n, s * length * width + first, width, event_driven)
        if n:
            accumulate(band, ev_i, ev_v, 0, n, y[lo * row_out : hi * row_out])


@jit
def conv_planes(x, y, geometry, offsets, weights, padded, plane):
    """Dense convolution with unit stride, tap by tap over whole planes (see the module docstring).

    The input is copied zero-padded into ``padded`` (canonical, ``C × Hp × Wp``; skipped when it is
    canonical and unpadded). Output channel ``o`` sums its taps ``offsets[o, :]`` (where the tap's
    window starts in the padded input) times ``weights[o, :]``, in tap order, into ``plane`` (output
    rows at the padded width ``Wp``), whose first ``OW`` columns then go to ``y`` (channels-last).
    ``geometry``: input ``C, H, W, sc, sh, sw``, then ``Hp, Wp``, padding ``ph, pw``, output
    ``OH, OW, O``, and whether the input is canonical and unpadded.
    """
    c_n, h, w, sc, sh, sw = geometry[0], geometry[1], geometry[2], geometry[3], geometry[4], geometry[5]
    hp, wp, ph, pw = geometry[6], geometry[7], geometry[8], geometry[9]
    oh_n, ow_n, o_n, direct = geometry[10], geometry[11], geometry[12], geometry[13]
    source = x
    if not direct:
        for p in range(padded.size):
            padded[p] = ZERO
        for c in range(c_n):
            for ih in range(h):
                row = padded[(c * hp + ih + ph) * wp + pw : (c * hp + ih + ph) * wp + pw + w]
                for iw in range(w):
                    row[iw] = x[c * sc + ih * sh + iw * sw]
        source = padded
    taps = offsets.shape[1]
    length = (oh_n - 1) * wp + ow_n
    target = plane[:length]
    for o in range(o_n):
        for p in range(length):
            target[p] = ZERO
        accumulate(source, offsets[o], weights[o], 0, taps, target)
        for oh in range(oh_n):
            for ow in range(ow_n):
                y[(oh * ow_n + ow) * o_n + o] = target[oh * wp + ow]


__all__ = ["nonzeros", "accumulate", "spike_masks", "linear_spikes", "linear", "conv_band", "conv_planes", "MAGNITUDE"]
