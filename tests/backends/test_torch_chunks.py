"""Time-chunked execution: runs of a few steps at a time equal one run over the whole sequence.

On the CPU the torch backend runs every non-hoisted layer chunk by chunk over time, each chunk
continuing from the state the previous one left (:func:`snnir.backends.pytorch.execution.chunk_steps`).
Forward values must be bit-identical to the reference whatever the chunk length, and gradients must
flow across chunk boundaries exactly as through one long run.
"""

import numpy as np
import pytest

import snnir
from snnir import IF, LI, LIF, Conv2d, CubaLIF, Flatten, GraphBuilder, Linear, MaxPool2d
from snnir.errors import InputError
from snnir.testing import CASES, assert_matches_reference

torch = pytest.importorskip("torch")
from snnir.backends.pytorch import saved_bytes  # noqa: E402
from snnir.backends.pytorch.execution import CHUNK_BYTES, chunk_steps  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("case_name", list(CASES))
def test_chunked_runs_match_the_reference(case_name):
    assert_matches_reference(CASES[case_name], "torch", chunk_steps=2)


def _tensors(graph, inputs, dtype):
    named = inputs if isinstance(inputs, dict) else {graph.inputs[0]: inputs}
    return {k: torch.tensor(v, dtype=dtype) for k, v in named.items()}


def _gradients(graph, inputs, chunk, dtype=torch.float64):
    """Outputs and the gradients of a random linear function of them (parameters and inputs)."""
    model = snnir.compile(graph, "torch", dtype=dtype, chunk_steps=chunk)
    tensors = {k: v.requires_grad_() for k, v in _tensors(graph, inputs, dtype).items()}
    torch.manual_seed(0)  # Dropout draws the same masks chunk by chunk as over the whole sequence
    outputs = model(tensors)
    generator = torch.Generator().manual_seed(0)
    loss = sum((out * torch.randn(out.shape, generator=generator, dtype=dtype)).sum() for out in outputs.values())
    leaves = list(tensors.values()) + [p for _, p in model.named_parameters()]
    names = list(tensors) + [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return {k: v.detach() for k, v in outputs.items()}, dict(zip(names, grads))


def _assert_same_gradients(graph, inputs, chunks=(1, 3)):
    whole_outputs, whole = _gradients(graph, inputs, graph.time.num_steps)
    assert any(g is not None and g.abs().sum() > 0 for g in whole.values())
    for chunk in chunks:
        outputs, found = _gradients(graph, inputs, chunk)
        for key in whole_outputs:
            assert torch.equal(outputs[key], whole_outputs[key]), f"chunk {chunk}: output {key} differs"
        for name, expected in whole.items():
            assert (found[name] is None) == (expected is None), f"chunk {chunk}: gradient of {name}"
            if expected is not None:
                torch.testing.assert_close(found[name], expected, rtol=1e-10, atol=1e-12,
                                           msg=f"chunk {chunk}: gradient of {name} differs")


@pytest.mark.parametrize("case_name", ["lif_subtract_next_step", "lif_zero_same_step", "cubalif_subtract_same_step",
                                       "cubalif_zero_next_step", "li_readout", "recurrent_lif", "recurrent_cubalif_zero",
                                       "self_delay_and_input_delay", "seed_cnn", "multi_input_multi_output",
                                       "flatten_scale_dropout"])
def test_chunked_gradients_equal_whole_sequence_gradients(case_name):
    if case_name not in CASES:
        pytest.fail(f"conformance case {case_name!r} is gone; pick another: {sorted(CASES)}")
    _assert_same_gradients(*CASES[case_name].build())


def _learnable(neuron, steps=10):
    rng = np.random.default_rng(5)
    builder = GraphBuilder(num_steps=steps)
    x = builder.input("x", (6,), encoding="sequence")
    hidden = builder.add("n1", neuron, builder.add("fc1", Linear(weight=rng.normal(0, 0.8, (5, 6)).astype(np.float32),
                                                               bias=rng.normal(0.3, 0.1, 5).astype(np.float32)), x))
    out = builder.add("n2", LIF(0.8, learn_beta=True, learn_threshold=True),
                      builder.add("fc2", Linear(weight=rng.normal(0, 0.8, (3, 5)).astype(np.float32)), hidden))
    builder.output("spikes", out)
    builder.output("hidden", hidden, "membrane")
    inputs = rng.random((steps, 4, 6)).astype(np.float32) * 1.5
    return builder.build(), inputs


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("timing", ["next_step", "same_step"])
def test_learnable_neuron_parameters_get_whole_sequence_gradients(reset, timing):
    beta = np.array([0.5, 0.9, 0.7, 1.2, 0.8], np.float32)
    _assert_same_gradients(*_learnable(LIF(beta, reset=reset, reset_timing=timing, learn_beta=True, learn_threshold=True,
                                           bias=np.float32(0.1), graded_spikes_factor=1.5)))
    _assert_same_gradients(*_learnable(CubaLIF(np.float32(0.6), beta, reset=reset, reset_timing=timing, learn_alpha=True,
                                               learn_beta=True, learn_threshold=True)))


def test_if_and_li_get_whole_sequence_gradients():
    _assert_same_gradients(*_learnable(IF(threshold=np.float32(1.2), learn_threshold=True)))
    _assert_same_gradients(*_learnable(LI(np.float32(0.7), learn_beta=True, bias=np.float32(0.2))))


def _seed_cnn(batch, steps=25):
    graph = snnir.Sequential(Conv2d(8, 5), MaxPool2d(2), LIF(0.9, surrogate="fast_sigmoid"), Conv2d(16, 5), MaxPool2d(2),
                             LIF(0.9, surrogate="fast_sigmoid"), Flatten(), Linear(10), LIF(0.9, surrogate="fast_sigmoid"),
                             input_shape=(1, 28, 28), num_steps=steps, seed=0)
    return graph, torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_the_cpu_runs_chunks_of_a_few_mebibytes_and_other_devices_whole_sequences():
    graph, _ = _seed_cnn(1)
    model = snnir.compile(graph, "torch")
    plan = model.plan(True)
    cpu = torch.zeros(())
    per_step = 128 * 8 * 12 * 12 * 4  # the widest layer (lif1) of one step at batch 128
    size = chunk_steps(model, plan, 128, 25, cpu)
    assert 1 < size < 25 and (size - 1) * per_step <= CHUNK_BYTES
    assert -(-25 // size) * size - 25 < size  # equal chunks: the last one is not a stub
    assert chunk_steps(model, plan, 2, 25, cpu) == 25
    assert chunk_steps(model, plan, 128, 25, torch.zeros((), device="meta")) == 25
    model.chunk_steps = 4
    assert chunk_steps(model, plan, 2, 25, cpu) == 4
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="chunk_steps"):
            snnir.compile(graph, "torch", chunk_steps=bad)


def test_chunking_keeps_no_more_for_the_backward_pass():
    graph, images = _seed_cnn(16)
    kept = {}
    for chunk in (25, 4):
        model = snnir.compile(graph, "torch", chunk_steps=chunk)
        kept[chunk] = saved_bytes(lambda: model(images)["spikes"].sum(), list(model.parameters()) + [images])
    assert kept[4] <= kept[25] * 1.01, kept


def test_a_chunked_seed_cnn_trains_like_the_whole_sequence_in_float32():
    graph, images = _seed_cnn(8)
    targets = torch.arange(8) % 10
    results = []
    for chunk in (25, 6):
        model = snnir.compile(graph, "torch", chunk_steps=chunk)
        spikes = model(images)["spikes"]
        loss = snnir.backends.pytorch.mse_count_loss(0.8, 0.2)(spikes, targets)
        loss.backward()
        results.append((spikes.detach(), loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (spikes_a, loss_a, grads_a), (spikes_b, loss_b, grads_b) = results
    assert torch.equal(spikes_a, spikes_b) and spikes_a.sum() > 0
    assert torch.equal(loss_a, loss_b)
    for name, grad in grads_a.items():
        scale = float(grad.abs().max()) or 1.0
        assert float((grads_b[name] - grad).abs().max()) / scale <= 1e-5, name  # summation order (parity bound)


def test_spike_recipes_rebuild_only_the_rows_a_saved_view_covers():
    from snnir.backends.pytorch.memory import _Recipe

    potential = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(2))
    threshold = torch.tensor(0.1)
    spikes = (potential > threshold).float() * 2.0
    for view in (spikes[2:5], spikes[1:4, 1:], spikes.reshape(18, 4)[7:11].t(), spikes[5], spikes[0:0]):
        recipe = _Recipe(potential, threshold, 2.0, view.shape, view.stride(), view.storage_offset())
        assert torch.equal(recipe.rebuild(), view)
