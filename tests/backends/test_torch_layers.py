"""Stateless lowerings against PyTorch itself, and what the backward pass keeps in memory."""

import numpy as np
import pytest

import snnir
from snnir import Threshold

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from snnir.backends.pytorch import mse_count_loss, saved_bytes  # noqa: E402
from snnir.backends.pytorch import memory  # noqa: E402
from snnir.backends.pytorch.pooling import max_pool2d  # noqa: E402
from snnir.backends.pytorch.rules import RULES  # noqa: E402
from snnir.backends.pytorch.surrogates import spike, surrogate_backward  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("shape", [(5, 3, 8, 6), (2, 4, 4, 4)])
def test_fast_max_pool_matches_pytorch_with_ties(shape):
    x = torch.randint(0, 3, shape, generator=torch.Generator().manual_seed(0)).float()  # many ties
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = max_pool2d(ours, (2, 2), (2, 2), (0, 0))
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    expected = F.max_pool2d(theirs, 2)
    expected.backward(grad)
    assert torch.equal(out, expected) and torch.equal(ours.grad, theirs.grad)


def test_other_pools_fall_back_to_pytorch():
    x = torch.randn(2, 3, 7, 9)
    assert torch.equal(max_pool2d(x, (3, 3), (2, 2), (1, 1)), F.max_pool2d(x, 3, 2, 1))
    assert torch.equal(max_pool2d(x, (2, 2), (2, 2), (0, 0)), F.max_pool2d(x, 2))  # odd sizes


def test_threshold_node_spikes_with_its_surrogate():
    node = Threshold(np.float32(0.5), surrogate={"name": "fast_sigmoid", "slope": 10})
    layer = RULES.rule_for(node)(node, (4,), (4,))
    x = torch.tensor([[0.2, 0.5, 0.7, 1.5]], requires_grad=True)
    y = layer(x)
    assert torch.equal(y, torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    y.sum().backward()
    torch.testing.assert_close(x.grad, 1 / (10 * (x.detach() - 0.5).abs() + 1) ** 2)


@pytest.mark.parametrize("name", ["atan", "fast_sigmoid", "sigmoid", "triangular", "straight_through", "spike_rate_escape", "heaviside"])
def test_surrogates_match_snntorch(name):
    snn_surrogate = pytest.importorskip("snntorch.surrogate")
    factories = {"atan": snn_surrogate.atan(), "fast_sigmoid": snn_surrogate.fast_sigmoid(), "sigmoid": snn_surrogate.sigmoid(),
                 "triangular": snn_surrogate.triangular(), "straight_through": snn_surrogate.straight_through_estimator(),
                 "spike_rate_escape": snn_surrogate.spike_rate_escape(), "heaviside": snn_surrogate.heaviside()}
    generator = torch.Generator().manual_seed(0)
    # z >= -3.4: snnTorch's sigmoid is NaN below about -3.5 (see the next test); random points besides the grid
    for dtype in (torch.float32, torch.float64):
        z = torch.cat([torch.linspace(-3.4, 3.4, 69), torch.rand(2000, generator=generator) * 6.8 - 3.4]).to(dtype)
        ours, theirs = z.clone().requires_grad_(), z.clone().requires_grad_()
        spikes = spike(ours, surrogate_backward(snnir.ir.Surrogate(name)))
        reference = factories[name](theirs)
        if reference.dtype != dtype:  # spike_rate_escape returns float32 spikes: its float64 backward runs in float32
            continue
        assert torch.equal(spikes, reference)
        grad = (torch.rand(z.shape, generator=generator) + 0.5).to(dtype)
        spikes.backward(grad)
        reference.backward(grad)
        assert torch.isfinite(theirs.grad).all()
        assert torch.equal(ours.grad, theirs.grad), f"{name} {dtype}: max diff {float((ours.grad - theirs.grad).abs().max())}"


def test_sigmoid_surrogate_stays_finite_where_snntorch_overflows():
    z = torch.tensor([-20.0, -4.0, -3.6, 20.0], requires_grad=True)
    spike(z, surrogate_backward(snnir.ir.Surrogate("sigmoid"))).backward(torch.tensor([1.0, -2.0, 1.0, 1.0]))
    assert torch.isfinite(z.grad).all() and float(z.grad.abs().max()) < 1e-30


def _cnn_training_memory(batch=8):
    graph = snnir.load("examples/quickstart_cnn.yaml")
    model = snnir.compile(graph, "torch")
    x, y = torch.rand(batch, 1, 28, 28), torch.arange(batch) % 10
    kept = saved_bytes(lambda: mse_count_loss(0.8, 0.2)(model(x)["spikes"], y), list(model.parameters()) + [x])
    steps = graph.time.num_steps
    potentials = steps * batch * (8 * 12 * 12 + 16 * 4 * 4 + 10) * 4  # one float32 potential per neuron-step
    pool_positions = (steps * batch * 16 * 4 * 4 + batch * 8 * 12 * 12) * 2 / 8  # 2 bits per 2x2 window
    return kept, potentials + pool_positions


def test_backward_memory_is_within_ten_percent_of_the_analytic_minimum():
    kept, minimum = _cnn_training_memory()
    assert minimum <= kept <= 1.1 * minimum, f"kept {kept} bytes for a minimum of {minimum:.0f}"


def test_spikes_are_recomputed_rather_than_kept(monkeypatch):
    with_recipes, minimum = _cnn_training_memory()
    monkeypatch.setattr(memory, "register_spikes", lambda *args: None)
    monkeypatch.setattr("snnir.backends.pytorch.neurons.register_spikes", lambda *args: None)
    without, _ = _cnn_training_memory()
    assert without > 1.5 * with_recipes
