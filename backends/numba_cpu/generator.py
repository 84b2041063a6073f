"""Code generation: a graph becomes the Python source of one numba module.

The module holds ``samples(b0, b1, mode, steps, P, IP, F, I, spikes, record, inputs...)``, which advances
samples ``b0 .. b1 - 1`` of the batch through ``steps`` time steps (the whole time loop, no per-step
Python; ``F`` packs the per-sample state, delay rings and node buffers, ``I`` the step counter, batch
size and record slots, see source.py; ``spikes`` the first input's rows as bit masks when a run's
input is a spike train, ``mode`` 2), and ``run_parallel``, which calls it for every sample in
parallel (``prange``). Dense synapses fed straight by a graph input are one BLAS product over the
batch, which the model computes before calling the kernel.

Per step, nodes run in topological order; a node's input is the sum of its incoming edges in edge
order (copy the first, then add the others one by one, as the reference interpreter), where a
delayed edge reads a ring buffer of the source's past values. Time-invariant nodes (everything
stateless upstream of the first neuron on a ``direct`` input) run once per call, before the loop.
Emit rules (:mod:`.rules`) append each node's code, mostly calls into :mod:`.kernels` and
:mod:`.synapses`.

Weights never appear in the source: parameters are packed into one float32 vector ``P`` (integer
geometry and index maps into one int64 vector ``IP``) passed at run time, so the source, and with it
the compiled kernel cached on disk, depends only on the graph's structure.
"""

from __future__ import annotations

import keyword
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from snnir.errors import GraphError
from snnir.ir.graph import Graph
from snnir.ir.io import Input, Output
from snnir.lowering import LoweringTable
from snnir.passes import time_invariant_nodes

from . import kernels, synapses
from .layout import Layout
from .source import assemble

#: Names of the generated code's own variables; node variables never take them.
RESERVED = frozenset("b b0 b1 mode steps t0 t ta B F I P IP spikes st hs wk record slots first np njit prange samples run_parallel ev_i ev_v K S".split())


class Code:
    """Indented source lines; ``with code.block("if x:"):`` indents what follows."""

    def __init__(self, depth: int):
        self.lines: list[str] = []
        self.depth = depth

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


class Pack:
    """Arrays packed end to end into one vector of ``dtype``."""

    def __init__(self, dtype: Any):
        self.dtype = dtype
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, array: Any) -> tuple[int, int]:
        flat = np.ascontiguousarray(array, dtype=self.dtype).ravel()
        start = self.size
        self.parts.append(flat)
        self.size += flat.size
        return start, self.size

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)


@dataclass(frozen=True)
class Value:
    """A node's value for the current sample (and step): ``expr`` is a flat float32 array in the
    generated code (``v_fc1``, ``x_img[t, b]``...), stored in ``layout``. ``array``/``encoding`` are
    set when the value is a graph input read in place from kernel argument ``array``."""

    expr: str
    layout: Layout
    invariant: bool
    array: str = ""
    encoding: str = ""


@dataclass(frozen=True)
class Batched:
    """A dense synapse computed as ``inputs[array] @ weight + bias`` over the whole batch (BLAS)
    before the kernel runs; the kernel reads the product from its argument ``name``."""

    node: str
    name: str
    array: str
    weight: np.ndarray
    bias: np.ndarray | None


@dataclass
class Program:
    """A generated kernel module plus what a model needs to call it."""

    source: str
    params: np.ndarray
    index: np.ndarray
    state_size: int
    history_size: int
    #: float32 elements of one sample's workspace row (node buffers and scratch lists)
    work_size: int
    #: ``(node, variable) -> (slot, canonical shape)``; ``variable`` is "value" or a state variable.
    recordables: dict[tuple[str, str], tuple[int, tuple[int, ...]]]
    event_driven: dict[str, bool]
    #: dense synapses computed with BLAS before the kernel, in kernel-argument order
    batched: tuple[Batched, ...]
    hoisted: tuple[str, ...]
    #: kernel arguments after ``record, slots``: one per graph input, in graph order, then the products
    input_args: tuple[str, ...]
    #: whether a synapse reads the first input's spike masks (``spikes``) in a run of mode 2
    lists_spikes: bool = False


class NodeContext:
    """What an emit rule sees: the node, its summed input ``x`` (a :class:`Value`), and helpers
    declaring parameters, state and the node's output. Code goes to ``ctx.code``, which is the time
    loop, or the once-per-call section for time-invariant nodes."""

    def __init__(self, generator: Generator, name: str, node: Any, x: Value):
        self.gen = generator
        self.name = name
        self.node = node
        self.x = x
        self.ident = generator.idents[name]
        self.shape = tuple(generator.graph.shapes[name])
        self.event_driven = generator.event_driven.get(name, False)
        self.invariant = x.invariant and not node.stateful
        self.code = generator.hoisted if self.invariant else generator.loop
        self.title = f"{name!a} ({node.kind})"
        self.value: Value | None = None

    def param(self, label: str, array: Any) -> str:
        """A float32 parameter, visible in the kernel as a view of its shape."""
        return self.gen.view("P", self.gen.params, f"{self.ident}_{label}", np.asarray(array, np.float32))

    def per_neuron(self, label: str, values: Any, layout: Layout) -> str:
        """A per-neuron parameter (scalar or array) broadcast to ``layout`` and stored in its order."""
        return self.param(label, layout.arrange(values))

    def optional(self, label: str, values: Any, layout: Layout) -> str:
        """Like :meth:`per_neuron`; an absent parameter (None) becomes an empty array."""
        return self.param(label, np.zeros(0, np.float32) if values is None else layout.arrange(values))

    def integers(self, label: str, values: Any) -> str:
        """Integer geometry or an index map (int64), visible as a view."""
        return self.gen.view("IP", self.gen.ints, f"{self.ident}_{label}", np.asarray(values, np.int64))

    def scalar(self, label: str, value: Any) -> str:
        """A float32 scalar parameter, loaded once into a local."""
        start, _ = self.gen.params.add(np.float32(value))
        name = self.gen.fresh(f"{self.ident}_{label}")
        self.gen.prologue(f"{name} = P[{start}]")
        return name

    def state(self, variable: str, layout: Layout) -> str:
        """This sample's view of a state variable (zero at the start of a run, kept across steps)."""
        start = self.gen.state_size
        self.gen.state_size += layout.size
        name = self.gen.fresh(f"{self.ident}_{variable}")
        self.gen.per_sample(f"{name} = st[{start}:{self.gen.state_size}]")
        self.gen.states[(self.name, variable)] = Value(name, layout, False)
        return name

    def buffer(self, label: str, size: int) -> str:
        """A float32 buffer of ``size`` in this sample's workspace row (no allocation per call)."""
        return self.gen.buffer(label, size)

    def events(self, size: int) -> tuple[str, str]:
        """Scratch lists (indices, values) for the inputs of a synapse."""
        self.gen.scratch = max(self.gen.scratch, size)
        return "ev_i", "ev_v"

    def spike_masks(self) -> str | None:
        """This step's bit masks of the input ``x`` (see ``synapses.spike_masks``) when ``x`` is the
        graph's first input, a ``sequence`` read in place: an expression valid in a run of mode 2,
        where the caller has listed that input's rows in the kernel argument ``spikes``. Else None."""
        listed = self.gen.listed
        if listed is None or self.x.expr != listed.expr or self.invariant:
            return None
        self.gen.lists_spikes = True
        words = -(-listed.layout.size // 64)
        return f"spikes[(t * B + b) * {words} : (t * B + b + 1) * {words}]"

    def call(self, function: Callable, *args: Any) -> None:
        """Emit a call of a numba kernel (``K.lif(...)`` for :mod:`.kernels`)."""
        self.code(f"{self.gen.function(function)}({', '.join(str(a) for a in args)})")

    def output(self, layout: Layout) -> str:
        """Allocate the node's output buffer (stored in ``layout``) and return its name."""
        name = self.buffer(f"v_{self.ident}", layout.size)
        self.value = Value(name, layout, self.invariant)
        return name

    def alias(self, value: Value) -> None:
        """The node's value is ``value`` itself (reshapes and inference-time identities)."""
        self.value = value

    def spatial_input(self) -> Value:
        """The input in a layout with a spatial view (canonical or channels-last), gathering if needed."""
        x = self.x
        if x.layout.kind != "permuted":
            return x
        layout = Layout(x.layout.shape)
        name = self.buffer(f"g_{self.ident}", layout.size)
        self.call(kernels.gather_into, name, x.expr, self.integers("gather", layout.gather_map(x.layout)))
        return Value(name, layout, x.invariant)

    def batched_linear(self, weight: np.ndarray, bias: np.ndarray | None) -> bool:
        """``x @ weight (+ bias)`` as one BLAS product over the batch (and all steps), computed by the
        model with numpy before the kernel runs, for a dense synapse reading a graph input directly.
        Returns whether it did (then the node's value is set)."""
        x = self.x
        if self.event_driven or not x.array or x.layout.order is not None:
            return False
        y = self.gen.fresh(f"y_{self.ident}")
        self.gen.batched.append(Batched(self.name, y, x.array, np.ascontiguousarray(weight, np.float32), bias))
        lead = "b" if x.encoding == "direct" else "t, b"
        self.value = Value(f"{y}[{lead}]", Layout((weight.shape[1],)), x.invariant)
        return True


class Generator:
    """Lowers a validated, materialised graph to a :class:`Program` (see the module docstring)."""

    def __init__(self, graph: Graph, rules: LoweringTable, event_driven: Any = None):
        self.graph = graph
        self.rules = rules
        self.order = graph.topological_order()
        self.used: set[str] = set(RESERVED)
        self.idents = {name: self._ident(name) for name in graph.nodes}
        self.modules: dict[str, str] = {kernels.__name__: "K", synapses.__name__: "S"}
        self.params, self.ints = Pack(np.float32), Pack(np.int64)
        self.prologue, self.per_sample, self.hoisted = Code(1), Code(2), Code(2)
        self.loop, self.records, self.pushes = Code(3), Code(3), Code(3)
        self.values: dict[str, Value] = {}
        self.states: dict[tuple[str, str], Value] = {}
        self.state_size = 0
        self.work_size = 0
        self.scratch = 0
        self.batched: list[Batched] = []
        self.input_args: list[str] = []
        self.input_sequence: list[bool] = []
        #: the kernel's input arguments, as the caller passes them: ``[B, *shape]`` or ``[T·B, *shape]``
        self.raw_args: list[str] = []
        #: the first graph input's value when it is a ``sequence`` (spike masks may list it)
        self.listed: Value | None = None
        self.lists_spikes = False
        self.event_driven = self._choose_event_driven(event_driven)
        self.history_size = 0
        self.history = {src: self._ring(src, depth) for src, depth in self._history_depths().items()}

    # -- names --------------------------------------------------------------------------------
    def _ident(self, name: str) -> str:
        base = re.sub(r"\W", "_", name, flags=re.ASCII).strip("_") or "node"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = f"n_{base}"
        ident, count = base, 2
        while ident in self.used:
            ident, count = f"{base}{count}", count + 1
        self.used.add(ident)
        return ident

    def fresh(self, name: str) -> str:
        """A variable name not used yet in the module."""
        candidate, count = name, 2
        while candidate in self.used:
            candidate, count = f"{name}_{count}", count + 1
        self.used.add(candidate)
        return candidate

    def buffer(self, label: str, size: int) -> str:
        """A float32 view of ``size`` elements into this sample's row ``wk`` of the workspace."""
        name = self.fresh(label)
        start = self.work_size
        self.work_size += size
        self.per_sample(f"{name} = wk[{start}:{self.work_size}]")
        return name

    def function(self, function: Callable) -> str:
        """How the generated module refers to a numba function: ``alias.name`` of its module."""
        module = function.__module__
        if module not in self.modules:
            self.modules[module] = self.fresh(f"M{len(self.modules)}")
        return f"{self.modules[module]}.{function.__name__}"

    def view(self, vector: str, pack: Pack, label: str, array: np.ndarray, code: Code | None = None) -> str:
        """Pack ``array`` into ``vector`` (P or IP) and declare a view of its shape in ``code``."""
        start, stop = pack.add(array)
        name = self.fresh(label)
        shape = np.shape(array)
        reshape = f".reshape({tuple(int(s) for s in shape)})" if len(shape) > 1 else ""
        (code or self.prologue)(f"{name} = {vector}[{start}:{stop}]{reshape}")
        return name

    # -- analyses -----------------------------------------------------------------------------
    def _rule_attribute(self, name: str, attribute: str) -> bool:
        node = self.graph.nodes[name]
        if isinstance(node, (Input, Output)):
            return False
        return bool(getattr(self.rules.rule_for(node, name), attribute, False))

    def _keeps_zeros(self, name: str) -> bool:
        """Whether the node maps zeros to zeros: its kind says so (``Node.keeps_zeros``) or its rule is
        marked (``rules.keeps_zeros``)."""
        node = self.graph.nodes[name]
        return not isinstance(node, (Input, Output)) and (node.keeps_zeros or self._rule_attribute(name, "keeps_zeros"))

    def _sparse_nodes(self) -> dict[str, bool]:
        """Which values are mostly zeros: spikes, ``sequence`` inputs (encoded spike trains), and what
        zero-preserving stateless nodes (pools, Flatten, Scale...) make of them (greatest fixpoint,
        so zero-preserving cycles through delayed edges stay sparse)."""
        sparse = {}
        for name, node in self.graph.nodes.items():
            if isinstance(node, Input):
                sparse[name] = node.encoding == "sequence"
            elif not isinstance(node, Output):
                sparse[name] = node.spiking or self._keeps_zeros(name)
        keeps = [n for n in sparse if self._keeps_zeros(n)]
        changed = True
        while changed:
            changed = False
            for name in keeps:
                if sparse[name] and not all(sparse[e.src] for e in self.graph.incoming(name)):
                    sparse[name], changed = False, True
        return sparse

    def _choose_event_driven(self, option: Any) -> dict[str, bool]:
        names = [name for name in self.order if self._rule_attribute(name, "synapse")]
        sparse = self._sparse_nodes()
        chosen = {name: all(sparse[e.src] for e in self.graph.incoming(name)) for name in names}
        if option is None:
            return chosen
        if isinstance(option, bool):
            return {name: option for name in names}
        if not isinstance(option, Mapping):
            raise TypeError(f"event_driven must be None, a bool or a mapping {{node: bool}}, found {option!r}")
        for name, flag in option.items():
            if name not in chosen:
                raise GraphError(
                    f"event_driven names {name!r}, which is not a synapse (Linear/Conv) of graph "
                    f"{self.graph.name!r}; its synapses are: {', '.join(names) or 'none'}"
                )
            if not isinstance(flag, bool):
                raise TypeError(f"event_driven[{name!r}] must be a bool, found {flag!r}")
            chosen[name] = flag
        return chosen

    def _history_depths(self) -> dict[str, int]:
        depths: dict[str, int] = {}
        for edge in self.graph.edges:
            if edge.delay:
                depths[edge.src] = max(depths.get(edge.src, 0), edge.delay)
        return depths

    def _ring(self, src: str, depth: int) -> tuple[str, int]:
        """Ring buffer of ``src``'s last ``depth`` values, in canonical order: (name, depth)."""
        size = int(np.prod(self.graph.shapes[src]))
        start = self.history_size
        self.history_size += depth * size
        name = self.fresh(f"h_{self.idents[src]}")
        self.per_sample(f"{name} = hs[{start}:{self.history_size}].reshape(({depth}, {size}))")
        return name, depth

    # -- emission -----------------------------------------------------------------------------
    def _fan_in(self, name: str) -> Value:
        """The summed input of ``name``: the source's value itself for one undelayed edge, else a
        buffer holding the first edge's value plus each further edge, in edge order."""
        edges = self.graph.incoming(name)
        if len(edges) == 1 and not edges[0].delay:
            return self.values[edges[0].src]
        shape = tuple(self.graph.input_shape(name))
        direct = [self.values[e.src] for e in edges if not e.delay]
        layout = direct[0].layout if direct else Layout(shape)
        invariant = all(not e.delay and self.values[e.src].invariant for e in edges)
        code = self.hoisted if invariant else self.loop
        ident = self.idents[name]
        total = self.buffer(f"in_{ident}", layout.size)
        code(f"# input of {name!a}: " + " + ".join(str(e) for e in edges))
        for k, edge in enumerate(edges):
            if edge.delay:
                ring, depth = self.history[edge.src]
                source = f"{ring}[(ta + {depth - edge.delay}) % {depth}]"
                mapping = layout.order  # rings are canonical: position p holds canonical order[p]
            else:
                value = self.values[edge.src]
                source, mapping = value.expr, layout.gather_map(value.layout)
            if mapping is None:
                code(f"{self.function(kernels.add_into if k else kernels.copy_into)}({total}, {source})")
            else:
                index = self.view("IP", self.ints, f"map_{ident}_{k}", mapping)
                code(f"{self.function(kernels.gather_add if k else kernels.gather_into)}({total}, {source}, {index})")
        return Value(total, layout, invariant)

    def _input(self, name: str, node: Input) -> None:
        array = self.fresh(f"x_{self.idents[name]}")
        lead = "b" if node.encoding == "direct" else "t, b"
        self.values[name] = Value(f"{array}[{lead}]", Layout(tuple(node.shape)), node.encoding == "direct", array, node.encoding)
        if not self.input_args and node.encoding == "sequence":
            self.listed = self.values[name]
        self.input_args.append(array)
        self.input_sequence.append(node.encoding == "sequence")
        self.raw_args.append(self.fresh(f"raw_{self.idents[name]}"))

    def _record(self, slot: int, value: Value, label: str) -> None:
        mapping = value.layout.canonical_map()
        with self.records.block(f"if slots[{slot}] >= 0:  # {label}"):
            if mapping is None:
                self.records(f"{self.function(kernels.record_into)}(record, slots[{slot}], t, B, b, {value.expr})")
            else:
                index = self.view("IP", self.ints, f"map_{label}", mapping)
                self.records(f"{self.function(kernels.record_gather)}(record, slots[{slot}], t, B, b, {value.expr}, {index})")

    def _push(self, src: str) -> None:
        ring, depth = self.history[src]
        value = self.values[src]
        mapping = value.layout.canonical_map()
        target = f"{ring}[ta % {depth}]"
        if mapping is None:
            self.pushes(f"{self.function(kernels.copy_into)}({target}, {value.expr})  # for delayed edges")
        else:
            index = self.view("IP", self.ints, f"map_{self.idents[src]}_push", mapping)
            self.pushes(f"{self.function(kernels.gather_into)}({target}, {value.expr}, {index})  # for delayed edges")

    def _scratch(self) -> int:
        """Place the synapses' input lists (``ev_v`` values, ``ev_i`` int64 row offsets) at the end of
        the workspace row; returns the row's final size, kept even so that every row, and the int64
        view in it, starts 8-byte aligned."""
        self.work_size += self.work_size % 2
        if self.scratch:
            start = self.work_size
            self.work_size += 3 * self.scratch
            self.per_sample(f"ev_i = wk[{start}:{start + 2 * self.scratch}].view(np.int64)")
            self.per_sample(f"ev_v = wk[{start + 2 * self.scratch}:{self.work_size}]")
        self.work_size += self.work_size % 2
        return self.work_size

    def generate(self) -> Program:
        for name in self.graph.inputs:
            self._input(name, self.graph.nodes[name])  # type: ignore[arg-type]
        for name in self.order:
            node = self.graph.nodes[name]
            if isinstance(node, (Input, Output)):
                continue
            rule = self.rules.rule_for(node, name)
            context = NodeContext(self, name, node, self._fan_in(name))
            rule(context)
            if context.value is None:
                raise GraphError(f"the numba emit rule {getattr(rule, '__name__', rule)!r} of node {name!r} set no output value")
            self.values[name] = context.value
        recordables: dict[tuple[str, str], tuple[int, tuple[int, ...]]] = {}
        for name, node in self.graph.nodes.items():
            if isinstance(node, Output):
                continue
            for variable in ("value", *node.state_variables):
                value = self.values[name] if variable == "value" else self.states[(name, variable)]
                recordables[(name, variable)] = (len(recordables), tuple(self.graph.shapes[name]))
                self._record(len(recordables) - 1, value, f"{self.idents[name]}_{variable}")
        for src in self.history:
            self._push(src)
        invariant = time_invariant_nodes(self.graph)
        work_size = self._scratch()
        return Program(
            source=assemble(self),
            params=self.params.array(),
            index=self.ints.array(),
            state_size=self.state_size,
            history_size=self.history_size,
            work_size=work_size,
            recordables=recordables,
            event_driven=dict(self.event_driven),
            batched=tuple(self.batched),
            hoisted=tuple(n for n in self.order if n in invariant and not isinstance(self.graph.nodes[n], Input)),
            input_args=tuple(self.input_args + [b.name for b in self.batched]),
            lists_spikes=self.lists_spikes,
        )


__all__ = ["Code", "Generator", "NodeContext", "Program", "Value", "RESERVED"]
