"""The calling convention every inference backend shares (reference, numba, onnx).

* ``run(x, num_steps=None, probes=())`` runs a whole sequence from zero state and returns a
  :class:`Result`: ``result["spikes"]`` is ``[T, B, *shape]`` float32, ``result.probes["lif1:membrane"]`` too.
* ``reset(batch_size)`` then ``step(x_t)`` streams one step at a time; outputs are ``[B, *shape]``.
* ``predict(x)`` turns a read-out into class indices.

Inputs are one array (single-input graphs) or a mapping ``{input_name: array}``. A ``direct`` input is
``[B, *shape]`` (the same tensor every step), a ``sequence`` input ``[T, B, *shape]``; ``step`` always
takes ``[B, *shape]``. Any real dtype is accepted and converted to float32; non-finite values, wrong
shapes and unknown names raise :class:`InputError` before anything runs, and a rejected ``step``
leaves the stream as it was. ``probes`` is a probe, an iterable of probes, ``"all"`` or None (see
:func:`parse_probes`).

Inputs are never modified, and results are the caller's: no result array shares memory with an
input, another result or a stream's state, and a stream keeps no reference to a step's input (a
real-time loop may refill one buffer every step).
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator, Mapping

import numpy as np

from .errors import InputError
from .ir.graph import Graph
from .ir.io import Input, Output

READOUTS = ("count", "max", "last", "mean")
FLOAT32 = np.dtype(np.float32)
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Result(Mapping[str, np.ndarray]):
    """Recorded outputs by name (the mapping itself) and probes by probe key (``.probes``)."""

    outputs: dict[str, np.ndarray]
    probes: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.outputs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


@dataclass(frozen=True)
class Probe:
    """A request to record ``variable`` (``"value"`` or a state variable) of ``node``; ``key`` names it."""

    key: str
    node: str
    variable: str


#: The default ``probes`` of ``run`` and ``step``: none. (A backend may test ``probes is NO_PROBES``
#: for its fast path: CPython has one empty tuple, so an explicit ``probes=()`` is this object too.)
NO_PROBES: tuple = ()


def parse_probes(graph: Graph, probes: Iterable[str | tuple[str, str]] | str | None) -> list[Probe]:
    """Turn ``"lif1"``, ``"lif1:membrane"`` or ``("lif1", "membrane")`` into checked :class:`Probe` s.

    ``probes`` is one such spec, an iterable of them, ``"all"`` (every node's value and every neuron
    state, as for ``export_onnx``) or None (no probes)."""
    if probes is None:
        return []
    if isinstance(probes, str):
        if probes != "all" and probes.split(":")[0] not in graph.nodes and _means_all(probes):
            raise InputError(f"probes={probes!r}: for every node's value and state, write probes=\"all\"")
        probes = every_probe(graph) if probes == "all" else [probes]
    elif not isinstance(probes, Iterable):
        raise InputError(f"probes must be a probe ('node', 'node:variable'), an iterable of probes or 'all', found {probes!r}")
    parsed = []
    for item in probes:
        if isinstance(item, tuple) and len(item) == 2:
            node, variable = item
        elif isinstance(item, str):
            item = str(item)  # a numpy string (probes given as an array) keys the result as a plain str
            node, variable = (item, "value") if item in graph.nodes or ":" not in item else item.rsplit(":", 1)
        else:
            raise InputError(f"a probe is 'node', 'node:variable' or (node, variable), found {item!r}")
        if node not in graph.nodes:
            close = difflib.get_close_matches(str(node), list(graph.nodes), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"probe {item!r}: unknown node {node!r}{hint}")
        target = graph.nodes[node]
        if isinstance(target, Output):
            raise InputError(f"probe {item!r}: {node!r} is an output, already in the result; to probe what it "
                             f"records, name node {graph.output_source(node)!r}")
        if variable not in target.recordable():
            raise InputError(
                f"probe {item!r}: node {node!r} ({target.kind}) has no {variable!r}; "
                f"it can record: {', '.join(target.recordable())}"
            )
        variable = "value" if variable == "spikes" else variable
        parsed.append(Probe(f"{node}:{variable}" if variable != "value" else node, node, variable))
    return parsed


def _means_all(text: str) -> bool:
    """Whether ``text`` looks like a misspelt ``"all"`` ("All", "al", "alll", "every", "*")."""
    word = text.strip().lower()
    return word in ("every", "*") or bool(difflib.get_close_matches(word, ["all"], n=1, cutoff=0.6))


def every_probe(graph: Graph) -> list[str]:
    """The specs of ``probes="all"``: every node's value and every state variable, outputs excepted."""
    return [
        spec
        for name, node in graph.nodes.items()
        if not isinstance(node, Output)
        for spec in [name, *(f"{name}:{variable}" for variable in node.state_variables)]
    ]


def check_output(graph: Graph, output: str | None) -> str:
    """``output``, or the graph's first output when None; an unknown name is an :class:`InputError`
    listing the outputs (with the closest one)."""
    if output is None:
        return graph.outputs[0]
    if output not in graph.outputs:
        close = difflib.get_close_matches(str(output), list(graph.outputs), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown output {output!r}{hint}; the graph's outputs are {list(graph.outputs)}")
    return output


def as_float32(what: str, data: Any, *, copy: bool = False) -> np.ndarray:
    """``data`` (an array, nested lists, numbers, a torch tensor) as a C-contiguous float32 array of at
    least one dimension, of finite real numbers, or an :class:`InputError` naming ``what`` ("input 'x'",
    "state 'lif[t-1]'") and the first bad value with its index. A float32 C-contiguous array of at
    least one dimension is taken as it is (only the finiteness test), unless ``copy`` asks for an
    array that shares no memory with ``data`` (for callers that keep it beyond the call)."""
    if type(data) is np.ndarray and data.dtype == FLOAT32 and data.flags.c_contiguous and data.ndim:
        array = data  # (a 0-d array goes the long way, where ascontiguousarray makes it 1-d)
    else:
        try:
            if callable(getattr(data, "detach", None)) and callable(getattr(data, "cpu", None)):
                data = data.detach().cpu()  # a torch tensor, maybe on a GPU (or without data: "meta")
            given = np.asarray(data)
        except (TypeError, ValueError, RuntimeError) as error:
            raise InputError(f"{what}: cannot read as an array ({error})") from None
        if given.dtype.kind not in "biuf":
            raise InputError(f"{what}: expected real numbers, found dtype {given.dtype}")
        if given.dtype.kind == "f" and given.dtype.itemsize > 4:  # name a value beyond float32 as given
            with np.errstate(invalid="ignore"):
                _check_finite(what, given, np.abs(given) <= FLOAT32_MAX)
        with np.errstate(over="ignore"):
            array = np.ascontiguousarray(given, dtype=np.float32)
        if array is not given and array.flags.owndata:
            copy = False  # converted: already an array of its own
    _check_finite(what, array, np.isfinite(array) if array.size else True)
    return array.copy() if copy else array


def _check_finite(what: str, array: np.ndarray, good: Any) -> None:
    if not np.all(good):
        index = tuple(int(i) for i in np.argwhere(~np.asarray(good))[0])
        raise InputError(f"{what}: value {array[index]} at index {index} is not finite (NaN, inf or beyond float32)")


def _named_inputs(graph: Graph, inputs: Any) -> dict[str, Any]:
    names = graph.inputs
    if isinstance(inputs, Mapping):
        unknown = [k for k in inputs if k not in names]
        if unknown:
            raise InputError(f"unknown input {unknown[0]!r}; the graph's inputs are {list(names)}")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputError(f"missing input {missing[0]!r}; the graph's inputs are {list(names)}")
        return dict(inputs)
    if len(names) != 1:
        raise InputError(f"the graph has {len(names)} inputs {list(names)}; pass a mapping {{name: array}}")
    return {names[0]: inputs}


def prepare_sequence_inputs(
    graph: Graph, inputs: Any, num_steps: int | None = None
) -> tuple[dict[str, np.ndarray], int, int]:
    """Check and convert the inputs of a whole-sequence run; returns ``(arrays, T, B)``."""
    arrays: dict[str, np.ndarray] = {}
    steps_seen: dict[str, int] = {}
    batches: dict[str, int] = {}
    for name, data in _named_inputs(graph, inputs).items():
        node: Input = graph.nodes[name]  # type: ignore[assignment]
        array = as_float32(f"input {name!r}", data)
        lead = 2 if node.encoding == "sequence" else 1
        layout = "[T, B, " if lead == 2 else "[B, "
        expected = layout + ", ".join(map(str, node.shape)) + "]"
        if array.ndim != lead + len(node.shape) or tuple(array.shape[lead:]) != tuple(node.shape):
            raise InputError(f"input {name!r} ({node.encoding}): expected shape {expected}, found {list(array.shape)}")
        if lead == 2:
            steps_seen[name] = array.shape[0]
        batches[name] = array.shape[lead - 1]
        arrays[name] = array
    if len(set(batches.values())) > 1:
        raise InputError(f"inputs disagree on the batch size: {batches}")
    if num_steps is not None:
        if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
            raise InputError(f"num_steps must be a positive integer, found {num_steps!r}")
        steps = int(num_steps)
        short = {n: t for n, t in steps_seen.items() if t < steps}
        if short:
            raise InputError(f"num_steps={steps}, but sequence inputs hold fewer steps: {short}")
    elif steps_seen:
        if len(set(steps_seen.values())) > 1:
            raise InputError(f"sequence inputs disagree on the number of steps: {steps_seen}")
        steps = next(iter(steps_seen.values()))
    else:
        steps = graph.time.num_steps
    if steps == 0:
        raise InputError("sequence inputs hold zero steps")
    return arrays, steps, next(iter(batches.values()))


def prepare_step_inputs(graph: Graph, inputs: Any, batch_size: int) -> dict[str, np.ndarray]:
    """Check and convert the inputs of one streaming step (``[B, *shape]`` for every encoding)."""
    arrays = {}
    for name, data in _named_inputs(graph, inputs).items():
        node: Input = graph.nodes[name]  # type: ignore[assignment]
        array = as_float32(f"input {name!r}", data, copy=True)  # backends may keep it (delay lines, results)
        expected = (batch_size, *node.shape)
        if tuple(array.shape) != expected:
            hint = " (the batch size is fixed by reset(), or by set_state() where a backend has it; call reset again to change it)" if array.shape[1:] == tuple(node.shape) else ""
            raise InputError(f"input {name!r} at this step: expected shape {list(expected)}, found {list(array.shape)}{hint}")
        arrays[name] = array
    return arrays


def check_batch_size(batch_size: Any) -> int:
    """A stream's batch size: an integer >= 0 (an empty batch is legal and yields empty outputs)."""
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 0:
        raise InputError(f"batch_size must be an integer >= 0, found {batch_size!r}")
    return int(batch_size)


def readout(recording: np.ndarray, mode: str) -> np.ndarray:
    """Class indices from a ``[T, B, C]`` recording: argmax of the spike count, max, last or mean over time."""
    if mode not in READOUTS:
        raise InputError(f"readout must be one of {list(READOUTS)}, found {mode!r}")
    if recording.ndim != 3:
        raise InputError(f"a read-out needs a [T, B, classes] recording, found shape {list(recording.shape)}")
    reduce = {"count": lambda r: r.sum(0), "max": lambda r: r.max(0), "last": lambda r: r[-1], "mean": lambda r: r.mean(0)}
    return np.argmax(reduce[mode](recording), axis=-1)


class CompiledModel(ABC):
    """Base of compiled inference models; subclasses implement run, reset and step."""

    backend: ClassVar[str] = "?"

    def __init__(self, graph: Graph):
        self.graph = graph
        self.shapes = dict(graph.shapes)
        self.batch_size: int | None = None

    @abstractmethod
    def run(self, inputs: Any, *, num_steps: int | None = None, probes: Iterable = NO_PROBES) -> Result:
        """Run a whole sequence from zero state (the streaming state is left untouched)."""

    @abstractmethod
    def reset(self, batch_size: int = 1) -> None:
        """Zero every state for a stream of ``batch_size`` samples."""

    @abstractmethod
    def step(self, inputs: Any, *, probes: Iterable = NO_PROBES) -> Result:
        """Advance the stream by one step; outputs are ``[B, *shape]``."""

    def predict(self, inputs: Any, *, output: str | None = None, readout_mode: str | None = None) -> np.ndarray:
        """Class indices ``[B]``: by spike count for spike outputs, by maximum over time otherwise."""
        output = check_output(self.graph, output)
        record = self.graph.nodes[output].record  # type: ignore[attr-defined]
        source = self.graph.nodes[self.graph.output_source(output)]
        spikes = record == "spikes" or (record == "value" and source.spiking)
        return readout(self.run(inputs)[output], readout_mode or ("count" if spikes else "max"))

    def __call__(self, inputs: Any, **kwargs: Any) -> Result:
        return self.run(inputs, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend={self.backend!r} graph={self.graph.name!r}>"


__all__ = [
    "as_float32",
    "check_output",
    "CompiledModel",
    "Result",
    "Probe",
    "NO_PROBES",
    "every_probe",
    "parse_probes",
    "prepare_sequence_inputs",
    "prepare_step_inputs",
    "readout",
    "check_batch_size",
    "READOUTS",
]
