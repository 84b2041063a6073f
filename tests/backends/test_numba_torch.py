"""Trained seed networks: the numba backend agrees with the torch backend that trained them.

Weights after training are general float32 numbers, so sums may round differently (BLAS, conv
algorithms); the numerics contract (docs/semantics.md) asks for >= 99.9% spike agreement, and this
test also asks for identical predictions on >= 99.9% of the samples.
"""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

import snnir  # noqa: E402
from snnir.errors import BackendNotFoundError, BackendUnavailableError  # noqa: E402
from snnir.registry import get_backend  # noqa: E402
from snnir.runtime import readout  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _torch_backend():
    try:
        return get_backend("torch")
    except (BackendNotFoundError, BackendUnavailableError) as error:
        pytest.skip(f"the torch backend is not available: {error}")


@pytest.mark.parametrize("example", ["quickstart_fc.yaml", "quickstart_cnn.yaml"])
def test_trained_seed_network_agrees_with_the_torch_backend(example, tmp_path, torch_single_thread):
    _torch_backend()
    from snnir.backends.pytorch import fit

    graph = snnir.load(EXAMPLES / example)
    rng = np.random.default_rng(0)
    # synthetic "digits": a class-dependent bright bar on noise, so training moves the weights
    labels = rng.integers(0, 10, 96)
    images = rng.random((96, 1, 28, 28)).astype(np.float32) * 0.3
    for k, label in enumerate(labels):
        images[k, 0, 2 + 2 * label : 5 + 2 * label, 4:24] += 0.7
    trainer = snnir.compile(graph, "torch")
    fit(trainer, (images[:32], labels[:32]), epochs=1, batch_size=16, progress=False)  # two Adam steps
    trained = trainer.to_graph()
    assert not np.array_equal(trained.nodes["fc1"].weight, graph.nodes["fc1"].weight)

    test = images[64:]
    expected = snnir.compile(trained, "torch").run(test)
    found = snnir.compile(trained, "numba", cache_dir=tmp_path).run(test)
    agreement = np.mean(found["spikes"] == expected["spikes"])
    assert agreement >= 0.999, f"spike agreement {agreement:.5f}"
    same = np.mean(readout(found["spikes"], "count") == readout(expected["spikes"], "count"))
    assert same >= 0.999, f"identical predictions on {same:.4f} of the samples"
    assert expected["spikes"].sum() > 0  # the comparison is not between two silent networks
