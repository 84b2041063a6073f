"""Extending snnir from outside its tree, as docs/architecture.md ("Extending snnir from another
package") tells: a stateless node kind (Clamp) and a neuron kind (AdaptiveLIF) with rules for every
backend, checked by the conformance helper, saved and loaded, trained with the surrogate; a backend
registered in the process. Also the checks the extension points make (kind names, rules).

Node kinds and rules are process-wide, so the ``plugin`` fixture defines them against copies of
``Node.registry`` and of the lowering tables: snnir's own completeness checks (``RULES.missing()``,
docs/support.md) must not see them afterwards. Backends whose extra is missing are skipped.
"""

import re
import sys
import textwrap
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest

import snnir
from snnir import registry
from snnir.errors import BackendNotFoundError, BackendUnavailableError, NodeParameterError, ShapeError, UnsupportedNodeError
from snnir.ir.fields import Flag, SurrogateField, Tensor, spec
from snnir.ir.node import Node
from snnir.analysis import synaptic_operations
from snnir.lowering import LoweringTable
from snnir.passes import sparse_values
from snnir.reference.kernels import heaviside
from snnir.reference.neurons import NeuronKernel
from snnir.reference.rules import Stateless
from snnir.testing import Case, assert_graph_equal, assert_matches_reference, declared_gap, spike_train
from snnir.testing.dyadic import dyadic

OPTIONAL_BACKENDS = ("torch", "numba", "onnx")
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _kinds() -> SimpleNamespace:
    """The plug-in's node kinds (docs/architecture.md, step 1), defined when called."""

    @dataclass(frozen=True, eq=False, repr=False)
    class Clamp(Node):
        """``y = min(max(x, lo), hi)`` element-wise; ``lo``/``hi`` scalars or per element, ``lo <= hi``."""

        lo: Any = spec(Tensor(per_neuron=True))
        hi: Any = spec(Tensor(per_neuron=True))

        def _check(self) -> None:
            if np.any(self.lo > self.hi):
                raise NodeParameterError("Clamp: lo must be <= hi")

        @property
        def keeps_zeros(self) -> bool:  # clamp(0) = 0 only when the range holds 0
            return bool(np.all(self.lo <= 0) and np.all(self.hi >= 0))

        def infer_output(self, input_shape):
            self.check_per_neuron(input_shape)
            return tuple(input_shape)

    @dataclass(frozen=True, eq=False, repr=False)
    class AdaptiveLIF(Node):
        """``V = β·U' + I``; ``S = H(V − (θ + γ·a'))``; ``U = V − S·θ``; ``a = ρ·a' + S``; output ``S``."""

        beta: Any = spec(Tensor(per_neuron=True))
        rho: Any = spec(Tensor(per_neuron=True), 0.5)
        gamma: Any = spec(Tensor(per_neuron=True), 0.5)
        _: KW_ONLY
        threshold: Any = spec(Tensor(per_neuron=True), 1.0)
        surrogate: Any = spec(SurrogateField(), "atan")
        learn_beta: bool = spec(Flag(), False)

        stateful: ClassVar[bool] = True
        spiking: ClassVar[bool] = True
        state_variables: ClassVar[tuple[str, ...]] = ("membrane", "adaptation")
        training_fields: ClassVar[tuple[str, ...]] = ("surrogate", "learn_beta")

        def infer_output(self, input_shape):
            self.check_per_neuron(input_shape)
            return tuple(input_shape)

    return SimpleNamespace(Clamp=Clamp, AdaptiveLIF=AdaptiveLIF)


# -- reference rules: rule(node, input_shape, output_shape) -> kernel (x, state) -> (y, state), float32 NumPy --
class _AdaptiveLIFKernel(NeuronKernel):
    state_variables = ("membrane", "adaptation")

    def __init__(self, node, shape):
        super().__init__(shape)
        self.node = node

    def __call__(self, x, state):
        n = self.node
        v = n.beta * state["membrane"] + x
        spikes = heaviside(v - (n.threshold + n.gamma * state["adaptation"]))
        return spikes, {"membrane": v - spikes * n.threshold, "adaptation": n.rho * state["adaptation"] + spikes}


def _reference_rules(kinds, tmp_path):
    def clamp(node, input_shape, output_shape):
        return Stateless(lambda x: np.minimum(np.maximum(x, node.lo), node.hi), output_shape)

    def adaptive_lif(node, input_shape, output_shape):
        return _AdaptiveLIFKernel(node, output_shape)

    return {kinds.Clamp: clamp, kinds.AdaptiveLIF: adaptive_lif}


# -- torch rules: nn.Modules (docs/torch.md, "Extending") ----------------------------------------------------
def _torch_rules(kinds, tmp_path):
    import torch

    from snnir.backends.pytorch.layers import register, to_array
    from snnir.backends.pytorch.layers import Stateless as TorchStateless
    from snnir.backends.pytorch.neurons import Neuron
    from snnir.backends.pytorch.surrogates import spike, surrogate_backward

    class Clamp(TorchStateless):
        def __init__(self, node):
            super().__init__()
            register(self, "lo", node.lo, False)
            register(self, "hi", node.hi, False)

        def forward(self, x):
            return torch.minimum(torch.maximum(x, self.lo), self.hi)

    class AdaptiveLIF(Neuron):
        state_variables = ("membrane", "adaptation")

        def __init__(self, node, shape):
            super().__init__(shape)
            register(self, "beta", node.beta, node.learn_beta)
            for name in ("rho", "gamma", "threshold"):
                register(self, name, getattr(node, name), False)
            self.surrogate = surrogate_backward(node.surrogate)

        def step(self, x, state):
            v = self.beta * state["membrane"] + x
            spikes = spike(v - (self.threshold + self.gamma * state["adaptation"]), self.surrogate)
            return spikes, {"membrane": v - spikes * self.threshold, "adaptation": self.rho * state["adaptation"] + spikes}

        def sequence(self, drive, state, steps):  # a loop over step: ordinary autograd
            state = self.init_state(drive.shape[1], drive) if state is None else state
            values, records = [], {name: [] for name in self.state_variables}
            for t in range(steps):
                value, state = self.step(drive[min(t, drive.shape[0] - 1)], state)
                values.append(value)
                for name in self.state_variables:
                    records[name].append(state[name])
            return torch.stack(values), {k: torch.stack(v) for k, v in records.items()}, state

        def to_node(self, node):  # to_graph() needs it of every neuron module (neurons.Neuron has none)
            return node.replace(beta=to_array(self.beta))

    return {kinds.Clamp: lambda node, i, o: Clamp(node), kinds.AdaptiveLIF: lambda node, i, o: AdaptiveLIF(node, o)}


# -- numba rules: a kernel in an importable module, an emit rule declaring its arguments (docs/numba.md) ----
NUMBA_KERNELS = '''
import numpy as np
from numba import njit

@njit
def clamp(x, lo, hi, y):
    for i in range(y.size):
        v = x[i] if x[i] > lo[i] else lo[i]
        y[i] = v if v < hi[i] else hi[i]

@njit
def adaptive_lif(x, membrane, adaptation, beta, rho, gamma, theta, y):
    for i in range(y.size):
        v = beta[i] * membrane[i] + x[i]
        s = np.float32(1.0) if v - (theta[i] + gamma[i] * adaptation[i]) > np.float32(0.0) else np.float32(0.0)
        membrane[i] = v - s * theta[i]
        adaptation[i] = rho[i] * adaptation[i] + s
        y[i] = s
'''


def _numba_rules(kinds, tmp_path):
    (tmp_path / "extending_numba_kernels.py").write_text(textwrap.dedent(NUMBA_KERNELS))
    import extending_numba_kernels as k

    def clamp(ctx):
        layout = ctx.x.layout
        lo, hi = ctx.per_neuron("lo", ctx.node.lo, layout), ctx.per_neuron("hi", ctx.node.hi, layout)
        ctx.call(k.clamp, ctx.x.expr, lo, hi, ctx.output(layout))

    def adaptive_lif(ctx):
        layout = ctx.x.layout
        params = [ctx.per_neuron(name, getattr(ctx.node, name), layout) for name in ("beta", "rho", "gamma", "threshold")]
        states = [ctx.state(name, layout) for name in ("membrane", "adaptation")]
        ctx.call(k.adaptive_lif, ctx.x.expr, *states, *params, ctx.output(layout))

    return {kinds.Clamp: clamp, kinds.AdaptiveLIF: adaptive_lif}


# -- onnx rules: one ONNX node per float32 operation, in the reference's order --------------------------------
def _onnx_rules(kinds, tmp_path):
    def clamp(ctx, name, node, x):
        return ctx.op("Min", ctx.op("Max", x, ctx.param(name, "lo"), hint=f"{name}/max"), ctx.param(name, "hi"), hint=name)

    def adaptive_lif(ctx, name, node, x):
        u0, a0 = ctx.previous(name, "membrane"), ctx.previous(name, "adaptation")
        p = {field: ctx.param(name, field) for field in ("beta", "rho", "gamma", "threshold")}
        v = ctx.op("Add", ctx.op("Mul", p["beta"], u0, hint=f"{name}/leak"), x, hint=f"{name}/v")
        effective = ctx.op("Add", p["threshold"], ctx.op("Mul", p["gamma"], a0, hint=f"{name}/raise"), hint=f"{name}/theta")
        s = ctx.heaviside(ctx.op("Sub", v, effective, hint=f"{name}/z"), f"{name}/spike")
        ctx.set_next(name, "membrane", ctx.op("Sub", v, ctx.op("Mul", s, p["threshold"], hint=f"{name}/r"), hint=f"{name}/u"))
        ctx.set_next(name, "adaptation", ctx.op("Add", ctx.op("Mul", p["rho"], a0, hint=f"{name}/decay"), s, hint=f"{name}/a"))
        return s

    return {kinds.Clamp: clamp, kinds.AdaptiveLIF: adaptive_lif}


RULES = {"reference": _reference_rules, "torch": _torch_rules, "numba": _numba_rules, "onnx": _onnx_rules}


def _isolated_table(monkeypatch, backend):
    """``backend``'s lowering table, restored after the test; skips when the backend is unavailable."""
    try:
        table = snnir.get_backend(backend).rules
    except BackendUnavailableError as error:
        pytest.skip(str(error))
    monkeypatch.setattr(table, "_rules", dict(table._rules))
    return table


@pytest.fixture
def kinds_undone(monkeypatch):
    """Node kinds defined by the test vanish from the registry afterwards."""
    monkeypatch.setattr(Node, "registry", dict(Node.registry))


@pytest.fixture
def plugin(kinds_undone, monkeypatch, tmp_path):
    """The plug-in imported: its kinds defined and its rules registered in each backend's table
    (``register(backend)`` for the optional ones), all undone afterwards."""
    monkeypatch.setattr(registry, "_cache", dict(registry._cache))
    monkeypatch.syspath_prepend(str(tmp_path))
    kinds = _kinds()

    def register(backend):
        table = _isolated_table(monkeypatch, backend)
        for kind, rule in RULES[backend](kinds, tmp_path).items():
            table.register(kind)(rule)

    register("reference")
    yield SimpleNamespace(**vars(kinds), register=register)
    sys.modules.pop("extending_numba_kernels", None)


def _graph(kinds, rng, learn_beta=False):
    builder = snnir.GraphBuilder("extended", num_steps=10)
    x = builder.input("x", (6,), encoding="sequence")
    fc = builder.add("fc", snnir.Linear(weight=dyadic(rng, (5, 6), bits=3), bias=dyadic(rng, 5, bits=3, scale=0.5)), x)
    clamp = builder.add("clamp", kinds.Clamp(dyadic(rng, 5, bits=2, scale=0.5) - 0.5, 1.0), fc)
    alif = builder.add("alif", kinds.AdaptiveLIF(0.75, rho=np.float32(0.5), gamma=dyadic(rng, 5, bits=2) ** 2, learn_beta=learn_beta), clamp)
    builder.output("spikes", alif)
    builder.output("membrane", alif, "membrane")
    return builder.build(), spike_train(rng, (10, 3, 6), 0.5)


def test_user_kinds_validate_and_infer_shapes(plugin):
    with pytest.raises(NodeParameterError, match="lo must be <= hi"):
        plugin.Clamp(1.0, 0.0)
    with pytest.raises(ShapeError, match=r"Clamp.lo has shape \(3,\), which does not broadcast"):
        snnir.validate(snnir.Sequential(plugin.Clamp(np.zeros(3), 1.0), input_shape=(4,)))
    graph, _ = _graph(plugin, np.random.default_rng(0))
    assert graph.shapes["alif"] == (5,) and "membrane, adaptation" in graph.summary()


def test_user_kinds_take_part_in_the_analyses(plugin):
    """keeps_zeros (here a property of the fields) lets sparsity pass a user kind; macs counts a user synapse."""
    builder = snnir.GraphBuilder("sparse", num_steps=2)
    x = builder.input("x", (4,), encoding="sequence")
    through = builder.add("through", plugin.Clamp(-1.0, 1.0), x)
    shifted = builder.add("shifted", plugin.Clamp(0.5, 1.0), x)
    builder.output("a", builder.add("fa", snnir.Linear(weight=np.ones((3, 4), np.float32)), through))
    builder.output("b", builder.add("fb", snnir.Linear(weight=np.ones((3, 4), np.float32)), shifted))
    graph = builder.build()
    assert {"x", "through"} <= sparse_values(graph) and "shifted" not in sparse_values(graph)
    assert [(c.node, c.macs) for c in synaptic_operations(graph)] == [("fa", 12), ("fb", 12)]


@pytest.mark.parametrize("suffix", ["snnir", "yaml"])
def test_user_kinds_save_and_load(plugin, tmp_path, suffix):
    graph, _ = _graph(plugin, np.random.default_rng(0))
    snnir.save(graph, tmp_path / f"g.{suffix}")
    assert_graph_equal(snnir.load(tmp_path / f"g.{suffix}"), graph)


@pytest.mark.parametrize("backend", ["reference", *OPTIONAL_BACKENDS])
def test_user_kinds_match_the_reference(plugin, backend):
    """The conformance helper on a user case: outputs and every state, probes of user variables included."""
    if backend != "reference":
        plugin.register(backend)
    case = Case("clamp_adaptive_lif", lambda rng: _graph(plugin, rng))
    assert_matches_reference(case, backend, **getattr(snnir.get_backend(backend), "conformance_options", {}))


def test_user_neuron_trains_with_the_surrogate(plugin):
    torch = pytest.importorskip("torch")
    plugin.register("torch")
    graph, data = _graph(plugin, np.random.default_rng(1), learn_beta=True)
    model = snnir.compile(graph, "torch")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = (model(torch.tensor(data))["spikes"].sum(0) - 4.0).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model.layer("fc").weight.grad.abs().sum() > 0  # the surrogate carried gradients through the neuron
    assert model.layer("alif").beta.grad is not None
    assert losses[-1] < losses[0]
    assert type(model.to_graph().nodes["alif"]) is plugin.AdaptiveLIF


class _NoDelays:
    """A backend wrapping the reference that refuses delayed edges and declares it (a known gap)."""

    name = "no-delays"
    extra = None
    known_gaps = {"delay": "refuses delayed edges"}

    @property
    def rules(self):
        return snnir.get_backend("reference").rules

    def compile(self, graph, *, overrides=None):
        if any(edge.delay for edge in graph.edges):
            raise UnsupportedNodeError("backend 'no-delays' does not run delayed edges")
        return snnir.get_backend("reference").compile(graph, overrides=overrides)


def test_a_backend_registered_in_process(plugin, monkeypatch, capsys):
    from snnir.cli import main
    from snnir.testing import CASES

    monkeypatch.setattr(registry, "_registered", {})
    registry.register_backend("no-delays", _NoDelays)
    assert "no-delays" in registry.backend_names()
    assert_matches_reference(CASES["lif_zero_next_step"], "no-delays")
    gap = CASES["self_delay_and_input_delay"]
    assert declared_gap(snnir.get_backend("no-delays"), gap) == "delay: refuses delayed edges"  # a strict xfail
    assert declared_gap(snnir.get_backend("no-delays"), CASES["lif_zero_next_step"]) is None
    with pytest.raises(UnsupportedNodeError):
        assert_matches_reference(gap, "no-delays")
    assert main(["info", "--backends"]) == 0
    matrix = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in matrix.splitlines()}
    column = rows["node"].index("no-delays")
    assert rows["Clamp"][0] == rows["Clamp"][column] == "yes"  # the reference's rules, Clamp's included
    assert "no-delays gap: delay: refuses delayed edges" in matrix
    registry.unregister_backend("no-delays")
    with pytest.raises(BackendNotFoundError, match="unknown backend 'no-delays'"):
        snnir.get_backend("no-delays")


def test_the_architecture_example_runs(kinds_undone, monkeypatch):
    """docs/architecture.md's example (skipped by the docs' snippet test, as it defines a kind for good)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    code = re.search(r"## Extending snnir from another package.*?```python\n(.*?)```", text, re.S)[1]
    _isolated_table(monkeypatch, "reference")
    namespace = {"__name__": "architecture_example"}
    exec(compile(code, str(ARCHITECTURE), "exec"), namespace)
    assert namespace["spikes"].shape == (5, 2, 4)
    _isolated_table(monkeypatch, "torch")
    namespace["register_torch"]()

    def make(rng):
        return namespace["graph"], rng.standard_normal((2, 3)).astype(np.float32)

    assert_matches_reference(Case("architecture_clamp", make, exact=False), "torch")  # general floats: within 1e-4


# -- the checks of the extension points ------------------------------------------------------------------------
def test_a_kind_name_taken_by_another_module_is_refused(kinds_undone):
    def define(module):
        namespace = {"__name__": module, "dataclass": dataclass, "Node": Node}
        exec("@dataclass(frozen=True, eq=False, repr=False)\nclass Gate(Node):\n    pass", namespace)
        return namespace["Gate"]

    first = define("pkg_a")
    assert define("pkg_a") is not first and Node.registry["Gate"].__module__ == "pkg_a"  # a re-run replaces itself
    with pytest.raises(TypeError, match=r"node kind 'Gate' is already registered by pkg_a.Gate; .* pkg_b.Gate needs another name"):
        define("pkg_b")
    assert Node.registry["Gate"].__module__ == "pkg_a"


def test_a_rule_that_is_not_callable_is_refused_when_given(plugin):
    table = snnir.get_backend("reference").rules
    with pytest.raises(UnsupportedNodeError, match="the rule given for Clamp is not callable: <module 'textwrap'"):
        table.with_overrides({plugin.Clamp: textwrap})
    with pytest.raises(UnsupportedNodeError, match="the rule given for Clamp is not callable: 'clamp_rule'"):
        table.register(plugin.Clamp)("clamp_rule")


def test_a_missing_rule_says_how_to_add_one(plugin):
    with pytest.raises(UnsupportedNodeError, match=r"overrides=\{AdaptiveLIF: rule\}, or for every compile with "
                                                  r"snnir.get_backend\('numba'\).rules.register\(AdaptiveLIF\)\(rule\)"):
        LoweringTable("numba").rule_for(plugin.AdaptiveLIF(0.5), "alif")
