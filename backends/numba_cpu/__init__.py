"""The numba backend: event-driven CPU inference that needs neither torch nor a GPU.

``snnir.compile(graph, "numba")`` generates one Python module per graph *structure* (see
:mod:`.generator`), writes it into a cache directory and lets numba compile it, caching the machine
code on disk, so a second process with the same structure starts in well under a second. Weights are
run-time arguments: retraining never recompiles. The kernel runs the whole time loop for each
sample, in parallel over the batch (``prange``), in float32, bit-identical to the reference
interpreter on dyadic data (the neuron updates keep its exact operation order; no fastmath).

Synapses (Linear, Conv) fed by spikes are event-driven: they add only the weight rows (kernel
patches) of inputs that are nonzero, so their cost follows activity; dense ones fed straight by a
graph input run as one BLAS product (numpy) over the batch and all steps before the kernel.
Nothing here imports torch.

Options of ``compile``:
    event_driven: None (the compiler decides: a synapse is event-driven when every source is
        spiking, a ``sequence`` input, or zero-preserving (pool, Flatten, Scale...) of those), True,
        False, or ``{node: bool}`` for some synapses.
    cache_dir: where generated modules and compiled kernels live (default ``$SNNIR_CACHE_DIR`` or
        ``~/.cache/snnir/numba``).
    threads: threads for the batch loop (default: numba's current setting, i.e. ``NUMBA_NUM_THREADS``
        or ``numba.set_num_threads``); it is set around each call and restored after.
    parallel: force the ``prange`` driver (True) or the serial loop (False); default: parallel when
        the batch has at least two samples per thread.
    overrides: ``{NodeKind: rule}`` replacing emit rules (see :mod:`.rules`).
"""

from __future__ import annotations

from typing import Any, Mapping

from snnir.optional import require

require("numba", "numba", "snnir.backends.numba_cpu")

import numba

from snnir.errors import InputError
from snnir.ir.graph import Graph

from .cache import default_cache_dir, load_module
from .generator import Generator, Program
from .model import NumbaModel
from .rules import RULES

def _check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    limit = numba.config.NUMBA_NUM_THREADS
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= limit:
        raise InputError(
            f"threads must be an integer from 1 to {limit} (NUMBA_NUM_THREADS), found {threads!r}; "
            "numba cannot use more threads than it started with"
        )
    return threads


class NumbaBackend:
    """``snnir.compile(graph, "numba", **options)``; see the module docstring for the options."""

    name = "numba"
    extra = "numba"
    rules = RULES
    #: Features this backend cannot run, with the reason: none.
    known_gaps: Mapping[str, str] = {}

    def generate(self, graph: Graph, *, event_driven: Any = None, overrides: Mapping | None = None) -> Program:
        """The generated program (source text and packed parameters) without compiling it."""
        return Generator(graph, RULES.with_overrides(overrides), event_driven).generate()

    def compile(
        self,
        graph: Graph,
        *,
        event_driven: Any = None,
        cache_dir: Any = None,
        threads: int | None = None,
        parallel: bool | None = None,
        overrides: Mapping | None = None,
        **options: Any,
    ) -> NumbaModel:
        if options:
            raise TypeError(
                f"the numba backend has no option(s) {sorted(options)}; it takes event_driven, cache_dir, "
                "threads, parallel and overrides"
            )
        if parallel not in (None, True, False):
            raise TypeError(f"parallel must be None, True or False, found {parallel!r}")
        threads = _check_threads(threads)
        program = self.generate(graph, event_driven=event_driven, overrides=overrides)
        module = load_module(program.source, cache_dir)
        return NumbaModel(graph, program, module, threads=threads, parallel=parallel)


__all__ = ["NumbaBackend", "NumbaModel", "RULES", "default_cache_dir"]
