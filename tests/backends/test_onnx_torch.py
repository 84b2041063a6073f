"""Trained seed networks: onnxruntime's spike counts equal the torch backend's (the issue's acceptance test).

The networks are the snnTorch quickstart ones (examples/*.yaml), trained briefly with the torch backend
on a small synthetic task (the class is the brightest of ten image bands), so that their weights are
trained, non-dyadic float32 values.
"""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import snnir  # noqa: E402
from snnir.errors import BackendNotFoundError, BackendUnavailableError  # noqa: E402
from snnir.testing import graph_differences  # noqa: E402


def _torch():
    try:
        snnir.registry.get_backend("torch")
    except (BackendNotFoundError, BackendUnavailableError) as error:
        pytest.skip(f"the torch backend is not available yet: {error}")
    import torch

    return torch


def _task(rng, count):
    """Images of 28 rows in ten bands; the label is the band with the brightest mean (pixels up to 2,
    which keeps the default-initialised CNN's output layer firing)."""
    images = rng.random((count, 1, 28, 28), np.float32)
    labels = rng.integers(0, 10, count)
    for image, label in zip(images, labels):
        image[0, 2 + 2 * label : 4 + 2 * label] += np.float32(1.0)
    return images, labels


@pytest.mark.parametrize("example", ["quickstart_fc", "quickstart_cnn"])
def test_trained_seed_networks_spike_like_the_torch_backend(example, tmp_path):
    torch = _torch()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    graph = snnir.load(f"examples/{example}.yaml").replace(time=snnir.TimeSpec(num_steps=12))
    model = snnir.compile(graph, "torch")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    images, labels = _task(rng, 64)
    steps = graph.time.num_steps
    for start in range(0, 64, 16):  # a few BPTT steps of snnTorch's mse_count_loss (80 % / 20 % of the steps)
        counts = model(torch.from_numpy(images[start : start + 16]))["spikes"].sum(0)
        target = torch.full_like(counts, 0.2 * steps)
        target[torch.arange(16), torch.from_numpy(labels[start : start + 16])] = 0.8 * steps
        loss = torch.nn.functional.mse_loss(counts, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = model.to_graph()
    assert graph_differences(graph, trained), "training changed no parameter"

    test_images, _ = _task(rng, 32)
    with torch.no_grad():
        torch_counts = model.run(test_images)["spikes"].sum(0)
    path = snnir.export_onnx(trained, tmp_path / f"{example}.onnx", mode="sequence")
    for runner in (snnir.compile(trained, "onnx"), snnir.backends.onnx_export.Runtime(path)):
        onnx_counts = runner.run(test_images)["spikes"].sum(0)
        assert onnx_counts.mean() > 0.5  # the comparison covers a firing network
        np.testing.assert_array_equal(onnx_counts, torch_counts)
