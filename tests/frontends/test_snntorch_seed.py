"""The snnTorch quickstart nets, built in snnTorch, converted, and run: golden values are snnTorch's own forward.

Issue 6 acceptance: the seed CNN (an ``nn.Sequential``) and the seed FC net (a module with a time loop)
convert and run on every backend with spike records identical to snnTorch's; ``to_snntorch(from_snntorch(m))``
reproduces ``m``'s outputs.
"""

import numpy as np
import pytest

import snnir
from snnir.testing import assert_graph_equal

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from snntorch import surrogate, utils  # noqa: E402
from torch import nn  # noqa: E402

from snnir.frontends.snntorch import from_snntorch, simulate, to_snntorch  # noqa: E402

STEPS, BATCH = 25, 4
BACKENDS = ["reference", "torch", "numba"]


def _require(backend):
    try:
        snnir.get_backend(backend)
    except snnir.SnnirError as error:
        pytest.skip(f"backend {backend!r} is not available yet: {error}")


def seed_cnn():
    """The quickstart CNN; the read-out weights are scaled so that the output layer spikes often."""
    torch.manual_seed(0)
    spike_grad = surrogate.fast_sigmoid(slope=25)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.9, spike_grad=spike_grad, init_hidden=True),
        nn.Conv2d(8, 16, 5), nn.MaxPool2d(2), snn.Leaky(beta=0.9, spike_grad=spike_grad, init_hidden=True),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
        snn.Leaky(beta=0.9, spike_grad=spike_grad, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[7].weight *= 4
    return net


class SeedFC(nn.Module):
    """The quickstart's "more control" net: two Leaky layers in an explicit time loop."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(300, 10)
        self.lif2 = snn.Leaky(beta=torch.rand(10), learn_beta=True)

    def forward(self, x):
        mem1 = self.lif1.reset_mem()
        mem2 = self.lif2.reset_mem()
        spk2_rec, mem2_rec = [], []
        for step in range(STEPS):
            cur1 = self.fc1(x.flatten(1))
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)


def seed_fc():
    torch.manual_seed(1)
    net = SeedFC()
    with torch.no_grad():
        net.fc2.weight *= 3
    return net


def images(seed=0):
    return torch.rand((BATCH, 1, 28, 28), generator=torch.Generator().manual_seed(seed)) * 4


def run_sequential(net, x):
    """snnTorch's idiom: reset the hidden states, then one call per step."""
    utils.reset(net)
    with torch.no_grad():
        steps = [net(x) for _ in range(STEPS)]
    return torch.stack([s[0] for s in steps]).numpy(), torch.stack([s[1] for s in steps]).numpy()


@pytest.fixture(scope="module")
def cnn():
    net = seed_cnn()
    return net, from_snntorch(net, (1, 28, 28), STEPS)


@pytest.fixture(scope="module")
def fc():
    net = seed_fc()
    return net, from_snntorch(net, (1, 28, 28), STEPS)


def test_seed_cnn_becomes_the_quickstart_graph(cnn):
    net, graph = cnn
    kinds = [graph.nodes[n].kind for n in graph.topological_order()]
    assert kinds == ["Input", "Conv2d", "MaxPool2d", "LIF", "Conv2d", "MaxPool2d", "LIF", "Flatten", "Linear", "LIF", "Output", "Output"]
    np.testing.assert_array_equal(graph.nodes["conv1"].weight, net[0].weight.detach().numpy())
    np.testing.assert_array_equal(graph.nodes["fc1"].bias, net[7].bias.detach().numpy())
    lif = graph.nodes["lif3"]
    assert float(lif.beta) == np.float32(0.9) and lif.surrogate == snnir.Surrogate("fast_sigmoid", (("slope", 25.0),))
    assert (lif.reset, lif.reset_timing, float(lif.threshold), lif.learn_beta) == ("subtract", "next_step", 1.0, False)
    assert list(graph.outputs) == ["spikes", "membrane"]
    assert graph.metadata["snntorch"]["modules"]["lif3"] == "8"


def test_seed_fc_becomes_the_quickstart_graph(fc):
    net, graph = fc
    assert [graph.nodes[n].kind for n in ("flatten1", "fc1", "lif1", "fc2", "lif2")] == ["Flatten", "Linear", "LIF", "Linear", "LIF"]
    np.testing.assert_array_equal(graph.nodes["lif2"].beta, net.lif2.beta.detach().numpy())
    assert graph.nodes["lif2"].learn_beta and not graph.nodes["lif1"].learn_beta
    assert graph.nodes["lif1"].surrogate == snnir.Surrogate("atan", (("alpha", 2.0),))  # snnTorch's default
    assert graph.metadata["snntorch"]["returns"]["items"] == [
        {"output": "spikes", "last_step": False},
        {"output": "membrane", "last_step": False},
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_cnn_spikes_match_snntorch(cnn, backend):
    _require(backend)
    net, graph = cnn
    x = images(1)
    spikes, membranes = run_sequential(net, x)
    assert spikes.sum() > 50  # the test means something only if the output layer spikes
    result = snnir.compile(graph, backend).run(x.numpy())
    np.testing.assert_array_equal(result["spikes"], spikes)
    np.testing.assert_allclose(result["membrane"], membranes, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_fc_spikes_match_snntorch(fc, backend):
    _require(backend)
    net, graph = fc
    x = images(2)
    with torch.no_grad():
        spikes, membranes = (t.numpy() for t in net(x))
    assert spikes.sum() > 100
    result = snnir.compile(graph, backend).run(x.numpy())
    np.testing.assert_array_equal(result["spikes"], spikes)
    np.testing.assert_allclose(result["membrane"], membranes, atol=1e-5, rtol=0)


def test_round_trip_reproduces_the_seed_cnn(cnn):
    net, graph = cnn
    back = to_snntorch(graph)
    assert type(back) is nn.Sequential and [type(m).__name__ for m in back] == [type(m).__name__ for m in net]
    x = images(3)
    spikes, membranes = run_sequential(net, x)
    again = run_sequential(back, x)  # snnTorch's own idiom works on the result
    np.testing.assert_array_equal(again[0], spikes)
    np.testing.assert_array_equal(again[1], membranes)
    np.testing.assert_array_equal(simulate(back, x)["spikes"].numpy(), spikes)


def test_round_trip_reproduces_the_seed_fc(fc):
    net, graph = fc
    back = to_snntorch(graph)
    x = images(4)
    with torch.no_grad():
        expected, found = net(x), back(x)
    assert isinstance(found, tuple) and len(found) == 2
    for e, f in zip(expected, found):
        assert torch.equal(e, f)
    assert back.lif2.beta.requires_grad and isinstance(back.lif2.beta, nn.Parameter)


def test_converted_graph_survives_save_and_load(fc, tmp_path):
    _, graph = fc
    path = snnir.save(graph, tmp_path / "fc.snnir")
    loaded = snnir.load(path)
    assert_graph_equal(loaded, graph)
    assert loaded.metadata["snntorch"] == graph.metadata["snntorch"]


def test_conversion_leaves_the_model_untouched(fc):
    net = seed_fc()
    net.train()
    with torch.no_grad():
        net(images(5))  # leaves states in the neurons
    before = {k: v.clone() for k, v in net.lif1._buffers.items()}
    from_snntorch(net, (1, 28, 28), STEPS)
    assert net.training and all(torch.equal(before[k], v) for k, v in net.lif1._buffers.items())
