"""The opt-in event-driven Linear (``compile(..., event_driven=True)``) against the dense path."""

import pytest

import snnir
from snnir import LIF, GraphBuilder, Linear
from snnir.testing import CASES, assert_matches_reference

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from snnir.backends.pytorch import events, saved_bytes  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("case_name", list(CASES))
def test_event_driven_models_match_the_reference(case_name):
    assert_matches_reference(CASES[case_name], "torch", event_driven=True)


@pytest.mark.parametrize("density", [0.0, 0.05, 0.2])
def test_event_linear_values_and_gradients_match_dense(density):
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(40, 33, generator=generator) < density).double()
    x[5] = 0  # a sample-step without events
    weight = torch.randn(7, 33, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(7, dtype=torch.float64, generator=generator, requires_grad=True)
    grad = torch.randn(40, 7, dtype=torch.float64, generator=generator)
    found = events.event_linear(x, weight, bias)
    found_grads = torch.autograd.grad(found, (weight, bias), grad)
    expected = F.linear(x, weight, bias)
    expected_grads = torch.autograd.grad(expected, (weight, bias), grad)
    torch.testing.assert_close(found, expected)
    for a, b in zip(found_grads, expected_grads):
        torch.testing.assert_close(a, b)


def test_non_binary_or_dense_inputs_take_the_dense_path():
    weight = torch.randn(4, 6)
    graded = torch.zeros(5, 6)
    graded[1, 2] = 0.5
    dense = (torch.rand(5, 6) < 0.9).float()
    for x in (graded, dense):
        assert events._binary_mask(x) is None
        assert torch.equal(events.event_linear(x, weight, None), F.linear(x, weight))


def _fc(event_driven):
    builder = GraphBuilder(num_steps=20)
    x = builder.input("x", (100,), encoding="sequence")
    lif = builder.add("lif", LIF(0.9), builder.add("fc1", Linear(32, weight=None), x))
    builder.output("spikes", builder.add("out", LIF(0.9), builder.add("fc2", Linear(4), lif)))
    return snnir.compile(builder.build(seed=3), "torch", event_driven=event_driven)


def test_only_linears_fed_by_a_sequence_input_turn_event_driven():
    model = _fc(True)
    assert model.layer("fc1").event_driven and not model.layer("fc2").event_driven
    assert not _fc(False).layer("fc1").event_driven


def test_event_driven_training_keeps_little_for_the_backward_pass():
    x = (torch.rand(20, 16, 100, generator=torch.Generator().manual_seed(4)) < 0.1).float()
    kept = {}
    for mode in (False, True):
        model = _fc(mode)
        kept[mode] = saved_bytes(lambda: model(x)["spikes"].sum(), list(model.parameters()) + [x])
        loss = model(x)["spikes"].sum() + model(x)["spikes"].pow(2).sum()
        loss.backward()
        assert model.layer("fc1").weight.grad is not None
    events_per_step = int((x != 0).sum())
    assert kept[True] - kept[False] <= events_per_step * 2 + 20 * 16 * 4 + 64  # int16 per event, int32 per sample-step


@pytest.mark.parametrize("density", [0.0, 0.05, 0.2])
def test_event_weight_gradient_matches_the_dense_one(density):
    generator = torch.Generator().manual_seed(2)
    x = (torch.rand(50, 40, generator=generator) < density).double()
    grad = torch.randn(50, 7, dtype=torch.float64, generator=generator)
    torch.testing.assert_close(events.event_weight_grad(x, grad), grad.t() @ x)


def test_event_weight_gradient_declines_graded_or_dense_inputs():
    grad = torch.randn(5, 3)
    graded = torch.zeros(5, 6)
    graded[1, 2] = 0.5
    dense = (torch.rand(5, 6) < 0.9).float()
    assert events.event_weight_grad(graded, grad) is None
    assert events.event_weight_grad(dense, grad) is None


def test_wide_linears_keep_the_dense_forward_and_take_event_weight_gradients():
    from snnir.backends.pytorch.layers import EVENT_GRAD_MIN_OUTPUTS

    builder = GraphBuilder(num_steps=6)
    x = builder.input("x", (30,), encoding="sequence")
    builder.output("spikes", builder.add("lif", LIF(0.9), builder.add("fc", Linear(EVENT_GRAD_MIN_OUTPUTS), x)))
    model = snnir.compile(builder.build(seed=5), "torch", dtype=torch.float64)
    inputs = (torch.rand(6, 4, 30, generator=torch.Generator().manual_seed(6)) < 0.1).double()
    layer = model.layer("fc")
    out = layer(inputs.reshape(24, 30))
    assert out.grad_fn.name().startswith("SpikeGradLinear")
    assert torch.equal(out, F.linear(inputs.reshape(24, 30), layer.weight, layer.bias))  # the same forward pass
    grad = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    found = torch.autograd.grad(out, (layer.weight, layer.bias), grad)
    expected = torch.autograd.grad(F.linear(inputs.reshape(24, 30), layer.weight, layer.bias), (layer.weight, layer.bias), grad)
    for a, b in zip(found, expected):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # inference and narrow layers stay plain F.linear
        assert layer(inputs.reshape(24, 30)).grad_fn is None


@pytest.mark.parametrize("outputs", [events.COLUMNS_PER_PASS - 1, 2 * events.COLUMNS_PER_PASS + 5])
def test_wide_layers_sum_their_bags_a_slice_of_columns_at_a_time_with_the_same_bits(outputs):
    """Several passes over column slices (wide layers, on the CPU) give exactly one full pass's sums."""
    generator = torch.Generator().manual_seed(8)
    x = (torch.rand(60, 50, generator=generator) < 0.2).float()
    weight = torch.randn(outputs, 50, generator=generator, requires_grad=True)
    grad = torch.randn(60, outputs, generator=generator)
    samples, inputs = x.nonzero().unbind(1)
    offsets = events._offsets(torch.bincount(samples, minlength=60))
    one_pass = F.embedding_bag(inputs, weight.detach().t().contiguous(), offsets, mode="sum")
    found = events.event_linear(x, weight, None)
    assert torch.equal(found, one_pass)
    (found_grad,) = torch.autograd.grad(found, (weight,), grad)
    torch.testing.assert_close(found_grad, grad.t() @ x)
    torch.testing.assert_close(events.event_weight_grad(x, grad), grad.t() @ x)
