"""The torch backend on an accelerator: what a lent GPU machine checks (``make device-check``).

Every test runs on the CPU and on ``SNNIR_TEST_DEVICE`` (default ``cuda``), which is skipped where that
device is missing. On the CPU the device-versus-CPU comparisons compare the CPU with itself, but every
other check bites, and CPU-only CI keeps the suite from rotting between the sessions lent a GPU.

TF32 is turned off for these checks: cuDNN convolutions use it by default on Ampere and later GPUs, and
float32 semantics are what the conformance contract promises. Comparisons with the CPU use the
contract's tolerances where the two devices may sum in different orders (trained, non-dyadic weights).
"""

import os

import numpy as np
import pytest

import snnir
from snnir import LIF, Linear, Sequential
from snnir.ir import SURROGATE_DEFAULTS
from snnir.testing import CASES, assert_matches_reference, state_probes

torch = pytest.importorskip("torch")
from snnir.backends.pytorch import fit, load_checkpoint, mse_count_loss  # noqa: E402

DEVICES = list(dict.fromkeys(["cpu", os.environ.get("SNNIR_TEST_DEVICE", "cuda")]))


def _available(device: str) -> bool:
    where = torch.device(device)
    kind = where.type
    if kind == "cuda":
        return torch.cuda.is_available() and (where.index or 0) < torch.cuda.device_count()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return kind == "cpu"


pytestmark = pytest.mark.usefixtures("torch_single_thread", "strict_float32")


@pytest.fixture(params=DEVICES)
def device(request):
    if not _available(request.param):
        pytest.skip(f"no {request.param!r} device on this machine (SNNIR_TEST_DEVICE)")
    return request.param


@pytest.fixture
def strict_float32():
    """TF32 off for the test (see the module docstring), restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("event_driven", [None, True], ids=["default", "events"])
@pytest.mark.parametrize("case_name", list(CASES))
def test_every_conformance_case_runs_on_the_device(case_name, event_driven, device):
    """The dyadic conformance table, bit for bit against the reference, computed on the device; also
    with every spike-fed Linear event-driven (on a GPU: the event sums themselves run there)."""
    assert_matches_reference(CASES[case_name], "torch", device=device, event_driven=event_driven)


def test_models_live_on_the_device_and_return_host_arrays(device):
    graph, inputs = CASES["seed_cnn"].build()
    model = snnir.compile(graph, "torch", device=device)
    assert model.device.type == torch.device(device).type
    assert {p.device.type for p in model.parameters()} == {model.device.type}
    result = model.run(inputs)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in result.outputs.values())
    tensors = model(torch.from_numpy(inputs))  # host tensors are moved to the model's device
    assert all(t.device.type == model.device.type for t in tensors.values())


def test_float64_on_the_device_matches_float64_on_cpu(device):
    graph, inputs = CASES["recurrent_cubalif_zero"].build()
    probes = state_probes(graph)
    host = snnir.compile(graph, "torch", dtype=torch.float64).run(inputs, probes=probes)
    found = snnir.compile(graph, "torch", dtype=torch.float64, device=device).run(inputs, probes=probes)
    for key in host.outputs:
        np.testing.assert_array_equal(found.outputs[key], host.outputs[key], err_msg=key)
    for key in host.probes:
        np.testing.assert_allclose(found.probes[key], host.probes[key], rtol=1e-12, atol=1e-12, err_msg=key)


def _gradients(model, inputs, output, steps: int):
    """Gradients of the first step and the loss of each of ``steps`` SGD steps (mse_count_loss on
    ``output``, a spiking ``[T, B, C]`` record, sample ``b`` labelled ``b mod C``)."""
    optimizer, loss_fn = torch.optim.SGD(model.parameters(), lr=0.05), mse_count_loss(0.8, 0.2)
    losses, first = [], None
    for _ in range(steps):
        optimizer.zero_grad()
        record = model(inputs)[output]
        loss = loss_fn(record, torch.arange(record.shape[1], device=record.device) % record.shape[2])
        loss.backward()
        if first is None:
            first = {name: p.grad.detach().cpu().clone() for name, p in model.named_parameters()}
        optimizer.step()
        losses.append(loss.item())
    return losses, first


@pytest.mark.parametrize(("case_name", "output"), [("seed_cnn", "lif3_out"), ("seed_fc", "lif2_out")])
def test_training_steps_on_the_device_match_cpu(case_name, output, device):
    """BPTT through the hand-written scans and the pooling backward on the device: the first step's
    gradients (same spikes, dyadic forward) and three steps' losses agree with the CPU's."""
    graph, inputs = CASES[case_name].build()
    x = torch.from_numpy(inputs)
    host_losses, host_grads = _gradients(snnir.compile(graph, "torch"), x, output, 3)
    device_losses, device_grads = _gradients(snnir.compile(graph, "torch", device=device), x, output, 3)
    np.testing.assert_allclose(device_losses, host_losses, rtol=1e-5)
    for name, expected in host_grads.items():
        scale = float(expected.abs().max()) or 1.0
        torch.testing.assert_close(device_grads[name], expected, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_streaming_on_the_device_matches_the_whole_sequence(device):
    graph, inputs = CASES["self_delay_and_input_delay"].build()  # a sequence input [T, B, 4]
    model = snnir.compile(graph, "torch", device=device)
    whole = model.run(inputs)
    model.reset(inputs.shape[1])
    streamed = [model.step(inputs[t]) for t in range(inputs.shape[0])]
    for key in whole.outputs:
        np.testing.assert_array_equal(np.stack([r[key] for r in streamed]), whole[key], err_msg=key)


def test_a_graph_trained_on_the_device_runs_in_the_reference(device):
    graph, inputs = CASES["seed_fc"].build()
    model = snnir.compile(graph, "torch", device=device)
    _gradients(model, torch.from_numpy(inputs), "lif2_out", 2)
    probes = state_probes(graph)
    ours = model.run(inputs, probes=probes)
    theirs = snnir.compile(model.to_graph(), "reference").run(inputs, probes=probes)
    assert np.mean(ours["lif2_out"] == theirs["lif2_out"]) >= 0.999
    for key in theirs.probes:
        np.testing.assert_allclose(ours.probes[key], theirs.probes[key], rtol=1e-4, atol=1e-4, err_msg=key)


def _small_graph(surrogate="atan"):
    return Sequential(Linear(16), LIF(0.8, surrogate=surrogate), Linear(3), LIF(0.8, surrogate=surrogate),
                      input_shape=(10,), num_steps=6, seed=1)


def test_a_checkpoint_written_on_the_device_resumes_on_cpu(tmp_path, device):
    rng = np.random.default_rng(0)
    data, checkpoint = (rng.random((36, 10), dtype=np.float32), np.arange(36) % 3), tmp_path / "run.ckpt"
    on_device = snnir.compile(_small_graph(), "torch", device=device)
    first = fit(on_device, data, epochs=1, batch_size=12, lr=0.02, checkpoint=checkpoint, progress=False)
    loaded = snnir.compile(_small_graph(), "torch")  # the device's checkpoint, read on the CPU
    load_checkpoint(checkpoint, loaded, torch.optim.Adam(loaded.parameters()), np.random.default_rng(0))
    for (name, expected), found in zip(on_device.named_parameters(), loaded.parameters()):
        assert found.device.type == "cpu" and torch.equal(found, expected.detach().cpu()), name
    on_host = snnir.compile(_small_graph(), "torch")
    resumed = fit(on_host, data, epochs=2, batch_size=12, lr=0.02, checkpoint=checkpoint, resume=True, progress=False)
    assert len(resumed.epochs) == 2 and resumed.epochs[0]["loss"] == first.epochs[0]["loss"]
    reloaded = snnir.compile(_small_graph(), "torch")  # the checkpoint now holds the CPU run's second epoch
    load_checkpoint(checkpoint, reloaded, torch.optim.Adam(reloaded.parameters()), np.random.default_rng(0))
    for (name, expected), found in zip(on_host.named_parameters(), reloaded.parameters()):
        assert found.device.type == "cpu" and torch.equal(found, expected), name


@pytest.mark.parametrize("surrogate", sorted(SURROGATE_DEFAULTS))
def test_surrogate_gradients_on_the_device_match_cpu(surrogate, device):
    inputs = 3 * torch.rand(12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # both layers spike
    targets = torch.arange(12) % 3
    grads = []
    for where in ("cpu", device):
        model = snnir.compile(_small_graph(surrogate), "torch", dtype=torch.float64, device=where)
        loss = mse_count_loss(0.8, 0.2)(model(inputs)["spikes"], targets.to(model.device))
        loss.backward()
        grads.append({name: p.grad.detach().cpu() for name, p in model.named_parameters()})
    for name, expected in grads[0].items():
        assert expected.abs().max() > 0, f"{surrogate}: {name} receives no gradient, so the comparison would be empty"
        torch.testing.assert_close(grads[1][name], expected, rtol=1e-9, atol=1e-12, msg=f"{surrogate}: {name}")
