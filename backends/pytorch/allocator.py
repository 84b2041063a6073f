"""glibc malloc and CPU training: let freed tensors be recycled instead of returned to the kernel.

PyTorch allocates CPU tensors with ``malloc``. glibc serves a request of at least ``M_MMAP_THRESHOLD``
bytes with a fresh ``mmap`` and gives it back with ``munmap`` when freed, and returns free memory at
the top of the heap to the kernel once more than ``M_TRIM_THRESHOLD`` bytes are free there. Both
thresholds start small (128 KiB) and only grow when a large mapped block is freed. A training step
frees everything it kept for the backward pass, so with the starting thresholds each step asks the kernel for
that memory again and pays a page fault per 4 KiB page touched (about 2 µs each: ~10 ms per step of
the seed CNN, a tenth of the step). snnTorch's per-step tensors are small and recycled, so it barely
notices.

:func:`settle_heap` (called by the torch backend before its first CPU training step) lets glibc adapt
as it is designed to: when a mapped block is freed, glibc raises the mmap threshold to its size and
the trim threshold to twice that. Allocating and freeing one 24 MiB block (never touched, so no page
is faulted in) does that once for all, as it would after any program freed such a block: requests up
to 24 MiB then come from the heap and up to 48 MiB of free heap stays mapped. On the seed CNN this
takes a step from ~6,000 page faults to a handful (152 → 128 ms). Where the thresholds were fixed
(``MALLOC_*_`` environment variables, ``mallopt``, :func:`keep_freed_memory`) glibc does not adapt,
and nothing changes; nor outside glibc.

:func:`keep_freed_memory` raises both thresholds for the whole process (``mallopt``), so that freed
tensors of up to ``mmap_threshold`` bytes are recycled by malloc and up to ``trim_threshold`` free
bytes stay mapped. The cost: the process keeps up to ``trim_threshold`` bytes of freed memory, and
fixing the thresholds turns off glibc's own adjustment of them. It is opt-in, affects the whole
process (every library that uses malloc), cannot be undone, and does nothing except on Linux with
glibc. The same effect without code: ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456``
in the environment of the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

from snnir.errors import InputError

#: mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: glibc's own ceiling for the dynamic mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
DEFAULT_MMAP_THRESHOLD = 32 << 20
DEFAULT_TRIM_THRESHOLD = 256 << 20
#: The block :func:`settle_heap` frees: with malloc's bookkeeping still under the 32 MiB ceiling up to
#: which glibc adapts its thresholds (16 MiB and more measured to remove the faults of the seed CNN).
SETTLING_BYTES = 24 << 20

_settled = False


def _glibc():
    """The C library if it is glibc (it has ``gnu_get_libc_version`` and ``mallopt``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc


def keep_freed_memory(mmap_threshold: int = DEFAULT_MMAP_THRESHOLD, trim_threshold: int = DEFAULT_TRIM_THRESHOLD) -> bool:
    """Make glibc recycle freed tensors instead of unmapping them (see the module docstring).

    ``mmap_threshold``: requests below it come from malloc's heap (at most 32 MiB, glibc's maximum);
    ``trim_threshold``: free bytes kept at the top of the heap. Returns True when applied, False on
    systems without glibc (nothing changes there).
    """
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
            raise InputError(f"keep_freed_memory: {name} must be a positive int below 2**31, found {value!r}")
    if mmap_threshold > DEFAULT_MMAP_THRESHOLD:
        raise InputError(f"keep_freed_memory: mmap_threshold is at most {DEFAULT_MMAP_THRESHOLD} bytes in glibc, "
                         f"found {mmap_threshold}")
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))


def settle_heap() -> None:
    """Free one never-touched ``SETTLING_BYTES`` block, once per process, so that glibc raises its
    adaptive malloc thresholds (see the module docstring)."""
    global _settled
    if not _settled:
        _settled = True
        torch.empty(SETTLING_BYTES, dtype=torch.uint8)  # mapped, untouched and unmapped at once


__all__ = ["keep_freed_memory", "settle_heap"]
