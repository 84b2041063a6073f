"""NIR → snnir on hand-built graphs: every formula against the continuous equations, the wiring
(nested graphs, Delay nodes, cycles) and every error. Golden values are computed here from NIR's
equations in float64, independently of snnir's conversion code.
"""

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir")

import snnir  # noqa: E402
from snnir.errors import FormatError, NodeParameterError, UnsupportedNodeError  # noqa: E402
from snnir.frontends.nir import from_nir, to_nir  # noqa: E402
from snnir.testing import assert_graph_equal  # noqa: E402


def _chain(*nodes, shape=(1,), edges=None):
    """Input → nodes... → Output, named n0, n1, ..."""
    named = {"in": nir.Input(input_type=np.array(shape)), **{f"n{i}": n for i, n in enumerate(nodes)}}
    named["out"] = nir.Output(output_type=np.array(shape))
    names = list(named)
    return nir.NIRGraph(nodes=named, edges=edges or list(zip(names, names[1:])), type_check=False)


def _ones(shape=(1,)):
    return np.ones(shape)


def _run(graph, x, probes=()):
    return snnir.compile(graph, "reference").run(np.asarray(x, np.float32), probes=probes)


# -- neuron formulas ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["euler", "exact"])
def test_lif_parameters_follow_the_scheme(scheme):
    dt, tau, r, v_leak = 1e-3, 5e-3, 2.0, 0.5
    graph = from_nir(_chain(nir.LIF(tau=_ones() * tau, r=_ones() * r, v_leak=_ones() * v_leak, v_threshold=_ones())), dt=dt, discretization=scheme)
    decay = 1 - dt / tau if scheme == "euler" else np.exp(-dt / tau)
    gain = dt / tau if scheme == "euler" else 1 - np.exp(-dt / tau)
    lif = graph.nodes["n0"]
    assert lif.beta == np.float32(decay) and lif.bias == np.float32(gain * v_leak)
    assert graph.nodes["n0.gain"].factor == np.float32(gain * r)
    assert lif.threshold == np.float32(1.0) and (lif.reset, lif.reset_timing) == ("zero", "same_step")


@pytest.mark.parametrize("scheme", ["euler", "exact"])
def test_li_membrane_matches_the_solution_of_its_equation(scheme):
    """τ·dv/dt = (v_leak − v) + r·I with a constant I: exact is the exact solution, Euler its recurrence."""
    dt, tau, r, v_leak, current, steps = 1e-3, 4e-3, 3.0, 0.25, 0.5, 30
    graph = from_nir(_chain(nir.LI(tau=_ones() * tau, r=_ones() * r, v_leak=_ones() * v_leak)), dt=dt, discretization=scheme)
    membrane = _run(graph, np.full((steps, 1, 1), current))["out"][:, 0, 0]
    n = np.arange(1, steps + 1)
    steady = v_leak + r * current
    expected = steady * (1 - ((1 - dt / tau) ** n if scheme == "euler" else np.exp(-n * dt / tau)))
    np.testing.assert_allclose(membrane, expected, rtol=2e-6)


def test_cuba_lif_follows_nir_equations_with_snntorchs_update_order():
    """τs·dI/dt = −I + w_in·S and τm·dv/dt = (v_leak − v) + r·I, Euler, the membrane taking the new current."""
    dt, ts, tm, r, w_in, v_leak = 1e-3, 2e-3, 5e-3, 1.5, 0.75, 0.1
    node = nir.CubaLIF(tau_syn=_ones() * ts, tau_mem=_ones() * tm, r=_ones() * r, v_leak=_ones() * v_leak, w_in=w_in, v_threshold=_ones() * 1e3)
    graph = from_nir(_chain(node), dt=dt)
    x = np.array([1, 0, 0, 1, 1, 0, 0, 0, 1, 0], np.float64)
    found = _run(graph, x[:, None, None], probes=["n0:membrane", "n0:current"])
    current, v, expected_v, expected_i = 0.0, 0.0, [], []
    for s in x:
        current = (1 - dt / ts) * current + dt / ts * w_in * s
        v = (1 - dt / tm) * v + dt / tm * (v_leak + r * current)
        expected_v.append(v)
        expected_i.append(dt / tm * r * current)  # snnir's current is NIR's, scaled by gm·r
    np.testing.assert_allclose(found.probes["n0:membrane"][:, 0, 0], expected_v, rtol=1e-5)
    np.testing.assert_allclose(found.probes["n0:current"][:, 0, 0], expected_i, rtol=1e-5)


def test_snntorchs_export_convention_needs_no_gain_node():
    dt, alpha, beta = 1e-4, np.float32(0.55), np.float32(0.9)
    tau_syn, tau_mem = dt / (1 - np.float64(alpha)), dt / (1 - np.float64(beta))  # snnTorch's export_nir
    node = nir.CubaLIF(tau_syn=_ones(3) * tau_syn, tau_mem=_ones(3) * tau_mem, r=_ones(3) * tau_mem / dt, v_leak=np.zeros(3), w_in=tau_syn / dt, v_threshold=_ones(3))
    graph = from_nir(_chain(node, shape=(3,)), dt=dt)
    assert list(graph.nodes) == ["in", "n0", "out"]
    assert np.all(graph.nodes["n0"].alpha == alpha) and np.all(graph.nodes["n0"].beta == beta)
    assert graph.nodes["n0"].bias is None


def test_integrators_scale_their_input_by_dt_r():
    graph = from_nir(_chain(nir.IF(r=_ones() * 2.0, v_threshold=_ones()), nir.I(r=_ones() * 4.0)), dt=0.25)
    assert graph.nodes["n0.gain"].factor == np.float32(0.5) and graph.nodes["n0"].kind == "IF"
    assert graph.nodes["n1"].kind == "LI" and graph.nodes["n1"].beta == 1 and "n1.gain" not in graph.nodes


def test_dt_larger_than_tau_is_refused_under_euler():
    lif = nir.LIF(tau=_ones() * 1e-4, r=_ones(), v_leak=np.zeros(1), v_threshold=_ones())
    with pytest.raises(NodeParameterError, match="discretization='exact'"):
        from_nir(_chain(lif), dt=1e-3)
    assert from_nir(_chain(lif), dt=1e-3, discretization="exact").nodes["n0"].beta == np.float32(np.exp(-10))
    with pytest.raises(NodeParameterError, match="time constants must be positive"):
        from_nir(_chain(nir.LI(tau=-_ones(), r=_ones(), v_leak=np.zeros(1))), dt=1e-3)


# -- resets ---------------------------------------------------------------------------------------------
def _lif(v_reset=0.0, **metadata):
    return nir.LIF(tau=_ones() * 1e-2, r=_ones() * 10, v_leak=np.zeros(1), v_threshold=_ones(), v_reset=_ones() * v_reset, metadata=metadata)


def test_reset_defaults_metadata_and_overrides():
    record = {"snnir": json.dumps({"kind": "LIF", "fields": {"reset": "subtract", "reset_timing": "next_step"}, "shapes": {}})}
    graph = from_nir(_chain(_lif(), _lif(**record)), dt=1e-3)
    assert (graph.nodes["n0"].reset, graph.nodes["n0"].reset_timing) == ("zero", "same_step")  # NIR: v ← v_reset now
    assert (graph.nodes["n1"].reset, graph.nodes["n1"].reset_timing) == ("subtract", "next_step")  # recorded
    graph = from_nir(_chain(_lif(), _lif(**record)), dt=1e-3, reset="none", reset_timing="same_step")
    assert {(n.reset, n.reset_timing) for n in (graph.nodes["n0"], graph.nodes["n1"])} == {("none", "same_step")}
    with pytest.raises(NodeParameterError, match=r"reset=\.\.\.\): expected one of"):
        from_nir(_chain(_lif()), dt=1e-3, reset="soft")


def test_nonzero_v_reset_is_refused_for_a_zero_reset():
    with pytest.raises(UnsupportedNodeError, match=r"'n0': v_reset = -0.5 is not 0"):
        from_nir(_chain(_lif(v_reset=-0.5)), dt=1e-3)
    assert from_nir(_chain(_lif(v_reset=-0.5)), dt=1e-3, reset="subtract").nodes["n0"].reset == "subtract"


# -- layers ---------------------------------------------------------------------------------------------
def test_layers_map_to_their_snnir_twins():
    rng = np.random.default_rng(0)
    conv = nir.Conv2d(input_shape=(6, 6), weight=rng.normal(size=(4, 2, 3, 3)), stride=1, padding="same", dilation=1, groups=1, bias=rng.normal(size=4))
    nodes = [
        conv,
        nir.Threshold(threshold=np.full((4, 6, 6), 0.5)),
        nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([1, 1]), padding=np.array([1, 1])),
        nir.Scale(scale=np.full((4, 3, 3), 2.0)),
        nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0, end_dim=-1),
        nir.Affine(weight=rng.normal(size=(5, 36)), bias=np.zeros(5)),
        nir.Linear(weight=rng.normal(size=(2, 5))),
    ]
    graph = from_nir(_chain(*nodes, shape=(2, 6, 6)), dt=1e-3)
    kinds = [graph.nodes[f"n{i}"].kind for i in range(len(nodes))]
    assert kinds == ["Conv2d", "Threshold", "SumPool2d", "AvgPool2d", "Scale", "Flatten", "Linear", "Linear"]
    assert graph.nodes["n0"].padding == (1, 1) and graph.shapes["n7"] == (2,)
    assert graph.nodes["n6"].bias is not None and graph.nodes["n7"].bias is None
    conv1d = nir.Conv1d(input_shape=9, weight=rng.normal(size=(3, 2, 4)), stride=2, padding=1, dilation=2, groups=1, bias=np.zeros(3))
    graph = from_nir(_chain(conv1d, shape=(2, 9)), dt=1e-3)
    node = graph.nodes["n0"]
    assert (node.stride, node.padding, node.dilation, graph.shapes["n0"]) == ((2,), (1,), (2,), (3, 3))


# -- wiring: nested graphs, delays, cycles ---------------------------------------------------------------
def _rsynaptic(hidden=3, *, input_name="input"):
    """snnTorch's RSynaptic export: a subgraph Input → lif ⇄ w_rec, lif → Output."""
    lif = nir.CubaLIF(tau_syn=_ones(hidden) * 2e-4, tau_mem=_ones(hidden) * 1e-3, r=_ones(hidden) * 10, v_leak=np.zeros(hidden), w_in=2.0, v_threshold=_ones(hidden))
    nodes = {input_name: nir.Input(input_type=np.array([hidden])), "lif": lif, "w_rec": nir.Linear(weight=np.eye(hidden) * 0.5), "output": nir.Output(output_type=np.array([hidden]))}
    edges = [(input_name, "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _top(sub, edges):
    nodes = {"input": nir.Input(input_type=np.array([2])), "fc": nir.Linear(weight=np.ones((3, 2))), "lif1": sub, "output": nir.Output(output_type=np.array([3]))}
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_nested_graphs_are_flattened_with_prefixed_names_and_the_cycle_delayed():
    graph = from_nir(_top(_rsynaptic(), [("input", "fc"), ("fc", "lif1"), ("lif1", "output")]), dt=1e-4)
    assert list(graph.nodes) == ["input", "fc", "lif1.lif", "lif1.w_rec", "output"]
    assert [(e.src, e.dst, e.delay) for e in graph.edges if e.delay] == [("lif1.w_rec", "lif1.lif", 1)]
    dotted = from_nir(_top(_rsynaptic(), [("input", "fc"), ("fc", "lif1.input"), ("lif1.output", "output")]), dt=1e-4)
    assert_graph_equal(dotted, graph)
    two_inputs = _rsynaptic()
    two_inputs.nodes["other"] = nir.Input(input_type=np.array([3]))
    with pytest.raises(FormatError, match=r"edge to subgraph 'lif1' is ambiguous: it has 2 Input nodes"):
        from_nir(_top(two_inputs, [("input", "fc"), ("fc", "lif1"), ("lif1", "output")]), dt=1e-4)


def test_back_edges_do_not_depend_on_node_order():
    sub = _rsynaptic()
    flat = {"input": nir.Input(input_type=np.array([3])), "lif": sub.nodes["lif"], "w_rec": sub.nodes["w_rec"], "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    forward = from_nir(nir.NIRGraph(nodes=flat, edges=edges, type_check=False), dt=1e-4)
    backward = from_nir(nir.NIRGraph(nodes=dict(reversed(flat.items())), edges=edges, type_check=False), dt=1e-4)
    for graph in (forward, backward):  # node order follows the dict, the delay's place does not
        assert [str(e) for e in graph.edges if e.delay] == ["w_rec -> lif (delay 1)"]


def test_delay_nodes_become_edge_delays():
    dt = 1e-3
    graph = from_nir(_chain(nir.Delay(delay=np.full(2, 3 * dt)), nir.LIF(tau=_ones(2) * 1e-2, r=_ones(2) * 10, v_leak=np.zeros(2), v_threshold=_ones(2)), shape=(2,)), dt=dt)
    assert list(graph.nodes) == ["in", "n1", "out"] and str(graph.edges[0]) == "in -> n1 (delay 3)"
    x = np.zeros((6, 1, 2), np.float32)
    x[0] = 2.0
    spikes = _run(graph, x)["out"][:, 0]
    assert spikes[:, 0].tolist() == [0, 0, 0, 1, 0, 0]  # the input arrives three steps late


@pytest.mark.parametrize(
    "delay, message",
    [([1e-3, 2e-3], r"NIR Delay 'n0': delays \[0.001, 0.002\] s are not one whole number"), ([1.5e-3, 1.5e-3], "not one whole number of steps")],
)
def test_delays_that_are_not_one_whole_number_of_steps_are_refused(delay, message):
    with pytest.raises(UnsupportedNodeError, match=message):
        from_nir(_chain(nir.Delay(delay=np.array(delay)), shape=(2,)), dt=1e-3)


def test_a_delayed_output_is_refused():
    with pytest.raises(UnsupportedNodeError, match="NIR Output 'out' is fed by 'n0' through a 1-step delay"):
        from_nir(_chain(nir.Linear(weight=np.eye(2)), nir.Delay(delay=np.full(2, 1e-3)), shape=(2,)), dt=1e-3)


# -- errors ---------------------------------------------------------------------------------------------
def test_a_helper_nodes_shape_error_names_the_nir_node_it_stands_for():
    """A wrong-length LIF whose input gain is not 1 fails first at its "<name>.gain" Scale, which the
    user never wrote: the error says which NIR node it belongs to."""
    lif = nir.LIF(tau=_ones(4) * 1e-2, r=_ones(4) * 2, v_leak=np.zeros(4), v_threshold=_ones(4))
    graph = _chain(nir.Affine(weight=np.ones((3, 3)), bias=np.zeros(3)), lif, shape=(3,))
    with pytest.raises(snnir.errors.ShapeError, match=r"node 'n1.gain' \(Scale\): Scale.factor has shape \(4,\)") as error:
        from_nir(graph, dt=1e-4)
    assert "'n1.gain' is a helper node snnir adds for NIR node 'n1'" in error.value.__notes__[0]


def test_unknown_node_types_are_named():
    cuba_li = nir.CubaLI(tau_syn=_ones(), tau_mem=_ones(), r=_ones(), v_leak=np.zeros(1))
    with pytest.raises(UnsupportedNodeError, match=r"NIR node 'n0' \(CubaLI\) has no snnir equivalent; supported NIR types: Affine"):
        from_nir(_chain(cuba_li), dt=1e-3)


def test_unreadable_inputs_raise_format_errors(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(FormatError, match="not a readable NIR file"):
        from_nir(bad, dt=1e-3)
    with pytest.raises(FormatError, match="no such file"):
        from_nir(tmp_path / "missing.nir", dt=1e-3)
    (tmp_path / "folder.nir").mkdir()
    with pytest.raises(FormatError, match="folder.nir: is a directory, not a .nir file"):
        from_nir(tmp_path / "folder.nir", dt=1e-3)
    with pytest.raises(FormatError, match="expects a nir.NIRGraph or a path"):
        from_nir(42, dt=1e-3)


def test_malformed_snnir_metadata_is_refused():
    graph = snnir.Sequential(snnir.Linear(weight=np.eye(2)), snnir.LIF(0.5), input_shape=(2,))
    exported = to_nir(graph)
    exported.nodes["lif1"].metadata = {"snnir": "{not json"}
    with pytest.raises(FormatError, match=r"NIR node 'lif1': metadata\['snnir'\] is not valid JSON"):
        from_nir(exported)
    exported = to_nir(graph)
    record = json.loads(exported.metadata["snnir"])
    exported.metadata = {"snnir": json.dumps({**record, "version": 99})}
    with pytest.raises(FormatError, match="snnir metadata version 99 is not readable"):
        from_nir(exported)


# -- export formulas ------------------------------------------------------------------------------------
def test_export_uses_snntorchs_formulas_under_euler():
    dt, beta, alpha, bias = 1e-4, np.float32(0.9), np.float32(0.55), np.float32(0.25)
    graph = snnir.Sequential(
        ("lif", snnir.LIF(beta, bias=bias)), ("cuba", snnir.CubaLIF(alpha, beta)), ("if", snnir.IF()),
        input_shape=(2,), dt=dt,
    )
    nodes = to_nir(graph).nodes
    tau = dt / (1 - np.float64(beta))
    np.testing.assert_allclose(nodes["lif"].tau, tau, rtol=1e-12)
    np.testing.assert_allclose(nodes["lif"].r, tau / dt, rtol=1e-12)
    np.testing.assert_allclose(nodes["lif"].v_leak, bias * tau / dt, rtol=1e-7)
    tau_syn = dt / (1 - np.float64(alpha))
    np.testing.assert_allclose(nodes["cuba"].w_in, tau_syn / dt, rtol=1e-12)
    np.testing.assert_allclose(nodes["if"].r, 1 / dt, rtol=1e-12)
    assert json.loads(nodes["lif"].metadata["snnir"])["fields"]["reset"] == "subtract"


def test_export_of_the_decay_endpoints_reads_back_exactly():
    for scheme in ("euler", "exact"):
        graph = snnir.Sequential(snnir.LIF(np.array([0.0, 1.0, 0.5], np.float32)), input_shape=(3,))
        exported = to_nir(graph, discretization=scheme)
        assert np.all(np.isfinite(exported.nodes["lif1"].tau)) and np.all(exported.nodes["lif1"].tau > 0)
        assert_graph_equal(from_nir(exported), graph)


def test_an_if_with_a_bias_cannot_be_exported():
    graph = snnir.Sequential(snnir.IF(bias=0.5), input_shape=(2,))
    with pytest.raises(UnsupportedNodeError, match="node 'if1' \\(IF\\): NIR's IF has no leak voltage"):
        to_nir(graph)
