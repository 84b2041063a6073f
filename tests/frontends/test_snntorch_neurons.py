"""Every snnTorch neuron option that snnir carries: read exactly, computed like snnTorch, written back exactly.

Golden values come from the snnTorch modules themselves (their attributes and their forward). The
recurrent neurons differ from snnir in the order of one addition (snnTorch ``(β·U + I) + rec``, snnir
``β·U + (I + rec)``), so their membranes are compared within 1e-5 and their spikes exactly; the
non-recurrent ones are also within 1e-5 because numpy's and torch's matrix products may round differently.
"""

import numpy as np
import pytest

import snnir
from snnir import CubaLIF, LIF, Linear, Scale, Conv2d
from snnir.testing import assert_graph_equal

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from snntorch import surrogate, utils  # noqa: E402
from torch import nn  # noqa: E402

from snnir.frontends.snntorch import from_snntorch, simulate, to_snntorch  # noqa: E402
from snnir.frontends.snntorch.surrogates import identify_surrogate, make_spike_grad  # noqa: E402

STEPS, BATCH, IN, N = 12, 3, 4, 6


def _rand(*shape, low=0.0, high=1.0, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * (high - low) + low


NEURONS = {
    # a Leaky with every option changed at once (the example)
    "leaky_zero_same_step_per_neuron": lambda: snn.Leaky(
        beta=_rand(N, low=0.5), threshold=_rand(N, low=0.5, high=1.5, seed=1), reset_mechanism="zero", reset_delay=False,
        graded_spikes_factor=0.5, learn_beta=True, learn_threshold=True, spike_grad=surrogate.sigmoid(slope=7),
        init_hidden=True, output=True,
    ),
    "leaky_none": lambda: snn.Leaky(beta=0.8, reset_mechanism="none", init_hidden=True, output=True),
    "leaky_clamped_beta": lambda: snn.Leaky(beta=torch.tensor([1.5, -0.5, 0.9, 0.1, 2.0, 0.5]), init_hidden=True, output=True),
    "synaptic_zero_per_neuron": lambda: snn.Synaptic(
        alpha=_rand(N, seed=2), beta=0.8, threshold=0.7, learn_alpha=True, reset_mechanism="zero",
        spike_grad=surrogate.triangular(threshold=0.5), init_hidden=True, output=True,
    ),
    "synaptic_same_step": lambda: snn.Synaptic(alpha=0.6, beta=0.9, reset_delay=False, init_hidden=True, output=True),
    "rleaky_linear": lambda: snn.RLeaky(beta=0.9, linear_features=N, learn_beta=True, init_hidden=True, output=True),
    "rleaky_one_to_one": lambda: snn.RLeaky(beta=0.9, all_to_all=False, V=_rand(N, seed=3), init_hidden=True, output=True),
    "rleaky_same_step": lambda: snn.RLeaky(beta=0.8, all_to_all=False, V=0.5, reset_delay=False, init_hidden=True, output=True),
    "rsynaptic_zero": lambda: snn.RSynaptic(alpha=0.5, beta=0.9, linear_features=N, reset_mechanism="zero", init_hidden=True, output=True),
}


def _stack(net, x, steps=STEPS):
    utils.reset(net)
    with torch.no_grad():
        outs = [net(x) for _ in range(steps)]
    return [torch.stack([o[i] for o in outs]).numpy() for i in range(len(outs[0]))]


def _net(name):
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(IN, N), NEURONS[name]())


@pytest.mark.parametrize("name", list(NEURONS))
def test_neuron_runs_like_snntorch_and_round_trips(name):
    net = _net(name)
    graph = from_snntorch(net, (IN,), STEPS)
    x = _rand(BATCH, IN, high=2.0, seed=7)
    expected = _stack(net, x)
    assert expected[0].sum() > 5
    result = snnir.compile(graph, "reference").run(x.numpy())
    records = list(graph.outputs)  # spikes, (current,) membrane: the order of snnTorch's returned tuple
    np.testing.assert_array_equal(result["spikes"], expected[0])
    for record, values in zip(records[1:], expected[1:]):
        np.testing.assert_allclose(result[record], values, atol=1e-5, rtol=0)
    back = to_snntorch(graph)
    assert type(back[1]) is type(net[1])
    for found, values in zip(_stack(back, x), expected):  # same snnTorch arithmetic: bit for bit
        np.testing.assert_array_equal(found, values)
    again = from_snntorch(back, (IN,), STEPS)
    assert_graph_equal(again.replace(metadata={}), graph.replace(metadata={}))


def test_leaky_options_are_carried_exactly():
    net = _net("leaky_zero_same_step_per_neuron")
    lif = from_snntorch(net, (IN,), STEPS).nodes["lif1"]
    module = net[1]
    assert isinstance(lif, LIF)
    np.testing.assert_array_equal(lif.beta, module.beta.detach().numpy())
    np.testing.assert_array_equal(lif.threshold, module.threshold.detach().numpy())
    assert (lif.reset, lif.reset_timing, lif.graded_spikes_factor) == ("zero", "same_step", 0.5)
    assert lif.learn_beta and lif.learn_threshold
    assert lif.surrogate == snnir.Surrogate("sigmoid", (("slope", 7.0),))
    back = to_snntorch(from_snntorch(net, (IN,), STEPS))[1]
    assert isinstance(back.beta, nn.Parameter) and isinstance(back.threshold, nn.Parameter)
    assert (back.reset_mechanism, back.reset_delay, float(back.graded_spikes_factor)) == ("zero", False, 0.5)


def test_synaptic_options_are_carried_exactly():
    net = _net("synaptic_zero_per_neuron")
    cuba = from_snntorch(net, (IN,), STEPS).nodes["cuba1"]
    assert isinstance(cuba, CubaLIF)
    np.testing.assert_array_equal(cuba.alpha, net[1].alpha.detach().numpy())
    assert float(cuba.beta) == np.float32(0.8) and float(cuba.threshold) == np.float32(0.7)
    assert cuba.learn_alpha and not cuba.learn_beta and cuba.reset == "zero"
    assert cuba.surrogate == snnir.Surrogate("triangular", (("threshold", 0.5),))


@pytest.mark.parametrize(
    ("name", "kind"), [("rleaky_linear", Linear), ("rleaky_one_to_one", Scale), ("rsynaptic_zero", Linear)]
)
def test_recurrent_synapse_is_wired_like_snntorch(name, kind):
    net = _net(name)
    graph = from_snntorch(net, (IN,), STEPS)
    neuron = [n for n, node in graph.nodes.items() if node.stateful][0]
    rec = graph.nodes[f"{neuron}_rec"]
    assert isinstance(rec, kind)
    # neuron -> rec is delayed, rec -> neuron is not: the recurrent bias arrives from step 0, as in snnTorch
    assert {(e.src, e.dst, e.delay) for e in graph.edges if "_rec" in e.src + e.dst} == {
        (neuron, f"{neuron}_rec", 1),
        (f"{neuron}_rec", neuron, 0),
    }
    if kind is Linear:
        np.testing.assert_array_equal(rec.weight, net[1].recurrent.weight.detach().numpy())
        np.testing.assert_array_equal(rec.bias, net[1].recurrent.bias.detach().numpy())
    else:
        np.testing.assert_array_equal(rec.factor, net[1].V.detach().numpy())


def test_convolutional_rleaky_runs_like_snntorch():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), snn.RLeaky(beta=0.9, conv2d_channels=3, kernel_size=3, init_hidden=True, output=True))
    graph = from_snntorch(net, (1, 6, 6), 8)
    assert isinstance(graph.nodes["lif1_rec"], Conv2d) and graph.nodes["lif1_rec"].padding == (1, 1)
    x = _rand(2, 1, 6, 6, high=2.0, seed=4)
    spikes, membranes = _stack(net, x, 8)
    result = snnir.compile(graph, "reference").run(x.numpy())
    np.testing.assert_array_equal(result["spikes"], spikes)
    np.testing.assert_allclose(result["membrane"], membranes, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(simulate(to_snntorch(graph), x)["membrane"].numpy(), membranes)


# -- surrogates -----------------------------------------------------------------------------------
SURROGATES = [
    (surrogate.atan(), "atan", {"alpha": 2.0}),
    (surrogate.atan(alpha=3.5), "atan", {"alpha": 3.5}),
    (surrogate.fast_sigmoid(slope=10), "fast_sigmoid", {"slope": 10.0}),
    (surrogate.sigmoid(), "sigmoid", {"slope": 25.0}),
    (surrogate.triangular(threshold=2), "triangular", {"threshold": 2.0}),
    (surrogate.straight_through_estimator(), "straight_through", {}),
    (surrogate.spike_rate_escape(beta=2, slope=5), "spike_rate_escape", {"beta": 2.0, "slope": 5.0}),
    (surrogate.heaviside(), "heaviside", {}),
]


@pytest.mark.parametrize(("closure", "name", "params"), SURROGATES, ids=[f"{s[1]}-{i}" for i, s in enumerate(SURROGATES)])
def test_surrogates_are_identified_with_their_parameters(closure, name, params):
    spec = identify_surrogate(closure, "test")
    assert spec == snnir.Surrogate(name, tuple(params.items()))
    rebuilt = make_spike_grad(spec)
    assert rebuilt.__code__ is closure.__code__ and identify_surrogate(rebuilt, "test") == spec


def test_default_surrogate_is_snntorch_default():
    net = nn.Sequential(nn.Linear(2, 2), snn.Leaky(beta=0.5, init_hidden=True))
    assert from_snntorch(net, (2,), 3).nodes["lif1"].surrogate == snnir.Surrogate("atan", (("alpha", 2.0),))
