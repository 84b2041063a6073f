"""Running exported models in onnxruntime with snnir's calling convention (``run``/``step``/``reset``).

:class:`Session` drives one onnxruntime session through the model's snnir metadata only, exactly as
a reader without snnir would. :class:`OnnxModel` (``snnir.compile(graph, "onnx")``) builds a sequence
model for ``run`` and a step model for ``step``, one per set of probes, on first use.
:class:`Runtime` runs an exported file as it is: a step file loops over time in ``run``; a sequence
file takes one step as a Scan of length one, since both kinds take states in and give them back.

Probes: a compiled model exports whatever probes a call asks for. A file records its exported
probes (``export_onnx(..., probes=...)``), plus, whenever a call covers one step, every neuron state
(the next-state outputs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from snnir.errors import BackendUnavailableError, InputError, SnnirError, add_note
from snnir.ir.graph import Graph
from snnir.lowering import LoweringTable
from snnir.runtime import (
    NO_PROBES,
    CompiledModel,
    Probe,
    Result,
    as_float32,
    check_batch_size,
    parse_probes,
    prepare_sequence_inputs,
    prepare_step_inputs,
)

from .build import build_model
from .context import Names
from .files import open_onnx, serialize
from .plan import make_plan
from .rules import RULES

#: Exceptions onnxruntime raises (its pybind11 classes derive from Exception directly).
ORT_ERRORS = tuple(c for c in vars(_ort_state).values() if isinstance(c, type) and issubclass(c, Exception)) + (RuntimeError,)

OPTIMIZATION = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def resolve_threads(threads: int | None) -> int:
    """Intra-op threads: ``threads``, else ``OMP_NUM_THREADS`` if set, else 0 (onnxruntime: one per core)."""
    if threads is None:
        value = os.environ.get("OMP_NUM_THREADS", "")
        return int(value) if value.isdigit() else 0
    cpus = os.cpu_count() or 1
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or not 0 <= threads <= cpus:
        # more threads than CPUs only queue up; a thousand took 30 s for two steps, a million killed the process
        raise InputError(f"threads must be an integer from 0 (onnxruntime's default) to {cpus} (the CPUs here), found {threads!r}")
    return int(threads)


def resolve_providers(providers: Iterable[str] | None) -> list[str]:
    """Execution providers, CPU by default; an unavailable one is a BackendUnavailableError."""
    if providers is None:
        return ["CPUExecutionProvider"]
    chosen = [providers] if isinstance(providers, str) else list(providers)
    available = ort.get_available_providers()
    for provider in chosen:
        if provider not in available:
            raise BackendUnavailableError(
                f"onnxruntime execution provider {provider!r} is not available here (available: {', '.join(available)}); "
                "CUDAExecutionProvider needs the onnxruntime-gpu package"
            )
    return chosen


def check_optimization(optimization: Any) -> str:
    if not isinstance(optimization, str) or optimization not in OPTIMIZATION:
        raise InputError(f"optimization must be one of {list(OPTIMIZATION)}, found {optimization!r}")
    return optimization


def session_options(threads: int, optimization: str) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = OPTIMIZATION[optimization]
    options.log_severity_level = 3  # errors only: snnir reports problems itself
    return options


class Session:
    """One onnxruntime session of an exported model, driven through its metadata document ``doc``."""

    def __init__(self, data: bytes, doc: dict, *, threads: int, optimization: str, providers: list[str], label: str):
        self.label = label
        self.mode = doc["mode"]
        try:
            self.session = ort.InferenceSession(data, sess_options=session_options(threads, optimization), providers=providers)
        except ORT_ERRORS as error:
            raise SnnirError(f"{label}: onnxruntime cannot load the model: {error}") from None
        self.encodings = {entry["name"]: entry["encoding"] for entry in doc["inputs"]}
        self.num_steps_input = doc["num_steps_input"]
        self.states = [(s["name"], s["input"], s["output"]) for s in doc["states"]]
        self.outputs = [entry["name"] for entry in doc["outputs"]]
        self.probe_outputs = {entry["key"]: entry["name"] for entry in doc["probes"]}
        self.state_outputs = {s["name"] for s in doc["states"] if s["lag"] == 0}

    def unavailable(self, probes: list[Probe], *, per_step: bool) -> list[str]:
        """Probe keys this model cannot record (state probes need one call per step)."""
        return [p.key for p in probes if p.key not in self.probe_outputs and not (per_step and p.key in self.state_outputs)]

    def _call(self, fetch: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(fetch, self.session.run(fetch, feeds)))
        except ORT_ERRORS as error:
            raise SnnirError(f"{self.label}: onnxruntime failed: {error}") from None

    def sequence(self, arrays: dict, steps: int, states: dict, probes: list[Probe]) -> tuple[dict, dict]:
        """A whole sequence from ``states``; recordings are ``[steps, batch, *shape]``."""
        if self.mode == "step":
            return self._loop(arrays, steps, states, probes)
        feeds = {n: (a[:steps] if self.encodings[n] == "sequence" else a) for n, a in arrays.items()}
        if self.num_steps_input:
            feeds[self.num_steps_input] = np.array(steps, np.int64)
        feeds.update({s_in: states[key] for key, s_in, _ in self.states})
        fetched = self._call(self.outputs + [self.probe_outputs[p.key] for p in probes], feeds)
        return {n: fetched[n] for n in self.outputs}, {p.key: fetched[self.probe_outputs[p.key]] for p in probes}

    def _loop(self, arrays: dict, steps: int, states: dict, probes: list[Probe]) -> tuple[dict, dict]:
        outputs: dict[str, np.ndarray] = {}
        probed: dict[str, np.ndarray] = {}
        for t in range(steps):
            step_inputs = {n: (a[t] if self.encodings[n] == "sequence" else a) for n, a in arrays.items()}
            out_t, probe_t, states = self.step(step_inputs, states, probes)
            for table, values in ((outputs, out_t), (probed, probe_t)):
                for key, value in values.items():
                    if t == 0:
                        table[key] = np.empty((steps, *value.shape), np.float32)
                    table[key][t] = value
        return outputs, probed

    def step(self, arrays: dict, states: dict, probes: list[Probe]) -> tuple[dict, dict, dict]:
        """One step from ``states``; returns outputs, probes and the next states (``[batch, *shape]``)."""
        feeds = dict(arrays)
        if self.mode == "sequence":  # a Scan of length one
            feeds = {n: (a[None] if self.encodings[n] == "sequence" else a) for n, a in arrays.items()}
            if self.num_steps_input:
                feeds[self.num_steps_input] = np.array(1, np.int64)
        feeds.update({s_in: states[key] for key, s_in, _ in self.states})
        exported = [p.key for p in probes if p.key in self.probe_outputs]
        fetch = self.outputs + [self.probe_outputs[k] for k in exported] + [s_out for _, _, s_out in self.states]
        fetched = self._call(fetch, feeds)
        if self.mode == "sequence":
            fetched.update({n: fetched[n][0] for n in self.outputs + [self.probe_outputs[k] for k in exported]})
        next_states = {key: fetched[s_out] for key, _, s_out in self.states}
        # a state probe is a copy: the state itself feeds the next step, and results are the caller's
        probed = {p.key: fetched[self.probe_outputs[p.key]] if p.key in exported else next_states[p.key].copy() for p in probes}
        return {n: fetched[n] for n in self.outputs}, probed, next_states


class OnnxModel(CompiledModel):
    """``snnir.compile(graph, "onnx")``: the graph exported in memory and run in onnxruntime.

    Options: ``threads`` (intra-op threads; default ``OMP_NUM_THREADS`` or onnxruntime's choice),
    ``optimization`` (``"all"``, ``"extended"``, ``"basic"``, ``"disable"``: onnxruntime's graph
    optimisation level), ``providers`` (execution providers, CPU by default).
    """

    backend = "onnx"

    def __init__(
        self,
        graph: Graph,
        *,
        rules: LoweringTable = RULES,
        threads: int | None = None,
        optimization: str = "all",
        providers: Iterable[str] | None = None,
    ):
        super().__init__(graph)
        self.rules = rules
        self.threads = resolve_threads(threads)
        self.optimization = check_optimization(optimization)
        self.providers = resolve_providers(providers)
        self._sessions: dict[tuple, Session] = {}
        self._states: dict[str, np.ndarray] | None = None
        self.state_shapes = self._state_shapes()

    def _state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {s.key: s.shape for s in make_plan(self.graph, Names(), "step").states}

    def _new_session(self, data: bytes, doc: dict, label: str) -> Session:
        return Session(data, doc, threads=self.threads, optimization=self.optimization, providers=self.providers, label=label)

    def session(self, mode: str, probes: list[Probe]) -> Session:
        """The session for ``mode`` recording ``probes`` (built on first use)."""
        if mode == "step":  # neuron states come back as next states anyway
            probes = [p for p in probes if p.key not in self.state_shapes]
        key = (mode, tuple(p.key for p in probes))
        if key not in self._sessions:
            model, doc = build_model(self.graph, mode, probes=[p.key for p in probes], rules=self.rules)
            self._sessions[key] = self._new_session(serialize(model), doc, f"graph {self.graph.name!r} ({mode} model)")
        return self._sessions[key]

    def _checked_session(self, mode: str, probes: list[Probe], per_step: bool) -> Session:
        session = self.session(mode, probes)
        missing = session.unavailable(probes, per_step=per_step or session.mode == "step")
        if missing:
            raise InputError(
                f"probe {missing[0]!r} is not recorded by {session.label}; it records {sorted(session.probe_outputs) or 'no probes'}"
                + (" and, per step, every neuron state" if session.state_outputs else "")
                + "; export with probes=[...] or probes='all' to record more"
            )
        return session

    def _zeros(self, batch: int) -> dict[str, np.ndarray]:
        return {key: np.zeros((batch, *shape), np.float32) for key, shape in self.state_shapes.items()}

    def _empty(self, lead: tuple[int, ...], probes: list[Probe]) -> Result:
        """Recordings of an empty batch, without calling onnxruntime."""
        outputs = {n: np.zeros((*lead, *self.shapes[n]), np.float32) for n in self.graph.outputs}
        return Result(outputs, {p.key: np.zeros((*lead, *self.shapes[p.node]), np.float32) for p in probes})

    def run(self, inputs: Any, *, num_steps: int | None = None, probes: Iterable = NO_PROBES) -> Result:
        arrays, steps, batch = prepare_sequence_inputs(self.graph, inputs, num_steps)
        requested = parse_probes(self.graph, probes)
        session = self._checked_session("sequence", requested, per_step=False)
        if batch == 0:
            return self._empty((steps, 0), requested)
        try:
            outputs, probed = session.sequence(arrays, steps, self._zeros(batch), requested)
        except SnnirError as error:
            add_note(error, f"while running {steps} steps of a batch of {batch}")
            raise
        return Result(outputs, probed)

    def reset(self, batch_size: int = 1) -> None:
        self.batch_size = check_batch_size(batch_size)
        self._states = self._zeros(self.batch_size)

    def step(self, inputs: Any, *, probes: Iterable = NO_PROBES) -> Result:
        if self._states is None:
            raise InputError("step() needs a stream: call reset(batch_size) first")
        requested = parse_probes(self.graph, probes)
        arrays = prepare_step_inputs(self.graph, inputs, self.batch_size)
        session = self._checked_session("step", requested, per_step=True)
        if self.batch_size == 0:
            return self._empty((0,), requested)
        outputs, probed, self._states = session.step(arrays, self._states, requested)
        return Result(outputs, probed)

    def get_state(self) -> dict[str, np.ndarray]:
        """A copy of the stream's states by name (``"lif1:membrane"``, delay lines ``"x[t-1]"``)."""
        if self._states is None:
            raise InputError("there is no stream state yet: call reset(batch_size) or set_state(...) first")
        return {key: value.copy() for key, value in self._states.items()}

    def set_state(self, states: Mapping[str, Any]) -> None:
        """Continue a stream from ``states`` (all of them, ``[B, *shape]`` each; B becomes the batch size)."""
        if not isinstance(states, Mapping):
            raise InputError(f"states must be a mapping {{name: array}}, found {type(states).__name__}")
        expected = list(self.state_shapes)
        for key in states:
            if key not in self.state_shapes:
                raise InputError(f"unknown state {key!r}; the model's states are {expected}")
        missing = [key for key in expected if key not in states]
        if missing:
            raise InputError(f"missing state {missing[0]!r}; set_state needs every state: {expected}")
        arrays = {key: _state_array(key, states[key], self.state_shapes[key]) for key in expected}
        batches = {key: a.shape[0] for key, a in arrays.items()}
        if len(set(batches.values())) > 1:
            raise InputError(f"states disagree on the batch size: {batches}")
        self.batch_size = next(iter(batches.values()), self.batch_size or 0)
        self._states = arrays


def _state_array(key: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A state given to ``set_state``: finite real numbers of shape ``[B, *shape]``, as a private
    float32 copy (the stream advances it; the caller's array stays as it was)."""
    array = as_float32(f"state {key!r}", value, copy=True)  # never an alias of the caller's array
    if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != tuple(shape):
        raise InputError(f"state {key!r}: expected shape [B, {', '.join(map(str, shape))}], found {list(array.shape)}")
    return array


class Runtime(OnnxModel):
    """Run an exported ``.onnx`` file: ``Runtime("model.onnx").run(x)``, with ``step``/``reset`` too.

    The file's own model serves both ``run`` and ``step`` (see the module docstring); ``metadata`` is
    its snnir document and ``graph`` the embedded graph (used to check inputs and probes).
    """

    def __init__(self, path: str | os.PathLike, **options: Any):
        model, data, doc, graph = open_onnx(path)
        super().__init__(graph, **options)
        self.path = Path(path)
        self.metadata = doc
        self.mode = doc["mode"]
        self.state_shapes = {s["name"]: tuple(s["shape"][1:]) for s in doc["states"]}
        self._file_session = self._new_session(data, doc, str(path))

    def session(self, mode: str, probes: list[Probe]) -> Session:
        return self._file_session

    def __repr__(self) -> str:
        return f"<Runtime {str(self.path)!r} mode={self.mode!r} graph={self.graph.name!r}>"


__all__ = ["OnnxModel", "Runtime", "Session", "OPTIMIZATION", "ORT_ERRORS"]
