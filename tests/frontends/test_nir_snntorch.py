"""Golden check against snnTorch, the library that trained and wrote the Braille graphs.

snnTorch's exporter writes ``τ = dt/(1 − β)``, ``r = τ_mem/dt`` and ``w_in = τ_syn/dt`` at dt = 1e-4;
importing with Euler at that dt must give back snnTorch's own network. We rebuild it from the file's
weights and the trained hyper-parameters (``parameters_*.json``) as ``RSynaptic``/``Synaptic`` and
compare spikes and membranes step by step.
"""

import json
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")
torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")

import snnir  # noqa: E402
from snnir.frontends.nir import from_nir  # noqa: E402
from snnir.ir.graph import Edge  # noqa: E402
from snnir.testing import spike_train  # noqa: E402

PAPER = Path(__file__).resolve().parents[2].parent / "shared" / "nir-paper"
pytestmark = pytest.mark.skipif(not PAPER.is_dir(), reason=f"the NIR paper graphs are not at {PAPER}")

BRAILLE = {
    "zero": ("braille_noDelay_bias_zero.nir", "parameters_noDelay_bias_ref_zero.json"),
    "subtract": ("braille_noDelay_noBias_subtract.nir", "parameters_noDelay_noBias_ref_subtract.json"),
}


def _linear(node) -> "torch.nn.Linear":
    weight = torch.tensor(np.asarray(node.weight, np.float32))
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(node, nir.Affine))
    with torch.no_grad():
        layer.weight.copy_(weight)
        if isinstance(node, nir.Affine):
            layer.bias.copy_(torch.tensor(np.asarray(node.bias, np.float32)))
    return layer


def _snntorch_run(file: str, parameters: str, reset: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    graph = nir.read(PAPER / file)
    hyper = json.loads((PAPER / parameters).read_text())
    fc1, fc2 = _linear(graph.nodes["fc1"]), _linear(graph.nodes["fc2"])
    hidden = fc1.out_features
    lif1 = snn.RSynaptic(alpha=hyper["alpha_r"], beta=hyper["beta_r"], linear_features=hidden, reset_mechanism=reset)
    lif1.recurrent = _linear(graph.nodes["lif1.w_rec"])
    lif2 = snn.Synaptic(alpha=hyper["alpha_out"], beta=hyper["beta_out"], reset_mechanism=reset)
    spk1, syn1, mem1 = lif1.init_rsynaptic()
    syn2, mem2 = lif2.init_synaptic()
    spikes, membranes = [], []
    with torch.no_grad():
        for x_t in torch.tensor(x):
            spk1, syn1, mem1 = lif1(fc1(x_t), spk1, syn1, mem1)
            spk2, syn2, mem2 = lif2(fc2(spk1), syn2, mem2)
            spikes.append(spk2.numpy().copy())
            membranes.append(mem2.numpy().copy())
    return np.array(spikes), np.array(membranes)


def _snnir_run(graph, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    result = snnir.compile(graph, "reference").run(x, probes=["lif2:membrane"])
    return result["output"], result.probes["lif2:membrane"]


@pytest.mark.parametrize("reset", sorted(BRAILLE))
def test_braille_import_reproduces_snntorch(reset):
    file, parameters = BRAILLE[reset]
    x = spike_train(np.random.default_rng(1), (120, 4, 12), 0.3)
    expected_spikes, expected_membrane = _snntorch_run(file, parameters, reset, x)
    graph = from_nir(PAPER / file, dt=1e-4, reset=reset, reset_timing="next_step")  # snnTorch's reset_delay=True
    if reset == "zero":
        # NIR leaves open where a cycle's one-step delay sits; snnir (like NIRTorch) delays the recurrent
        # synapse's output, which is 0 at step 0, while snnTorch's RSynaptic applies the synapse to the
        # previous spikes (0), giving its bias at step 0. Only this file has a biased synapse; moving
        # the delay onto the spikes reproduces snnTorch exactly.
        moved = {("lif1.lif", "lif1.w_rec"): 1, ("lif1.w_rec", "lif1.lif"): 0}
        graph = graph.replace(edges=[Edge(e.src, e.dst, moved.get((e.src, e.dst), e.delay)) for e in graph.edges])
    spikes, membrane = _snnir_run(graph, x)
    assert expected_spikes.sum() > 20
    np.testing.assert_array_equal(spikes, expected_spikes)
    np.testing.assert_allclose(membrane, expected_membrane, atol=1e-5)


def test_as_imported_the_biased_braille_graph_differs_from_snntorch_only_by_the_step_zero_bias():
    file, parameters = BRAILLE["zero"]
    x = np.zeros((1, 1, 12), np.float32)
    graph = from_nir(PAPER / file, dt=1e-4, reset="zero", reset_timing="next_step")
    result = snnir.compile(graph, "reference").run(x, probes=["lif1.lif:current"])
    bias = np.asarray(nir.read(PAPER / file).nodes["fc1"].bias, np.float32)
    np.testing.assert_array_equal(result.probes["lif1.lif:current"][0, 0], bias)  # fc1's bias only
