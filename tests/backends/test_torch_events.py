"""The event-driven Linear (default where it matches the GEMM bit for bit; ``event_driven=True``: always)
against the dense path."""

import numpy as np
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
    assert found is not None and found.grad_fn.name().startswith("EventLinear")
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
    graded_late = torch.zeros(9, 6)
    graded_late[events.HEAD_ROWS + 3, 2] = 2.0  # after the rows looked at first
    dense = (torch.rand(5, 6) < 0.9).float()
    for x in (graded, graded_late, dense):
        assert events._binary_mask(x) is None
        for mode in (events.EXACT, events.ALWAYS):
            assert events.event_linear(x, weight, None, mode) is None


def _fc(event_driven, hidden=32):
    builder = GraphBuilder(num_steps=20)
    x = builder.input("x", (100,), encoding="sequence")
    lif = builder.add("lif", LIF(0.9), builder.add("fc1", Linear(hidden, weight=None), x))
    builder.output("spikes", builder.add("out", LIF(0.9), builder.add("fc2", Linear(4), lif)))
    return snnir.compile(builder.build(seed=3), "torch", event_driven=event_driven)


def test_linears_fed_by_spikes_choose_their_event_mode():
    from snnir.backends.pytorch.layers import EVENT_MIN_OUTPUTS

    forced = _fc(True)
    assert forced.layer("fc1").events == events.ALWAYS and forced.layer("fc2").events == events.ALWAYS
    assert _fc(False).layer("fc1").events is None and _fc(False).layer("fc2").events is None
    default = _fc(None, hidden=EVENT_MIN_OUTPUTS)
    assert default.layer("fc1").events == events.EXACT  # wide: a sequence input
    assert default.layer("fc2").events is None  # narrow: the GEMM is cheaper
    assert _fc(None).layer("fc1").events is None
    builder = GraphBuilder(num_steps=3)
    direct = builder.add("fc", Linear(EVENT_MIN_OUTPUTS), builder.input("x", (10,)))  # direct input: not spikes
    builder.output("out", builder.add("lif", LIF(0.9), builder.add("fc2", Linear(EVENT_MIN_OUTPUTS), direct)))
    model = snnir.compile(builder.build(seed=1), "torch", event_driven=True)
    assert model.layer("fc").events is None and model.layer("fc2").events is None  # fc2 is fed by a Linear
    with pytest.raises(snnir.InputError, match="event_driven"):
        _fc("yes")


def test_event_driven_training_keeps_little_for_the_backward_pass():
    x = (torch.rand(20, 16, 100, generator=torch.Generator().manual_seed(4)) < 0.1).float()
    kept = {}
    for mode in (False, True):
        model = _fc(mode)
        model.layer("fc2").events = None  # the difference is then fc1's alone
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
    from snnir.backends.pytorch.layers import EVENT_MIN_OUTPUTS

    builder = GraphBuilder(num_steps=6)
    x = builder.input("x", (30,), encoding="sequence")
    builder.output("spikes", builder.add("lif", LIF(0.9), builder.add("fc", Linear(EVENT_MIN_OUTPUTS), x)))
    model = snnir.compile(builder.build(seed=5), "torch", dtype=torch.float64, event_driven=False)
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
def test_wide_layers_sum_a_slice_of_columns_at_a_time_with_the_same_bits(outputs):
    """Several passes over column slices (wide layers, on the CPU) give exactly one full pass's sums."""
    from snnir.backends.pytorch.gemm_order import blocked_sums, uniform

    generator = torch.Generator().manual_seed(8)
    x = (torch.rand(60, 50, generator=generator) < 0.2).float()
    weight = torch.randn(outputs, 50, generator=generator, requires_grad=True)
    bias = torch.randn(outputs, generator=generator)
    grad = torch.randn(60, outputs, generator=generator)
    samples, inputs = x.nonzero().unbind(1)
    table = weight.detach().t().contiguous()
    for starts in (uniform(50, 7), (0,)):
        sliced = blocked_sums(samples, inputs, (60, 50, outputs), starts, lambda lo, hi: table[:, lo:hi].contiguous(),
                              bias, events.COLUMNS_PER_PASS)
        whole = blocked_sums(samples, inputs, (60, 50, outputs), starts, lambda lo, hi: table[:, lo:hi], bias, outputs)
        assert torch.equal(sliced, whole)
    found = events.event_linear(x, weight, None, events.ALWAYS)
    torch.testing.assert_close(found, F.linear(x, weight.detach()))
    (found_grad,) = torch.autograd.grad(found, (weight,), grad)
    torch.testing.assert_close(found_grad, grad.t() @ x)
    torch.testing.assert_close(events.event_weight_grad(x, grad), grad.t() @ x)


def test_default_model_on_spike_input_gives_the_dense_results_bit_for_bit():
    """On general float32 weights the default (exact) mode equals the GEMM path exactly, over chunks,
    and takes the event path wherever the GEMM's order was calibrated."""
    from snnir.backends.pytorch.gemm_order import block_starts

    rng = np.random.default_rng(12)
    builder = GraphBuilder(num_steps=30)
    x = builder.input("x", (300,), encoding="sequence")
    fc1 = Linear(weight=rng.normal(0, 0.15, (256, 300)), bias=rng.normal(0.02, 0.05, 256))
    fc2 = Linear(weight=rng.normal(0, 0.2, (200, 256)), bias=rng.normal(0.02, 0.05, 200))
    lif = builder.add("lif", LIF(0.9), builder.add("fc1", fc1, x))
    last = builder.add("out", LIF(0.8), builder.add("fc2", fc2, lif))
    builder.output("spikes", last)
    builder.output("membrane", last, "membrane")
    builder.output("hidden", lif)
    graph = builder.build()
    inputs = (torch.rand(30, 16, 300, generator=torch.Generator().manual_seed(13)) < 0.1).float()
    results, grads = {}, {}
    for mode in (None, False):
        model = snnir.compile(graph, "torch", event_driven=mode, chunk_steps=8)
        out = model(inputs)
        (out["membrane"].sum() + out["spikes"].sum()).backward()
        results[mode] = out
        grads[mode] = {name: p.grad for name, p in model.named_parameters()}
        if mode is None:
            chunk = inputs[:8].reshape(8 * 16, 300)
            fc1 = model.layer("fc1")
            taken = fc1(chunk).grad_fn.name().startswith("EventLinear")
            assert taken == (block_starts(chunk, fc1.weight, True) is not None)
    for key in ("hidden", "spikes"):  # both layers see spikes, sparse enough for the event path
        assert 0.02 < float(results[None][key].detach().mean()) < events.MAX_DENSITY
    for key in ("spikes", "membrane", "hidden"):
        assert torch.equal(results[None][key], results[False][key])
    for name, grad in grads[False].items():
        torch.testing.assert_close(grads[None][name], grad, rtol=1e-5, atol=1e-6)


def test_non_finite_weights_take_the_gemm_which_spreads_them_as_the_reference_does():
    x = torch.zeros(4, 200)
    x[0, 3] = 1
    weight = torch.ones(130, 200)
    weight[5, 7] = float("inf")  # input 7 is silent: 0·inf is NaN in the GEMM
    for mode in (events.EXACT, events.ALWAYS):
        assert events.event_linear(x, weight, None, mode) is None
    assert torch.isnan(F.linear(x, weight)[:, 5]).all()


@pytest.mark.parametrize("write", ["no_grad", "data"])
def test_a_weight_made_non_finite_in_place_is_noticed_by_the_layer(write):
    """Every call tests the weight: an in-place change is seen at the next call, also one through
    ``.data``, which advances no version counter."""
    layer = _fc(True, hidden=events.COLUMNS_PER_PASS).layer("fc1")
    x = torch.zeros(8, 100)
    x[:, 3] = 1
    assert layer(x).grad_fn.name().startswith("EventLinear") and torch.isfinite(layer(x)).all()
    if write == "data":
        layer.weight.data[5, 7] = float("inf")  # input 7 is silent: the GEMM's 0·inf is NaN
    else:
        with torch.no_grad():
            layer.weight[5, 7] = float("inf")
    assert torch.isnan(layer(x)[:, 5]).all()


def test_weights_whose_sum_overflows_are_still_exact():
    """The cheap finiteness test (a finite sum) fails for finite weights whose sum overflows; the layer
    then takes the GEMM, whose result is the one the events would give."""
    x = torch.zeros(4, 200)
    x[:, 3] = 1
    weight = torch.full((130, 200), 3e38)
    assert events.event_linear(x, weight, None, events.ALWAYS) is None  # the GEMM, then
    layer = _fc(True, hidden=events.COLUMNS_PER_PASS).layer("fc1")
    with torch.no_grad():
        layer.weight.fill_(3e38)
    x = torch.zeros(8, 100)
    x[:, 3] = 1
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))


def test_a_shape_known_to_have_no_blocked_order_skips_the_event_test(monkeypatch):
    """Streaming one sample: the GEMM runs a matrix-vector kernel whose order is not blocked. Once the
    first step has found that, later steps go straight to the GEMM without testing the input for
    events; the outputs are the GEMM's either way."""
    from snnir.backends.pytorch import gemm_order

    rng = np.random.default_rng(3)
    fc = Linear(weight=rng.normal(0, 0.2, (256, 300)), bias=rng.normal(0, 0.05, 256))
    graph = snnir.Sequential(fc, LIF(0.9), input_shape=(300,), num_steps=6, encoding="sequence")
    spikes = (np.random.default_rng(4).random((6, 1, 300)) < 0.1).astype(np.float32)
    tested = []
    original = events._binary_mask
    monkeypatch.setattr(events, "_binary_mask", lambda x: tested.append(tuple(x.shape)) or original(x))
    model, dense = snnir.compile(graph, "torch"), snnir.compile(graph, "torch", event_driven=False)
    row = torch.from_numpy(spikes[0])
    known = gemm_order.known_unblocked(row, model.layer(graph.topological_order()[1]).weight, True)
    model.reset(1)
    dense.reset(1)
    for t in range(6):
        np.testing.assert_array_equal(model.step(spikes[t])["spikes"], dense.step(spikes[t])["spikes"])
    if gemm_order.block_starts(row, model.layer(graph.topological_order()[1]).weight, True) is None:
        assert len(tested) == (0 if known else 1)  # the first step at most, to calibrate
    else:  # a BLAS that sums one row in blocks: every step takes the event path
        assert len(tested) == 6
