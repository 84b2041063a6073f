"""The compiled model: calls a generated kernel with the shared calling convention of snnir.runtime.

Input checking goes through :mod:`snnir.runtime` (``prepare_sequence_inputs``, ``prepare_step_inputs``,
``parse_probes``, ``check_batch_size``), so errors are word for word those of the reference backend.
Two fast paths skip its conversions for inputs that need none (one float32 C-contiguous array of
the right shape) and test finiteness with a vectorised numba loop instead; a non-finite value sends
the call back to the shared checks, which raise the reference's error:

* ``run``: one pass over the input before the kernel (it also brings the data into the cache);
* ``step``: one call of the kernel with the stream's buffers packed into few arguments (the numba
  dispatcher's cost grows with each); the kernel tests the input before touching the state and
  writes the outputs into a buffer kept by the stream; each result is a copy the caller may keep.

Outputs and probes are recorded by the kernel into one float32 buffer; each result array of ``run``
is a contiguous ``[T, B, *shape]`` view of its own region of that buffer.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

import numba
import numpy as np

from snnir.errors import InputError
from snnir.ir.graph import Graph
from snnir.runtime import (
    NO_PROBES,
    CompiledModel,
    Probe,
    Result,
    check_batch_size,
    parse_probes,
    prepare_sequence_inputs,
    prepare_step_inputs,
)

from .generator import Program
from .kernels import all_finite
from .synapses import spike_masks

FLOAT32 = np.dtype(np.float32)
#: Fast streaming steps recorded per chunk of rows, and the most bytes a chunk may take.
CHUNK_STEPS, CHUNK_BYTES = 256, 1 << 18
#: ``mode`` of the generated ``samples`` (see source.py): part of a run, a streaming step, or part of a
#: run whose first input is a spike train listed as bit masks.
RUN, STEP, RUN_SPIKES = 0, 1, 2
#: The ``spikes`` argument of calls that list none.
NO_SPIKES = np.zeros(0, np.uint64)


@dataclass
class _Plan:
    """Where a call's outputs and probes go: ``slots`` tells the kernel the offset of each recorded
    quantity in one buffer of ``total`` floats; ``entries`` cut that buffer into the result arrays."""

    slots: np.ndarray
    total: int
    #: (key, start, stop, shape, is_output, copy): ``copy`` when another key records the same quantity
    entries: list[tuple[str, int, int, tuple[int, ...], bool, bool]]


class _Stream:
    """Streaming state in one float32 buffer ``F`` (neuron states, delay rings and node buffers, each
    ``[B, ...]``) and one int64 vector ``I`` (absolute step counter, batch size, then the record slots
    of the outputs); the fast path of ``step`` records each step into a row of a chunk (``refill``)."""

    def __init__(self, batch_size: int, program: Program, outputs: _Plan):
        b = self.batch_size = batch_size
        self.F = np.empty(b * (program.state_size + program.history_size + program.work_size), np.float32)
        self.F[: b * (program.state_size + program.history_size)] = 0  # node buffers are written before they are read
        self.I = np.concatenate([np.array([0, b], np.int64), outputs.slots])
        self.plans: dict[tuple, _Plan] = {(): outputs}
        #: the fast path of ``step``: the compiled kernel's entry point with every argument bound but
        #: the record row and the input (None: no fast path), and the input shape it takes
        self.fast: Callable[[np.ndarray, np.ndarray], bool] | None = None
        self.input_shape: tuple[int, ...] = ()
        #: (record row, its Result) for each coming fast step, made as they come (see ``refill``)
        self.chunk: Iterator[tuple[np.ndarray, Result]] = iter(())

    def refill(self) -> tuple[np.ndarray, Result]:
        """A new chunk of record rows for the next fast steps; returns the first row and its Result.

        Row ``i`` receives one step's outputs (at the offsets of the stream's output plan, like a
        one-step record buffer) and that step's Result holds views of it: arrays that no later step
        writes, so the caller may keep them, for the cost of a view instead of a copy. Rows and
        Results are made by iterators as the steps come, so a reset discards nothing already built;
        a chunk takes at most ``CHUNK_BYTES`` (a kept result keeps its chunk alive)."""
        plan = self.plans[()]
        rows = max(1, min(CHUNK_STEPS, CHUNK_BYTES // max(1, 4 * plan.total)))
        block = np.empty((rows, plan.total), np.float32)
        columns = []
        for key, start, _, shape, _, copy in plan.entries:
            strides = tuple(4 * math.prod(shape[k + 1 :]) for k in range(len(shape)))
            views = np.ndarray((rows, *shape), np.float32, block, 4 * start, (block.strides[0], *strides))
            # a key recording the same quantity as an earlier one gets its own copy, as in run()
            columns.append(zip(repeat(key), map(np.ndarray.copy, views) if copy else views))
        self.chunk = zip(block, map(Result, map(dict, zip(*columns)), map(dict, repeat(()))))
        return next(self.chunk)

    @property
    def step_index(self) -> int:
        return int(self.I[0])


def _record_variable(record: str) -> str:
    return "value" if record in ("value", "spikes") else record


class NumbaModel(CompiledModel):
    """A graph compiled to one numba kernel (see :mod:`snnir.backends.numba_cpu`).

    Attributes:
        source: the generated module's text; ``source_path`` is its file in the cache directory.
        event_driven: ``{synapse: bool}``, the compiler's (or your) choice per Linear/Conv.
        batched: dense synapses computed by one BLAS product over the batch before the kernel runs.
        hoisted: time-invariant nodes, computed once per call instead of once per step.
    """

    backend = "numba"

    def __init__(self, graph: Graph, program: Program, module: ModuleType, *, threads: int | None, parallel: bool | None):
        super().__init__(graph)
        self.program = program
        self.source = program.source
        self.source_path = module.__file__
        self.event_driven = dict(program.event_driven)
        self.batched = tuple(item.node for item in program.batched)
        self.hoisted = program.hoisted
        self.threads = threads
        self.parallel = parallel
        self._module = module
        self._outputs = [
            (name, (graph.output_source(name), _record_variable(graph.nodes[name].record)))  # type: ignore[attr-defined]
            for name in graph.outputs
        ]
        self._stream: _Stream | None = None
        inputs = [graph.nodes[name] for name in graph.inputs]
        self._input_sizes = [math.prod(node.shape) for node in inputs]  # type: ignore[attr-defined]
        self._sequence = [node.encoding == "sequence" for node in inputs]  # type: ignore[attr-defined]
        self._input_position = {name: k for k, name in enumerate(program.input_args[: len(graph.inputs)])}
        # the fast paths: one input, read in place
        self._single = len(inputs) == 1
        self._first_shape = tuple(inputs[0].shape)  # type: ignore[attr-defined]
        self._step_kernel: Any = False  # not looked for yet; then the kernel or None

    # -- plumbing -----------------------------------------------------------------------------
    def _parallel(self, batch_size: int) -> bool:
        """The ``prange`` driver when the batch can keep every thread busy."""
        threads = self.threads or numba.get_num_threads()
        return self.parallel if self.parallel is not None else threads > 1 and batch_size >= 2 * threads

    @contextmanager
    def _threading(self, batch_size: int) -> Iterator[None]:
        """The requested thread count (restored afterwards) and small prange chunks: samples are
        handed out a few at a time, so a thread slowed by another process does not hold up the rest."""
        threads = self.threads or numba.get_num_threads()
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            with numba.parallel_chunksize(max(1, batch_size // (4 * threads))):
                yield
        finally:
            numba.set_num_threads(previous)

    def _plan(self, requested: list[Probe], lead: tuple[int, ...]) -> _Plan:
        """One ``[*lead, *shape]`` region per recorded quantity, shared by keys that record the same."""
        slots = np.full(len(self.program.recordables), -1, np.int64)
        regions: dict[tuple[str, str], int] = {}
        entries = []
        total = 0
        count = math.prod(lead)
        wanted = [(name, recordable, True) for name, recordable in self._outputs]
        wanted += [(p.key, (p.node, p.variable), False) for p in requested]
        for key, recordable, is_output in wanted:
            slot, shape = self.program.recordables[recordable]
            size = count * math.prod(shape)
            copy = recordable in regions
            if not copy:
                slots[slot] = regions[recordable] = total
                total += size
            start = regions[recordable]
            entries.append((key, start, start + size, (*lead, *shape), is_output, copy))
        return _Plan(slots, total, entries)

    def _products(self, arrays: list[np.ndarray], batch: int) -> list[np.ndarray]:
        """The BLAS path: dense synapses fed by an input, as one product over all samples and steps
        (``[T, B, n]`` for a sequence input, ``[B, n]`` for a direct one)."""
        products = []
        for item in self.program.batched:
            position = self._input_position[item.array]
            x = arrays[position]
            rows = x.reshape(x.shape[0], -1) @ item.weight
            if item.bias is not None:
                rows += item.bias
            lead = (x.shape[0] // batch, batch) if self._sequence[position] else (batch,)
            products.append(rows.reshape(*lead, item.weight.shape[1]))
        return products

    def _spike_masks(self, first: np.ndarray) -> tuple[np.ndarray | None, int]:
        """``(masks, rows)``: the bit masks of the first input's rows (``[T·B, *shape]``, float32,
        C-contiguous) when a synapse reads them and every value is 0 or 1, else None (the kernel then
        reads the input in place); ``rows`` leading rows were found to hold only 0 and 1 (hence
        finite values), where the pass stopped at a row of other values."""
        if not (self.program.lists_spikes and first.size):
            return None, 0
        rows = first.shape[0]
        masks = np.empty(rows * -(-(first.size // rows) // 64), np.uint64)
        listed = spike_masks(first.reshape(-1), rows, masks)
        return (masks if listed == rows else None), listed

    def _execute(self, arrays: list[np.ndarray], plan: _Plan, steps: int, stream: _Stream, spikes: np.ndarray | None = None) -> Result:
        """Run the kernel for ``steps`` steps of ``stream`` and cut the record buffer into results.
        ``arrays``: the (checked) inputs as ``[B, *shape]`` (direct) or ``[T·B, *shape]`` (sequence);
        ``spikes``: the first input's bit masks (:meth:`_spike_masks`), if listed."""
        batch = stream.batch_size
        record = np.empty(plan.total, np.float32)
        if batch:
            program = self.program
            counters = np.concatenate((stream.I[:2], plan.slots))
            mode = RUN if spikes is None else RUN_SPIKES
            args = (steps, program.params, program.index, stream.F, counters, NO_SPIKES if spikes is None else spikes, record, *arrays)
            if program.batched:
                args += tuple(self._products(arrays, batch))
            if self._parallel(batch):
                with self._threading(batch):
                    self._module.run_parallel(mode, *args)
            else:
                self._module.samples(0, batch, mode, *args)
        stream.I[0] += steps
        outputs, probed = {}, {}
        for key, start, stop, shape, is_output, copy in plan.entries:
            view = record[start:stop].reshape(shape)
            (outputs if is_output else probed)[key] = view.copy() if copy else view
        return Result(outputs, probed)

    @staticmethod
    def _writable(array: np.ndarray) -> np.ndarray:
        # a read-only array would make numba compile (and cache) a second specialisation
        return array if array.flags.writeable else array.copy()

    def _ready(self, inputs: Any, lead: int) -> bool:
        """Whether ``inputs`` is one float32 C-contiguous writable array with ``lead`` leading axes
        before the input's shape (what the kernel reads in place)."""
        return (
            self._single
            and type(inputs) is np.ndarray
            and inputs.dtype == FLOAT32
            and inputs.shape[lead:] == self._first_shape
            and inputs.ndim == lead + len(self._first_shape)
            and inputs.flags.c_contiguous
            and inputs.flags.writeable
        )

    # -- the calling convention ---------------------------------------------------------------
    def run(self, inputs: Any, *, num_steps: int | None = None, probes: Iterable = NO_PROBES) -> Result:
        sequence = self._single and self._sequence[0]
        if num_steps is None and self._ready(inputs, 2 if sequence else 1) and (inputs.shape[0] if sequence else 1):
            # the fast path: the kernel reads the array in place. One sequential pass lists a spike
            # train (0/1 only, hence finite) or tests that the values are finite (from the first row
            # that is not 0/1 when a synapse could list it); it also brings the data into the cache.
            # A non-finite value goes to the checks below.
            steps, batch = (inputs.shape[0], inputs.shape[1]) if sequence else (self.graph.time.num_steps, inputs.shape[0])
            flat = [inputs.reshape(steps * batch, *self._first_shape) if sequence else inputs]
            spikes, checked = self._spike_masks(flat[0]) if sequence else (None, 0)
            if spikes is not None or all_finite(flat[0][checked:]):  # the rows not listed
                try:
                    requested = parse_probes(self.graph, probes)
                except InputError:
                    requested = None  # raised below, after the input checks, as the reference does
                if requested is not None:
                    return self._execute(flat, self._plan(requested, (steps, batch)), steps, self._fresh(batch), spikes)
        arrays, steps, batch = prepare_sequence_inputs(self.graph, inputs, num_steps)
        requested = parse_probes(self.graph, probes)
        flat = self._kernel_inputs(arrays, steps, batch)
        spikes = self._spike_masks(flat[0])[0] if self._sequence[0] else None
        return self._execute(flat, self._plan(requested, (steps, batch)), steps, self._fresh(batch), spikes)

    def _kernel_inputs(self, arrays: dict[str, np.ndarray], steps: int, batch: int) -> list[np.ndarray]:
        """Checked inputs as the kernel takes them: ``[B, *shape]``, or ``[T·B, *shape]`` for the first
        ``steps`` steps of a sequence."""
        flat = []
        for name, sequence in zip(self.graph.inputs, self._sequence):
            array = self._writable(arrays[name])
            flat.append(np.ascontiguousarray(array[:steps]).reshape(steps * batch, *array.shape[2:]) if sequence else array)
        return flat

    def _fresh(self, batch_size: int) -> _Stream:
        return _Stream(batch_size, self.program, self._plan([], (batch_size,)))

    def reset(self, batch_size: int = 1) -> None:
        self.batch_size = check_batch_size(batch_size)
        stream = self._stream = self._fresh(self.batch_size)
        stream.input_shape = (self.batch_size, *self._first_shape)
        if self._step_kernel is False and self._single and not self.program.batched and self.batch_size:
            self._step_kernel = self._stream_kernel()  # once per model: it does not depend on the batch
        entry = self._step_kernel if self.batch_size else None
        if entry is not None and entry is not False:
            program = self.program
            args = (0, self.batch_size, STEP, 1, program.params, program.index, stream.F, stream.I, NO_SPIKES)
            stream.fast = partial(entry, *args)  # binds the arguments once: no tuple of 10 per step

    def _stream_kernel(self) -> Any:
        """The entry point of ``samples`` compiled (or loaded from the disk cache) for the streaming
        step's signature, with further compiling disabled (so the checked path, which calls the
        dispatcher with the same types, never compiles a second specialisation). The entry point
        skips the dispatcher's type resolution but checks nothing: ``step`` calls it only with an
        input of exactly that type (float32, C-contiguous, aligned, writable, the stream's shape)."""
        kernel = self._module.samples
        integer, vector, index = numba.types.int64, numba.types.float32[::1], numba.types.int64[::1]
        x = numba.types.Array(numba.types.float32, 1 + len(self._first_shape), "C")
        signature = (integer, integer, integer, integer, vector, index, vector, index, numba.types.uint64[::1], vector, x)
        if signature not in kernel.overloads:
            try:
                kernel.compile(signature)
            except RuntimeError:  # compiling was disabled for another signature: no fast path
                return None
        kernel.disable_compile()
        return kernel.overloads[signature].entry_point

    def step(self, inputs: Any, *, probes: Iterable = NO_PROBES) -> Result:
        stream = self._stream
        if stream is None:
            raise InputError("step() needs a stream: call reset(batch_size) first")
        fast = stream.fast
        if (
            fast is not None
            and (probes is NO_PROBES or (type(probes) is list and not probes))  # anything else (None, "", arrays) is parsed below
            and type(inputs) is np.ndarray
            and inputs.dtype == FLOAT32
            and inputs.shape == stream.input_shape
            and inputs.flags.carray  # C-contiguous, aligned and writable: the compiled signature's type
        ):
            # the real-time path: one compiled call, which records into a fresh row of the chunk
            row, result = next(stream.chunk, None) or stream.refill()
            if fast(row, inputs):  # the kernel tests the input first: a non-finite value goes to the checks
                return result
        requested = parse_probes(self.graph, probes)
        arrays = prepare_step_inputs(self.graph, inputs, stream.batch_size)  # private, writable copies
        keys = tuple(p.key for p in requested)
        plan = stream.plans.get(keys)
        if plan is None:
            plan = stream.plans[keys] = self._plan(requested, (stream.batch_size,))
        return self._execute([arrays[name] for name in self.graph.inputs], plan, 1, stream)


__all__ = ["NumbaModel"]
