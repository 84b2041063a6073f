"""The compiled model: calls a generated kernel with the shared calling convention of snnir.runtime.

Input checking goes through :mod:`snnir.runtime` (``prepare_sequence_inputs``, ``prepare_step_inputs``,
``parse_probes``, ``check_batch_size``), so errors are word for word those of the reference backend.
Outputs and probes are recorded by the kernel into one float32 buffer; each result array is a
contiguous ``[T, B, *shape]`` view of its own region of that buffer.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterable, Iterator

import numba
import numpy as np

from snnir.errors import InputError
from snnir.ir.graph import Graph
from snnir.runtime import (
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


class _Stream:
    """Streaming state: neuron states, delay rings and the absolute step counter."""

    def __init__(self, batch_size: int, program: Program):
        self.batch_size = batch_size
        self.state = np.zeros((batch_size, program.state_size), np.float32)
        self.history = np.zeros((batch_size, program.history_size), np.float32)
        self.step_index = 0
        self.plans: dict[tuple, _Plan] = {}
        #: node buffers, kept between the steps of a stream (a run allocates its own)
        self.work: np.ndarray | None = None
        self.input_shape: tuple[int, ...] = ()  # of the first input, for the fast path of step()
        self.kernel_shape: tuple[int, ...] = ()


@dataclass
class _Plan:
    """Where a call's outputs and probes go: ``slots`` tells the kernel the offset of each recorded
    quantity in one buffer of ``total`` floats; ``entries`` cut that buffer into the result arrays."""

    slots: np.ndarray
    total: int
    #: (key, start, stop, shape, is_output, copy): ``copy`` when another key records the same quantity
    entries: list[tuple[str, int, int, tuple[int, ...], bool, bool]]


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
        self._single = len(inputs) == 1
        self._first_shape = tuple(inputs[0].shape)  # type: ignore[attr-defined]
        self._input_position = {name: k for k, name in enumerate(program.input_args[: len(graph.inputs)])}

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

    def _products(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """The BLAS path: dense synapses fed by an input, as one product over all samples and steps."""
        products = []
        for item in self.program.batched:
            x = arrays[self._input_position[item.array]]
            rows = x.reshape(-1, x.shape[-1]) @ item.weight
            if item.bias is not None:
                rows += item.bias
            products.append(rows.reshape(*x.shape[:-1], item.weight.shape[1]))
        return products

    def _execute(self, arrays: list[np.ndarray], plan: _Plan, steps: int, stream: _Stream, check: bool = False) -> Result | None:
        """Run the kernel for ``steps`` steps of ``stream`` and cut the record buffer into results.
        With ``check``, return None (touching nothing) if an input holds a non-finite value."""
        batch = stream.batch_size
        record = np.empty(plan.total, np.float32)
        if batch:
            program = self.program
            work = stream.work if stream.work is not None else np.empty((batch, program.work_size), np.float32)
            args = (steps, stream.step_index, program.params, program.index, stream.state, stream.history, work, record, plan.slots, *arrays)
            if program.batched:
                args += tuple(self._products(arrays))
            if batch == 1 and not self.parallel:  # streaming: no thread pool involved
                if not self._module.samples(0, 1, check, *args):
                    return None
            elif check and not all(all_finite(array) for array in arrays):
                return None
            else:
                if self._parallel(batch):
                    with self._threading(batch):
                        self._module.run_parallel(*args)
                else:
                    self._module.samples(0, batch, False, *args)
        stream.step_index += steps
        outputs, probed = {}, {}
        for key, start, stop, shape, is_output, copy in plan.entries:
            view = record[start:stop].reshape(shape)
            (outputs if is_output else probed)[key] = view.copy() if copy else view
        return Result(outputs, probed)

    @staticmethod
    def _writable(array: np.ndarray) -> np.ndarray:
        # a read-only array would make numba compile (and cache) a second specialisation
        return array if array.flags.writeable else array.copy()

    # -- the calling convention ---------------------------------------------------------------
    def run(self, inputs: Any, *, num_steps: int | None = None, probes: Iterable = ()) -> Result:
        arrays, steps, batch = prepare_sequence_inputs(self.graph, inputs, num_steps)
        requested = parse_probes(self.graph, probes)
        flat = []
        for name, size, sequence in zip(self.graph.inputs, self._input_sizes, self._sequence):
            array = self._writable(arrays[name])
            flat.append(array[:steps].reshape(steps, batch, size) if sequence else array.reshape(batch, size))
        return self._execute(flat, self._plan(requested, (steps, batch)), steps, _Stream(batch, self.program))  # type: ignore[return-value]

    def reset(self, batch_size: int = 1) -> None:
        self.batch_size = check_batch_size(batch_size)
        self._stream = _Stream(self.batch_size, self.program)
        self._stream.work = np.empty((self.batch_size, self.program.work_size), np.float32)
        self._stream.input_shape = (self.batch_size, *self._first_shape)
        size = self._input_sizes[0]
        self._stream.kernel_shape = (1, self.batch_size, size) if self._sequence[0] else (self.batch_size, size)

    def _step_arrays(self, inputs: Any, batch: int) -> list[np.ndarray]:
        """Kernel arguments of one step: ``prepare_step_inputs`` converts the data or raises the
        reference backend's error."""
        arrays = prepare_step_inputs(self.graph, inputs, batch)
        return [
            self._writable(arrays[name]).reshape((1, batch, size) if sequence else (batch, size))
            for name, size, sequence in zip(self.graph.inputs, self._input_sizes, self._sequence)
        ]

    def step(self, inputs: Any, *, probes: Iterable = ()) -> Result:
        stream = self._stream
        if stream is None:
            raise InputError("step() needs a stream: call reset(batch_size) first")
        if not probes and self._single:
            # the real-time path: a ready float32 C-contiguous array of the right shape holding only
            # finite values goes to the kernel as is; anything else takes the checked path below
            plan = stream.plans.get(())
            if (
                plan is not None
                and type(inputs) is np.ndarray
                and inputs.shape == stream.input_shape
                and inputs.dtype == np.float32
                and inputs.flags.c_contiguous
                and inputs.flags.writeable
            ):
                result = self._execute([inputs.reshape(stream.kernel_shape)], plan, 1, stream, check=True)
                if result is not None:
                    return result
        requested = parse_probes(self.graph, probes) if probes else []
        arrays = self._step_arrays(inputs, stream.batch_size)
        keys = tuple(p.key for p in requested)
        plan = stream.plans.get(keys)
        if plan is None:
            plan = stream.plans[keys] = self._plan(requested, (stream.batch_size,))
        return self._execute(arrays, plan, 1, stream)  # type: ignore[return-value]


__all__ = ["NumbaModel"]
