"""The compiled torch model: an ``nn.Module`` that also follows snnir's inference convention.

Training (torch tensors, autograd)::

    model = snnir.compile(graph, "torch")                  # TorchModel, float32 on CPU
    outputs = model(images)                                # {"spikes": [T, B, 10], "membrane": [T, B, 10]}
    outputs, state = model(chunk, num_steps=10, state=state, return_state=True)   # continue a run

``forward(inputs, num_steps=None, *, state=None, return_state=False)`` takes one tensor (single-input
graphs) or ``{input_name: tensor}``; a ``direct`` input is ``[B, *shape]``, a ``sequence`` input
``[T, B, *shape]``. It returns a plain ``dict`` from each Output's name to a ``[T, B, *shape]`` tensor
(in graph order), plus the final state when ``return_state`` is set. The state (``{"neurons": {node:
{variable: [B, ...]}}, "history": {node: [d, B, ...]}}``) continues a run exactly where it stopped.

Inference (numpy in and out, identical errors to every backend, see :mod:`snnir.runtime`):
``run(x, num_steps=None, probes=())``, ``reset(batch_size)`` then ``step(x_t)``, ``predict(x)``.
``to_graph()`` writes the current (trained) parameters back into a graph.
"""

from __future__ import annotations

import difflib
import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from snnir.errors import InputError, NodeNotFoundError, SnnirError, UnsupportedNodeError
from snnir.ir.graph import Graph
from snnir.ir.io import Input, Output
from snnir.lowering import LoweringTable
from snnir.runtime import (
    NO_PROBES,
    CompiledModel,
    Result,
    check_batch_size,
    parse_probes,
    prepare_sequence_inputs,
    prepare_step_inputs,
)

from .allocator import settle_heap
from .events import ALWAYS, EXACT
from .execution import Plan, build_plan, simulate, single_step
from .layers import EVENT_MIN_OUTPUTS, Linear, unchanged_node

DTYPES = (torch.float32, torch.float64)


#: Attribute names of a ModuleDict (``training``, ``forward``, ``cuda``...), which its keys may not take.
_MODULE_ATTRIBUTES = frozenset(dir(nn.ModuleDict()))


def _module_key(name: str, taken: set[str]) -> str:
    """A ModuleDict key for node ``name`` (no dots, not a module attribute; unique)."""
    key = re.sub(r"\W", "_", name) or "node"
    key = key if not key[0].isdigit() else f"n_{key}"
    while key in taken or key in _MODULE_ATTRIBUTES:
        key += "_"
    taken.add(key)
    return key


class TorchModel(nn.Module, CompiledModel):
    """A graph lowered to torch modules (see the module docstring for the calling conventions)."""

    backend = "torch"

    def __init__(self, graph: Graph, rules: LoweringTable, *, device: Any = None, dtype: torch.dtype = torch.float32,
                 event_driven: bool | None = None, chunk_steps: int | None = None):
        nn.Module.__init__(self)
        CompiledModel.__init__(self, graph)
        if dtype not in DTYPES:
            raise UnsupportedNodeError(f"the torch backend runs in float32 or float64, found dtype={dtype}")
        taken: set[str] = set()
        self.keys: dict[str, str] = {}
        self.layers = nn.ModuleDict()
        for name in graph.topological_order():
            node = graph.nodes[name]
            if isinstance(node, (Input, Output)):
                continue
            rule = rules.rule_for(node, name)
            self.keys[name] = _module_key(name, taken)
            self.layers[self.keys[name]] = rule(node, graph.input_shape(name), self.shapes[name])
        #: The sources of each layer's input, in edge order (the fan-in sum's), layers in topological order.
        self.fan_in = {name: [edge.src for edge in graph.incoming(name)] for name in self.keys}
        self._enable_events(event_driven)
        self.chunk_steps = chunk_steps
        self.register_buffer("anchor", torch.zeros((), dtype=dtype), persistent=False)
        self.recorded = [(name, graph.output_source(name), _variable(graph.nodes[name].record)) for name in graph.outputs]
        self._plans: dict[bool, Plan] = {}
        self.plan_depth = build_plan(graph, training=False).depth
        self._stream: dict | None = None
        self._place(device, dtype)

    def _place(self, device: Any, dtype: torch.dtype) -> None:
        """``self.to(device, dtype)``, with an InputError naming the device where torch cannot use it
        (not a device name, no CUDA in this torch build, no such GPU...)."""
        try:
            self.to(device=torch.device(device) if device is not None else None, dtype=dtype)
        except (RuntimeError, AssertionError, TypeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(f"device={device!r}: torch cannot place the model there ({reason})") from None

    # -- structure ----------------------------------------------------------------------------------
    def _enable_events(self, option: bool | None) -> None:
        """Set the event mode of each Linear fed directly by a ``sequence`` input or a spiking layer
        (see :mod:`.events`): None, the default, :data:`.events.EXACT` for layers with at least
        ``EVENT_MIN_OUTPUTS`` outputs; True, :data:`.events.ALWAYS` for all of them; False, none."""
        if option is not None and not isinstance(option, bool):
            raise InputError(f"event_driven must be None (the default), True or False, found {option!r}")
        if option is False:
            return
        for name in self.keys:
            edges = self.graph.incoming(name)
            layer = self.layer(name)
            if not isinstance(layer, Linear) or len(edges) != 1 or edges[0].delay:
                continue
            source = self.graph.nodes[edges[0].src]
            spikes = getattr(source, "spiking", False) or (isinstance(source, Input) and source.encoding == "sequence")
            if spikes and (option or layer.weight.shape[0] >= EVENT_MIN_OUTPUTS):
                layer.events = ALWAYS if option else EXACT

    def layer(self, name: str) -> nn.Module:
        """The module lowered from node ``name``."""
        if name not in self.keys:
            close = difflib.get_close_matches(str(name), list(self.keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise NodeNotFoundError(f"no layer {name!r}{hint}; the layers are {list(self.keys)}")
        return self.layers[self.keys[name]]

    def plan(self, training: bool) -> Plan:
        if training not in self._plans:
            self._plans[training] = build_plan(self.graph, training=training)
        return self._plans[training]

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    # -- torch calling convention -------------------------------------------------------------------
    def forward(self, inputs: Any, num_steps: int | None = None, *, state: dict | None = None, return_state: bool = False):
        tensors, steps = self._tensor_inputs(inputs, num_steps)
        if state is not None:
            name = self.graph.inputs[0]
            self._check_state(state, tensors[name].shape[1 if self.graph.nodes[name].encoding == "sequence" else 0])
        if torch.is_grad_enabled() and self.device.type == "cpu":
            settle_heap()  # once per process: freed tensors are then recycled, not faulted back in
        run = self._simulate(tensors, steps, state, (), self.training)
        outputs = {name: self._read(run, source, variable) for name, source, variable in self.recorded}
        return (outputs, run.final) if return_state else outputs

    def _check_state(self, state: Any, batch: int) -> None:
        """``state=`` must be what ``return_state=True`` gave for a batch of this size: a misspelt or
        missing entry would otherwise restart that part from zero, and a batch mismatch broadcast."""
        def fail(problem: str) -> None:
            raise InputError(f"state: {problem}; pass the state that return_state=True returned for a batch of {batch}")

        if not isinstance(state, Mapping) or not set(state) <= {"neurons", "history"}:
            fail(f"expected a dict with 'neurons' (and 'history' with delayed edges), found {_keys(state)}")
        expected = {"neurons": {name: (self.layer(name).state_variables, (batch, *self.shapes[name]))
                                for name in self.keys if self.layer(name).stateful},
                    "history": {name: (None, (depth, batch, *self.shapes[name])) for name, depth in self.plan_depth.items()}}
        for part, entries in expected.items():
            given = state.get(part, {})
            if not isinstance(given, Mapping) or set(given) != set(entries):
                fail(f"{part} holds {_keys(given)}, expected {sorted(entries)}")
            for name, (variables, shape) in entries.items():
                tensors = given[name] if variables else {None: given[name]}
                if variables and (not isinstance(tensors, Mapping) or set(tensors) != set(variables)):
                    fail(f"{part}[{name!r}] holds {_keys(tensors)}, expected {sorted(variables)}")
                for variable, tensor in tensors.items():
                    if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
                        where = f"{part}[{name!r}]" + (f"[{variable!r}]" if variable else "")
                        found = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                        fail(f"{where} is {found}, expected a tensor of shape {list(shape)}")

    def _simulate(self, tensors, steps, state, wanted, training):
        wanted = set(wanted) | {(source, variable) for _, source, variable in self.recorded}
        return simulate(self, self.plan(training), tensors, steps, state, wanted, recompute=torch.is_grad_enabled())

    @staticmethod
    def _read(run, node: str, variable: str) -> torch.Tensor:
        if variable == "value":
            return run.values[node].sequence(run.steps)
        return run.records[(node, variable)]

    def _tensor_inputs(self, inputs: Any, num_steps: int | None) -> tuple[dict[str, torch.Tensor], int]:
        """Check names and shapes like :func:`snnir.runtime.prepare_sequence_inputs`, keeping tensors."""
        names = self.graph.inputs
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise InputError(f"the graph has {len(names)} inputs {list(names)}; pass a mapping {{name: tensor}}")
            inputs = {names[0]: inputs}
        unknown = [k for k in inputs if k not in names]
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            which = f"unknown input {unknown[0]!r}" if unknown else f"missing input {missing[0]!r}"
            raise InputError(f"{which}; the graph's inputs are {list(names)}")
        tensors, steps_seen, batches = {}, {}, {}
        for name in names:
            node: Input = self.graph.nodes[name]  # type: ignore[assignment]
            data = inputs[name]
            if not isinstance(data, torch.Tensor):
                data = _from_numpy(_numpy_input(name, data))
            lead = 2 if node.encoding == "sequence" else 1
            if data.dim() != lead + len(node.shape) or tuple(data.shape[lead:]) != tuple(node.shape):
                layout = "[T, B, " if lead == 2 else "[B, "
                raise InputError(f"input {name!r} ({node.encoding}): expected shape {layout}{', '.join(map(str, node.shape))}], found {list(data.shape)}")
            if lead == 2:
                steps_seen[name] = data.shape[0]
            batches[name] = data.shape[lead - 1]
            tensors[name] = data.to(device=self.device, dtype=self.dtype)
        if len(set(batches.values())) > 1:
            raise InputError(f"inputs disagree on the batch size: {batches}")
        steps = self._steps(num_steps, steps_seen)
        return tensors, steps

    @property
    def chunk_steps(self) -> int | None:
        """Steps per time chunk; None chooses (see :func:`.execution.chunk_steps`). Settable, checked."""
        return self._chunk_steps

    @chunk_steps.setter
    def chunk_steps(self, value: int | None) -> None:
        integral = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if value is not None and (not integral or value < 1):
            raise InputError(f"chunk_steps must be a positive integer or None, found {value!r}")
        self._chunk_steps = None if value is None else int(value)

    def _steps(self, num_steps, steps_seen: dict[str, int]) -> int:
        if num_steps is not None:
            if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
                raise InputError(f"num_steps must be a positive integer, found {num_steps!r}")
            short = {n: t for n, t in steps_seen.items() if t < num_steps}
            if short:
                raise InputError(f"num_steps={num_steps}, but sequence inputs hold fewer steps: {short}")
            return int(num_steps)
        if steps_seen:
            if len(set(steps_seen.values())) > 1:
                raise InputError(f"sequence inputs disagree on the number of steps: {steps_seen}")
            steps = next(iter(steps_seen.values()))
            if steps == 0:
                raise InputError("sequence inputs hold zero steps")
            return steps
        return self.graph.time.num_steps

    # -- inference convention (numpy) ------------------------------------------------------------------
    @contextmanager
    def _inference(self) -> Iterator[None]:
        """No gradients, and eval mode (dropout off) for the layers that training left in training mode
        and that read it: Dropout, or a module of a user's lowering rule (which may). Switching the
        whole model would walk every submodule twice (~0.1 ms, as much as a small network's step)."""
        switched = [layer for layer in self.layers.values() if layer.training and getattr(layer, "uses_training_mode", True)]
        for layer in switched:
            layer.train(False)
        try:
            with torch.no_grad():
                yield
        finally:
            for layer in switched:
                layer.train(True)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """A checked input array on the module's device and dtype."""
        return _from_numpy(array).to(device=self.device, dtype=self.dtype)

    def _numpy_run(self, arrays: dict[str, np.ndarray], steps: int, state, probes) -> tuple[Result, dict]:
        tensors = {n: self._tensor(a) for n, a in arrays.items()}
        wanted = {(p.node, p.variable) for p in probes}
        with self._inference():
            run = self._simulate(tensors, steps, state, wanted, training=False)
            outputs = {name: _numpy(self._read(run, source, variable)) for name, source, variable in self.recorded}
            probed = {p.key: _numpy(self._read(run, p.node, p.variable)) for p in probes}
        return Result(outputs, probed), run.final

    def _single_step(self, arrays: dict[str, np.ndarray], probes) -> Result:
        """A streaming step of a graph without delayed edges (:func:`.execution.single_step`)."""
        tensors = {n: self._tensor(a) for n, a in arrays.items()}
        with self._inference():
            values, neurons = single_step(self, tensors, self._stream.get("neurons", {}))

        def read(node: str, variable: str) -> np.ndarray:
            return _numpy(values[node] if variable == "value" else neurons[node][variable])

        self._stream = {"neurons": neurons, "history": {}}
        return Result({name: read(source, variable) for name, source, variable in self.recorded},
                      {p.key: read(p.node, p.variable) for p in probes})

    def run(self, inputs: Any, *, num_steps: int | None = None, probes: Iterable = NO_PROBES) -> Result:
        """Run a whole sequence from zero state without gradients (dropout off); float32 numpy outputs."""
        arrays, steps, _ = prepare_sequence_inputs(self.graph, inputs, num_steps)
        requested = parse_probes(self.graph, probes)
        return self._numpy_run(arrays, steps, None, requested)[0]

    def reset(self, batch_size: int = 1) -> None:
        """Start a stream of ``batch_size`` samples from zero state."""
        self.batch_size = check_batch_size(batch_size)
        self._stream = {}

    def step(self, inputs: Any, *, probes: Iterable = NO_PROBES) -> Result:
        """Advance the stream one step; inputs and outputs are ``[B, *shape]``."""
        if self._stream is None:
            raise InputError("step() needs a stream: call reset(batch_size) first")
        requested = parse_probes(self.graph, probes)
        arrays = prepare_step_inputs(self.graph, inputs, self.batch_size)
        if not self.plan_depth:  # no delayed edge: one update per layer, no plan
            return self._single_step(arrays, requested)
        arrays = {n: (a if self.graph.nodes[n].encoding == "direct" else a[None]) for n, a in arrays.items()}
        result, self._stream = self._numpy_run(arrays, 1, self._stream, requested)
        return Result({k: v[0] for k, v in result.outputs.items()}, {k: v[0] for k, v in result.probes.items()})

    # -- trained parameters back into the IR -------------------------------------------------------------
    def to_graph(self) -> Graph:
        """The graph with every parameter replaced by the module's current value (as float32)."""
        updates = {}
        for name in self.keys:
            layer, node = self.layer(name), self.graph.nodes[name]
            try:  # a user's module need not define to_node: without trainable parameters it changes nothing
                updates[name] = layer.to_node(node) if hasattr(layer, "to_node") else unchanged_node(layer, node)
            except SnnirError as error:  # e.g. NaN weights after a diverged training
                raise type(error)(f"node {name!r}: {error}") from None
        return self.graph.with_nodes(updates)

    def extra_repr(self) -> str:
        return f"graph={self.graph.name!r}, nodes={len(self.graph.nodes)}, num_steps={self.graph.time.num_steps}"

    __call__ = nn.Module.__call__
    __repr__ = nn.Module.__repr__


def _keys(value: Any) -> Any:
    return sorted(value) if isinstance(value, Mapping) else type(value).__name__


def _variable(record: str) -> str:
    return "value" if record in ("value", "spikes") else record


def _numpy_input(name: str, data: Any) -> np.ndarray:
    """A non-tensor input of ``forward`` (array, lists) as a C-contiguous float32 array (torch takes no
    negative strides); what numpy cannot convert is an InputError worded as ``run``'s."""
    try:
        return np.ascontiguousarray(data, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InputError(f"input {name!r}: cannot read as an array ({error})") from None


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy``, copying a read-only array first: torch has no read-only tensors (it warns
    and would let a write through), and a read-only input must stay untouched."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy of ``tensor``: a result of its own, never a view of an input, of the
    stream's state or of another result (the same tensor can be an output and a probe)."""
    return np.array(tensor.detach().to("cpu", torch.float32).numpy(), copy=True, order="C")


__all__ = ["TorchModel", "DTYPES"]
