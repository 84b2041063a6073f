"""Adversarial inputs on every backend, judged against the reference interpreter (the oracle).

Each case hands a backend an unusual but possible input (other dtypes and layouts, read-only or
misaligned buffers, non-finite values, lists, torch tensors, wrong names, odd probes...) through
``run``, ``predict`` and ``step``, with and without probes. A backend must do what the reference
does: raise the same error (type and message), or return the same arrays bit for bit (the graphs and
data are dyadic), warn only where the reference warns, never modify the input, and hand out results
that are its own (writing into one changes no input, no other result and no stream). Streams must
survive a rejected step unchanged, and numba's fast and checked ``step`` paths must agree.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pytest

import snnir
from snnir import LIF, Conv2d, Flatten, GraphBuilder, Linear
from snnir.errors import BackendNotFoundError, BackendUnavailableError, InputError, SnnirError
from snnir.registry import get_backend
from snnir.testing import dyadic

BACKENDS = ("numba", "torch", "onnx")
BATCH = 2


# -- graphs ---------------------------------------------------------------------------------------
def _seq_fc() -> snnir.Graph:
    """Sequence input, two Linear+LIF layers, outputs of spikes and membrane."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("seq_fc", num_steps=5)
    x = b.input("x", (6,), encoding="sequence")
    h = b.add("lif1", LIF(0.875), b.add("fc1", Linear(weight=dyadic(rng, (5, 6), bits=3), bias=dyadic(rng, 5, bits=3)), x))
    o = b.add("lif2", LIF(0.75), b.add("fc2", Linear(weight=dyadic(rng, (3, 5), bits=3)), h))
    b.output("spikes", o)
    b.output("membrane", o, "membrane")
    return b.build()


def _direct_conv() -> snnir.Graph:
    """Direct (static) image input through a convolution, Flatten and Linear."""
    rng = np.random.default_rng(1)
    b = GraphBuilder("direct_conv", num_steps=4)
    x = b.input("img", (1, 6, 6))
    h = b.add("lif1", LIF(0.875), b.add("conv", Conv2d(weight=dyadic(rng, (2, 1, 3, 3), bits=3), bias=dyadic(rng, 2, bits=3)), x))
    o = b.add("lif2", LIF(0.5), b.add("fc", Linear(weight=dyadic(rng, (3, 32), bits=3)), b.add("flat", Flatten(), h)))
    b.output("spikes", o)
    return b.build()


def _two_inputs() -> snnir.Graph:
    """A sequence and a direct input summed into one LIF."""
    rng = np.random.default_rng(2)
    b = GraphBuilder("two_inputs", num_steps=4)
    a, c = b.input("a", (4,), encoding="sequence"), b.input("c", (3,))
    fa = b.add("fa", Linear(weight=dyadic(rng, (5, 4), bits=3)), a)
    h = b.add("lif1", LIF(0.875), fa, b.add("fc", Linear(weight=dyadic(rng, (5, 3), bits=3)), c))
    b.output("spikes", h)
    b.output("membrane", h, "membrane")
    return b.build()


def _recurrent() -> snnir.Graph:
    """An RLeaky-style recurrent edge, and the input itself on a delayed edge (x[t] + x[t-1])."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("recurrent", num_steps=6)
    x = b.input("x", (4,), encoding="sequence")
    fc = b.add("fc", Linear(weight=dyadic(rng, (5, 4), bits=3)), x)
    b.connect(x, fc, delay=1)
    lif = b.add("lif1", LIF(0.875), fc)
    b.connect(b.add("rec", Linear(weight=dyadic(rng, (5, 5), bits=3, scale=0.5)), lif), lif, delay=1)
    o = b.add("lif2", LIF(0.75), b.add("fc2", Linear(weight=dyadic(rng, (2, 5), bits=3)), lif))
    b.output("spikes", o)
    return b.build()


GRAPHS = {"seq_fc": _seq_fc, "direct_conv": _direct_conv, "two_inputs": _two_inputs, "recurrent": _recurrent}


@pytest.fixture(scope="module")
def models() -> Callable[[str, str], Any]:
    """``models(graph, backend)``: each backend's model of each graph, compiled once for the module."""
    built: dict[tuple[str, str], Any] = {}

    def get(graph: str, backend: str) -> Any:
        if (graph, backend) not in built:
            try:
                options = getattr(get_backend(backend), "conformance_options", {})
            except (BackendNotFoundError, BackendUnavailableError) as error:
                pytest.skip(str(error))
            built[graph, backend] = snnir.compile(_graph(graph), backend, **options)
        return built[graph, backend]

    return get


@lru_cache(maxsize=None)
def _graph(name: str) -> snnir.Graph:
    return GRAPHS[name]()


def _base(graph: snnir.Graph, name: str, step: bool, batch: int = BATCH, seed: int = 0) -> np.ndarray:
    """Valid dyadic data for input ``name``: ``[B, *shape]`` for a step or a direct input, else ``[T, B, *shape]``."""
    node = graph.nodes[name]
    lead = (batch,) if step or node.encoding == "direct" else (graph.time.num_steps, batch)
    rng = np.random.default_rng(seed + graph.inputs.index(name))
    return dyadic(rng, (*lead, *node.shape), bits=2, scale=2.0)


def _inputs(graph: snnir.Graph, step: bool, batch: int = BATCH) -> dict[str, np.ndarray]:
    return {name: _base(graph, name, step, batch) for name in graph.inputs}


def _single(inputs: dict[str, np.ndarray]) -> Any:
    """``inputs`` as a call takes them: the array alone for a single-input graph."""
    return inputs if len(inputs) > 1 else next(iter(inputs.values()))


# -- the cases ------------------------------------------------------------------------------------
def _misaligned(a: np.ndarray) -> np.ndarray:
    """A float32 copy of ``a`` one byte off alignment (``np.frombuffer`` at offset 1)."""
    out = np.frombuffer(np.zeros(a.nbytes + 1, np.uint8).data, np.float32, a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _strided(a: np.ndarray) -> np.ndarray:
    wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), np.float32)
    wide[..., ::2] = a
    return wide[..., ::2]


def _at(a: np.ndarray, index: int, value: float, dtype: Any = np.float32) -> np.ndarray:
    out = a.astype(dtype)
    out.flat[index % a.size] = value
    return out


def _torch(make: Callable[[Any, np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    def case(a: np.ndarray) -> Any:
        return make(pytest.importorskip("torch"), a)

    return case


CASES: dict[str, Callable[[np.ndarray], Any]] = {
    "float32": lambda a: a.copy(),
    "float16": lambda a: a.astype(np.float16),
    "float64": lambda a: a.astype(np.float64),
    "longdouble": lambda a: a.astype(np.longdouble),
    "int64": lambda a: (4 * a).astype(np.int64),
    "int8": lambda a: (4 * a).astype(np.int8),
    "uint8": lambda a: (4 * np.abs(a)).astype(np.uint8),
    "bool": lambda a: a > 0,
    "big_endian": lambda a: a.astype(">f4"),
    "strided": _strided,
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "negative_strides": lambda a: np.ascontiguousarray(a[::-1])[::-1],
    "fortran": np.asfortranarray,
    "read_only": _read_only,
    "misaligned": _misaligned,
    "broadcast_view": lambda a: np.broadcast_to(a[:1], a.shape),
    "nan": lambda a: _at(a, a.size // 2, np.nan),
    "inf": lambda a: _at(a, 1, np.inf),
    "minus_inf": lambda a: _at(a, -1, -np.inf),
    "minus_zero": lambda a: np.where(a == 0, np.float32(-0.0), a),
    "subnormal": lambda a: a * np.float32(2.0**-130),  # still exact: multiples of 2^-132, above 2^-149
    "beyond_float32": lambda a: _at(a, 2, 1e39, np.float64),
    "float32_max_as_float64": lambda a: _at(a, 2, float(np.finfo(np.float32).max), np.float64),
    "list": lambda a: a.tolist(),
    "tuple": lambda a: tuple(a.tolist()),
    "ragged_list": lambda a: [[1.0], [1.0, 2.0]],
    "scalar": lambda a: 1.0,
    "numpy_scalar": lambda a: np.float32(1.0),
    "zero_d": lambda a: np.array(1.0, np.float32),
    "none": lambda a: None,
    "string": lambda a: "abc",
    "complex": lambda a: a.astype(np.complex64),
    "object": lambda a: a.astype(object),
    "datetime": lambda a: np.zeros(a.shape, "datetime64[s]"),
    "extra_axis": lambda a: a[None],
    "missing_axis": lambda a: a[0],
    "masked_array": lambda a: np.ma.masked_array(a, mask=a > 0),
    "torch": _torch(lambda torch, a: torch.from_numpy(a.copy())),
    "torch_requires_grad": _torch(lambda torch, a: torch.from_numpy(a.copy()).requires_grad_(True)),
    "torch_non_contiguous": _torch(lambda torch, a: torch.from_numpy(np.ascontiguousarray(a.T)).permute(*range(a.ndim - 1, -1, -1))),
    "torch_float64": _torch(lambda torch, a: torch.from_numpy(a.astype(np.float64))),
    "torch_bfloat16": _torch(lambda torch, a: torch.from_numpy(a.copy()).bfloat16()),
    "torch_nan": _torch(lambda torch, a: torch.from_numpy(_at(a, 0, np.nan))),
    "torch_meta": _torch(lambda torch, a: torch.empty(a.shape, device="meta")),
}
#: One more case: every input with an empty batch (B = 0), and a stream reset to 0.
EMPTY_BATCH = "empty_batch"
OPS = ("run", "run_probes", "predict", "step", "step_probes")


def _call(model: Any, graph: snnir.Graph, op: str, inputs: Any, batch: int) -> Any:
    probes = ["lif1", "lif1:membrane"] if op.endswith("probes") else ()
    if op.startswith("step"):
        model.reset(batch)
        return model.step(inputs, probes=probes)
    if op == "predict":
        return model.predict(inputs)
    return model.run(inputs, probes=probes)


def _case_inputs(graph: snnir.Graph, case: str, target: str, op: str) -> tuple[Any, Any, int]:
    """(inputs as the call takes them, the adversarial object, the stream's batch size)."""
    step = op.startswith("step")
    arrays = _inputs(graph, step)
    batch = BATCH
    if case == EMPTY_BATCH:
        axis = {n: 1 if not step and graph.nodes[n].encoding == "sequence" else 0 for n in arrays}
        arrays = {n: np.take(a, [], axis=axis[n]) for n, a in arrays.items()}
        batch = 0
    else:
        arrays[target] = CASES[case](arrays[target])
    return _single(arrays), arrays[target], batch


def _snapshot(x: Any) -> Any:
    if type(x).__module__ == "torch":
        return x.detach().clone()
    return np.array(x, copy=True) if isinstance(x, np.ndarray) else repr(x)


def _unchanged(x: Any, snapshot: Any) -> bool:
    if type(x).__module__ == "torch":
        x = x.detach()
        return x.device.type == "meta" or bool(((x == snapshot) | (x.isnan() & snapshot.isnan())).all())
    if isinstance(x, np.ndarray):
        return x.dtype == snapshot.dtype and np.array_equal(np.asarray(x), snapshot, equal_nan=x.dtype.kind == "f")
    return repr(x) == snapshot


def _outcome(call: Callable[[], Any]) -> tuple[tuple, list[str]]:
    """``(("ok", arrays) or ("error", type, message), warning messages)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except Exception as error:  # noqa: BLE001 - the comparison is the point
            return ("error", type(error), str(error)), [str(w.message) for w in caught]
    return ("ok", _arrays(result)), [str(w.message) for w in caught]


def _arrays(result: Any) -> dict[str, np.ndarray]:
    if isinstance(result, np.ndarray):
        return {"predict": result}
    return {**{f"output {k}": v for k, v in result.outputs.items()}, **{f"probe {k}": v for k, v in result.probes.items()}}


def _difference(expected: tuple, found: tuple) -> str | None:
    """What differs between two outcomes (None: nothing): the same error (type and message), or the
    same keys with arrays of the same dtype and shape, equal bit for bit (the sign of zeros included)."""
    if expected[0] != "ok" or found[0] != "ok":
        return None if expected == found else f"expected {_describe(expected)}, found {_describe(found)}"
    a, b = expected[1], found[1]
    if list(a) != list(b):
        return f"keys {list(a)} != {list(b)}"
    for key in a:
        if a[key].shape != b[key].shape or a[key].dtype != b[key].dtype:
            return f"{key}: {a[key].dtype}{list(a[key].shape)} != {b[key].dtype}{list(b[key].shape)}"
        if not (np.array_equal(a[key], b[key], equal_nan=True) and np.array_equal(np.signbit(a[key]), np.signbit(b[key]))):
            return f"{key}: values differ"
    return None


def _describe(outcome: tuple) -> str:
    return f"{outcome[1].__name__}({outcome[2]!r})" if outcome[0] == "error" else "results"


@lru_cache(maxsize=None)
def _reference(graph: str, case: str, target: str, op: str) -> tuple[tuple, list[str]]:
    model = snnir.compile(_graph(graph), "reference")
    inputs, _, batch = _case_inputs(_graph(graph), case, target, op)
    return _outcome(lambda: _call(model, _graph(graph), op, inputs, batch))


def _targets() -> list[tuple[str, str]]:
    return [(g, name) for g in GRAPHS for name in _graph(g).inputs]


# -- the matrix -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [*CASES, EMPTY_BATCH])
@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_input_matrix(models, backend, case):
    """Same error or same results as the reference, warnings only where it warns, input untouched,
    and every error a clear SnnirError (never one from deep inside a library)."""
    problems = []
    for graph, target in _targets():
        if case == EMPTY_BATCH and target != _graph(graph).inputs[0]:
            continue
        model = models(graph, backend)
        for op in OPS:
            where = f"{graph}/{target}/{op}"
            inputs, adversarial, batch = _case_inputs(_graph(graph), case, target, op)
            before = _snapshot(adversarial)
            found, warned = _outcome(lambda: _call(model, _graph(graph), op, inputs, batch))
            expected, expected_warnings = _reference(graph, case, target, op)
            if not _unchanged(adversarial, before):
                problems.append(f"{where}: the input was modified")
            if found[0] == "error" and not issubclass(found[1], SnnirError):
                problems.append(f"{where}: {found[1].__name__} from inside a library: {found[2]}")
            difference = _difference(expected, found)
            if difference:
                problems.append(f"{where}: {difference}")
            extra = [w for w in warned if w not in expected_warnings]
            if extra:
                problems.append(f"{where}: warnings the reference does not give: {extra}")
    assert not problems, "\n".join(problems)


# -- probes ---------------------------------------------------------------------------------------
#: Spellings of ``probes``, made for a graph (each call gets a fresh one: a generator is used up).
PROBES: dict[str, Callable[[snnir.Graph], Any]] = {
    "none": lambda g: None,
    "empty_list": lambda g: [],
    "empty_string": lambda g: "",
    "all": lambda g: "all",
    "unknown": lambda g: ["lif9"],
    "duplicated": lambda g: ["lif1", "lif1", "lif1:spikes"],
    "state_and_value": lambda g: ["lif1:membrane", ("lif1", "value")],
    "numpy_array": lambda g: np.array(["lif1", "lif1:membrane"]),
    "generator": lambda g: (p for p in ["lif1", "lif1:membrane"]),
    "set": lambda g: {"lif1"},
    "integer": lambda g: 0,
    "list_with_none": lambda g: ["lif1", None],
    "output_name": lambda g: ["spikes"],
    "input_node": lambda g: [g.inputs[0]],
    "bad_variable": lambda g: [next(n for n in g.nodes if g.nodes[n].kind == "Linear") + ":membrane"],
    "bad_tuple": lambda g: [("lif1",)],
    "bytes": lambda g: b"lif1",
}


@pytest.mark.parametrize("probes", list(PROBES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_matrix(models, backend, probes):
    """Every spelling of ``probes`` gets the reference's results or error, in run and step (numba's fast
    step path tests only for "no probes"), and a bad one is an InputError."""
    problems = []
    for graph_name in GRAPHS:
        graph = _graph(graph_name)
        for op, data in (("run", _single(_inputs(graph, step=False))), ("step", _single(_inputs(graph, step=True)))):
            outcomes = []
            for model in (snnir.compile(graph, "reference"), models(graph_name, backend)):
                if op == "step":
                    model.reset(BATCH)
                call = model.run if op == "run" else model.step
                outcomes.append(_outcome(lambda: call(data, probes=PROBES[probes](graph)))[0])
            expected, found = outcomes
            if expected[0] == "error" and expected[1] is not InputError:
                problems.append(f"{graph_name}/{op}: the reference raises {expected[1].__name__}: {expected[2]}")
            difference = _difference(expected, found)
            if difference:
                problems.append(f"{graph_name}/{op}: {difference}")
    assert not problems, "\n".join(problems)


def test_probe_keys_are_plain_strings():
    graph = _graph("seq_fc")
    result = snnir.compile(graph, "reference").run(_base(graph, "x", step=False), probes=np.array(["lif1", "lif1:membrane"]))
    assert [type(key) for key in result.probes] == [str, str]


def test_all_probes_record_every_value_and_state():
    graph = _graph("seq_fc")
    result = snnir.compile(graph, "reference").run(_base(graph, "x", step=False), probes="all")
    assert set(result.probes) == {"x", "fc1", "lif1", "lif1:membrane", "fc2", "lif2", "lif2:membrane"}


# -- names and time -------------------------------------------------------------------------------
def _name_cases(graph: snnir.Graph) -> dict[str, Callable[[dict], Any]]:
    first = graph.inputs[0]
    return {
        "mapping_for_one_input": dict,
        "missing_name": lambda d: {k: v for k, v in d.items() if k != first},
        "extra_name": lambda d: {**d, "extra": d[first]},
        "misspelled_name": lambda d: {(k + "_" if k == first else k): v for k, v in d.items()},
        "list_of_arrays": lambda d: list(d.values()),
        "empty_mapping": lambda d: {},
        # the other inputs (two_inputs' direct "c", [B, 3]) get a batch of one
        "batches_disagree": lambda d: {k: (v[:1] if k != first else v) for k, v in d.items()},
    }


def _time_cases(graph: snnir.Graph) -> dict[str, Callable[[Any], Any]]:
    def sequences(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Any], Any]:
        def call(model: Any) -> Any:
            inputs = _inputs(graph, step=False)
            return model.run(_single({n: (change(a) if graph.nodes[n].encoding == "sequence" else a) for n, a in inputs.items()}))
        return call

    def steps(num_steps: Any) -> Callable[[Any], Any]:
        def call(model: Any) -> Any:
            return model.run(_single(_inputs(graph, step=False)), num_steps=num_steps, probes=["lif1"])
        return call

    return {
        "zero_steps": sequences(lambda a: a[:0]),
        "one_step": sequences(lambda a: a[:1]),
        "more_steps_than_the_graph": sequences(lambda a: np.concatenate([a, a[::-1]])),
        "num_steps_2": steps(2),
        "num_steps_numpy": steps(np.int64(3)),
        "num_steps_beyond_sequence": steps(100),
        "num_steps_0": steps(0),
        "num_steps_float": steps(2.0),
        "num_steps_bool": steps(True),
        "num_steps_string": steps("3"),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_names_and_time(models, backend):
    """Input names (missing, extra, misspelt, a list instead of a mapping) and the number of steps
    (T = 0, T other than the graph's, num_steps of every kind) behave as in the reference."""
    problems = []
    for graph_name in GRAPHS:
        graph = _graph(graph_name)
        reference, model = snnir.compile(graph, "reference"), models(graph_name, backend)
        calls = dict(_time_cases(graph))
        for label, change in _name_cases(graph).items():
            calls[label] = lambda m, change=change: m.run(change(_inputs(graph, step=False)))
            calls["step_" + label] = lambda m, change=change: (m.reset(BATCH), m.step(change(_inputs(graph, step=True))))[1]
        for label, call in calls.items():
            expected, found = _outcome(lambda: call(reference))[0], _outcome(lambda: call(model))[0]
            difference = _difference(expected, found)
            if difference:
                problems.append(f"{graph_name}/{label}: {difference}")
    assert not problems, "\n".join(problems)


# -- streams --------------------------------------------------------------------------------------
def _frames(graph: snnir.Graph, count: int, batch: int = BATCH) -> list[Any]:
    return [_single({n: _base(graph, n, step=True, batch=batch, seed=10 * t) for n in graph.inputs}) for t in range(count)]


def _bad_steps(graph: snnir.Graph) -> dict[str, Callable[[Any], Any]]:
    first = graph.inputs[0]

    def on_first(change: Callable[[np.ndarray], Any]) -> Callable[[Any], Any]:
        return lambda f: {**f, first: change(f[first])} if isinstance(f, dict) else change(f)

    return {
        "larger_batch": on_first(lambda a: np.concatenate([a, a[:1]])),
        "smaller_batch": on_first(lambda a: a[:1]),
        "nan": on_first(lambda a: _at(a, 3, np.nan)),
        "inf_at_the_end": on_first(lambda a: _at(a, -1, np.inf)),
        "beyond_float32": on_first(lambda a: _at(a, 0, 1e39, np.float64)),
        "string": on_first(lambda a: "abc"),
        "sequence_shaped": on_first(lambda a: a[None]),
        "misspelled_name": lambda f: {first + "_": v for v in [f[first] if isinstance(f, dict) else f]},
    }


@pytest.mark.parametrize("probes", [(), ("lif1", "lif1:membrane")], ids=["no_probes", "probes"])
@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_rejected_step_leaves_the_stream_unchanged(models, backend, probes):
    """A step that raises changes nothing: the following steps give what they give without it."""
    problems = []
    for graph_name in GRAPHS:
        graph, model = _graph(graph_name), models(graph_name, backend)
        frames = _frames(graph, 3)
        model.reset(BATCH)
        clean = [_arrays(model.step(f, probes=probes)) for f in frames]
        for label, bad in _bad_steps(graph).items():
            model.reset(BATCH)
            first = _arrays(model.step(frames[0], probes=probes))
            rejected = _outcome(lambda: model.step(bad(frames[0]), probes=probes))[0]
            if rejected[0] != "error" or rejected[1] is not InputError:
                problems.append(f"{graph_name}/{label}: expected an InputError, found {rejected}")
            after = [first] + [_arrays(model.step(f, probes=probes)) for f in frames[1:]]
            for t, (a, b) in enumerate(zip(clean, after)):
                difference = _difference(("ok", a), ("ok", b))
                if difference:
                    problems.append(f"{graph_name}/{label}: step {t}: {difference}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_step_before_reset(backend):
    graph = _graph("seq_fc")
    try:
        model = snnir.compile(graph, backend, **getattr(get_backend(backend), "conformance_options", {}))
    except (BackendNotFoundError, BackendUnavailableError) as error:
        pytest.skip(str(error))
    with pytest.raises(InputError, match=r"^step\(\) needs a stream: call reset\(batch_size\) first$"):
        model.step(_frames(graph, 1)[0])


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_run_between_steps_leaves_the_stream_alone(models, backend):
    for graph_name in GRAPHS:
        graph, model = _graph(graph_name), models(graph_name, backend)
        frames = _frames(graph, 2)
        model.reset(BATCH)
        expected = [_arrays(model.step(f)) for f in frames]
        model.reset(BATCH)
        first = _arrays(model.step(frames[0]))
        model.run(_single(_inputs(graph, step=False, batch=3)))
        assert _difference(("ok", expected[1]), ("ok", _arrays(model.step(frames[1])))) is None, graph_name
        assert _difference(("ok", expected[0]), ("ok", first)) is None, graph_name


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_stream_reads_each_step_input_once(models, backend):
    """A streaming loop that refills one buffer each step (the usual real-time pattern) gets what a
    whole run of the same frames gets, even where a delayed edge reads the input's past (x[t-1])."""
    graph = _graph("recurrent")
    model = models("recurrent", backend)
    frames = _frames(graph, 4, batch=1)
    expected = snnir.compile(graph, "reference").run(np.stack(frames), probes=["fc"])
    model.reset(1)
    buffer = np.empty_like(frames[0])
    found = []
    for frame in frames:
        buffer[...] = frame
        found.append(model.step(buffer, probes=["fc"]).probes["fc"].copy())
    np.testing.assert_array_equal(np.stack(found), expected.probes["fc"])


def _copies(frame: Any) -> list[np.ndarray]:
    return [np.array(a, copy=True) for a in (frame.values() if isinstance(frame, dict) else [frame])]


def _shared(result: Any) -> list[tuple[str, str]]:
    """Pairs of keys of ``result`` whose arrays share memory."""
    arrays = list(_arrays(result).items())
    return [(k, other) for i, (k, a) in enumerate(arrays) for other, b in arrays[i + 1 :] if np.shares_memory(a, b)]


def _scribble(result: Any) -> None:
    for array in (*result.outputs.values(), *result.probes.values()):
        array[...] = 99.0


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_results_are_private(models, backend):
    """Writing into a result changes neither the caller's input, nor another result, nor the stream."""
    problems = []
    for graph_name in GRAPHS:
        graph, model = _graph(graph_name), models(graph_name, backend)
        probes = [graph.inputs[0], "lif1", "lif1:membrane", graph.output_source(graph.outputs[0])]
        frames = _frames(graph, 2)
        model.reset(BATCH)
        model.step(frames[0], probes=probes)
        expected = _arrays(model.step(frames[1], probes=probes))
        model.reset(BATCH)
        kept = _copies(frames[0])
        result = model.step(frames[0], probes=probes)
        problems += [f"{graph_name}: step results {a!r} and {b!r} share memory" for a, b in _shared(result)]
        _scribble(result)
        if _difference(("ok", expected), ("ok", _arrays(model.step(frames[1], probes=probes)))):
            problems.append(f"{graph_name}: writing into a step's result changed the stream")
        if any(not np.array_equal(a, b) for a, b in zip(kept, _copies(frames[0]))):
            problems.append(f"{graph_name}: writing into a step's result changed its input")
        inputs = _inputs(graph, step=False)
        snapshot = {n: a.copy() for n, a in inputs.items()}
        result = model.run(_single(inputs), probes=probes)
        problems += [f"{graph_name}: run results {a!r} and {b!r} share memory" for a, b in _shared(result)]
        _scribble(result)
        for name, array in inputs.items():
            if not np.array_equal(array, snapshot[name]):
                problems.append(f"{graph_name}: writing into run's result changed input {name!r}")
    assert not problems, "\n".join(problems)


def test_torch_never_wraps_read_only_arrays(models, monkeypatch):
    """torch warns once per process about a read-only array made a tensor (so the matrix catches it
    only when it comes first): check the calls themselves, for run, step and the training forward."""
    torch = pytest.importorskip("torch")
    model = models("seq_fc", "torch")
    wrapped = []

    def spy(make: Callable) -> Callable:
        def wrap(data: Any, *args: Any, **kwargs: Any) -> Any:
            wrapped.append(isinstance(data, np.ndarray) and not data.flags.writeable)
            return make(data, *args, **kwargs)
        return wrap

    monkeypatch.setattr(torch, "from_numpy", spy(torch.from_numpy))
    monkeypatch.setattr(torch, "as_tensor", spy(torch.as_tensor))
    x = _read_only(_base(_graph("seq_fc"), "x", step=False))
    model.run(x)
    model.reset(BATCH)
    model.step(_read_only(x[0]))
    model(x)
    assert wrapped and not any(wrapped)


def test_torch_forward_reads_numpy_inputs(models):
    """The training call takes numpy layouts that torch cannot wrap, and names what it cannot read."""
    pytest.importorskip("torch")
    model = models("seq_fc", "torch")
    x = _base(_graph("seq_fc"), "x", step=False)
    expected = model.run(x)["spikes"]
    found = model(np.ascontiguousarray(x[::-1])[::-1])["spikes"]
    np.testing.assert_array_equal(found.detach().numpy(), expected)
    with pytest.raises(InputError, match=r"^input 'x': cannot read as an array \(could not convert string to float: 'abc'\)$"):
        model("abc")


def test_numba_fast_and_checked_steps_agree(models):
    """A long numba stream mixing fast steps (float32, C-contiguous, writable, no probes) with checked
    ones (other dtypes, layouts, lists, probes) and rejected ones equals the reference step for step,
    across chunk refills (> 256 steps); results kept from earlier steps stay as they were."""
    forms = {
        "fast": lambda a: (a.copy(), ()),
        "float64": lambda a: (a.astype(np.float64), ()),
        "probes": lambda a: (a.copy(), ("lif1", "lif1:membrane")),
        "list": lambda a: (a.tolist(), ()),
        "read_only": lambda a: (_read_only(a), ()),
        "misaligned": lambda a: (_misaligned(a), ()),
        "fortran": lambda a: (np.asfortranarray(a), ()),
    }
    for graph_name in ("seq_fc", "direct_conv", "recurrent"):
        graph = _graph(graph_name)
        reference, numba = snnir.compile(graph, "reference"), models(graph_name, "numba")
        rng = np.random.default_rng(7)
        for batch in (1, 3):
            reference.reset(batch)
            numba.reset(batch)
            kept = []
            for t in range(300):
                x = (rng.random((batch, *graph.nodes[graph.inputs[0]].shape)) < 0.4).astype(np.float32) * np.float32(1.5)
                form = list(forms)[int(rng.integers(len(forms)))]
                if rng.random() < 0.1:
                    with pytest.raises(InputError):
                        numba.step(_at(x, int(rng.integers(x.size)), np.nan))
                data, probes = forms[form](x)
                expected, found = _arrays(reference.step(x, probes=probes)), _arrays(numba.step(data, probes=probes))
                assert _difference(("ok", expected), ("ok", found)) is None, f"{graph_name} batch {batch} step {t} ({form})"
                kept.append(({k: v.copy() for k, v in found.items()}, found))
            for copied, found in kept:
                assert all(np.array_equal(copied[k], found[k]) for k in found), f"{graph_name}: a kept result changed"
