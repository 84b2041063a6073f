"""The NIR paper's reference graphs (written by Norse, Rockpool, Sinabs, snnTorch) in snnir.

Acceptance of issue 6 (running every graph on every backend is in tests/conformance): the
Norse LIF reproduces the exact solution's spike steps, and to_nir → nir.write → nir.read gives back
the same snnir graph. Golden values come from the paper's CSV files, never from snnir itself.
"""

from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

import snnir  # noqa: E402
from snnir.frontends.nir import from_nir, to_nir  # noqa: E402
from snnir.testing import assert_graph_equal, state_probes  # noqa: E402
from snnir.testing.nir_paper import paper_graphs  # noqa: E402

PAPER = Path(__file__).resolve().parents[2].parent / "shared" / "nir-paper"
pytestmark = pytest.mark.skipif(not PAPER.is_dir(), reason=f"the NIR paper graphs are not at {PAPER}")

GRAPHS = paper_graphs(PAPER)


def _csv(name: str) -> np.ndarray:
    """Columns: input spike, membrane, output spike (one row per step of 0.1 ms)."""
    return np.loadtxt(PAPER / name, delimiter=",")


def _load(file: str):
    kwargs, make_input = GRAPHS[file]
    return from_nir(PAPER / file, **kwargs), make_input(np.random.default_rng(0))


# Running every paper graph on every backend is part of the conformance suite (tests/conformance).


def test_lif_norse_with_euler_reproduces_the_exact_solutions_spike_steps():
    data = _csv("lif_exact.csv")
    x = data[:, 0].astype(np.float32)[:, None, None]
    graph = from_nir(PAPER / "lif_norse.nir", dt=1e-4, discretization="euler")
    spikes = snnir.compile(graph, "reference").run(x)["output"][:, 0, 0]
    assert np.nonzero(spikes)[0].tolist() == np.nonzero(data[:, 2])[0].tolist() == [460, 510, 710, 760]


def test_lif_norse_with_the_exact_scheme_matches_the_exact_membrane():
    data = _csv("lif_exact.csv")
    x = data[:, 0].astype(np.float32)[:, None, None]
    graph = from_nir(PAPER / "lif_norse.nir", dt=1e-4, discretization="exact")
    result = snnir.compile(graph, "reference").run(x, probes=["1:membrane"])
    membrane = result.probes["1:membrane"][:, 0, 0]
    first_spike = int(np.nonzero(data[:, 2])[0][0])
    # Up to the first output spike (after it the CSV samples the reset differently) the exact
    # scheme is the exact solution, to float32 precision; Euler is off by about 1e-3.
    np.testing.assert_allclose(membrane[:first_spike], data[:first_spike, 1], atol=1e-7)
    assert np.nonzero(result["output"][:, 0, 0])[0].tolist() == [460, 510, 710, 760]


def test_braille_and_cnn_graphs_run_and_spike():
    for file in ("braille_noDelay_bias_zero.nir", "braille_noDelay_noBias_subtract.nir", "cnn_sinabs.nir"):
        graph, x = _load(file)
        result = snnir.compile(graph, "reference").run(x, probes=state_probes(graph))
        assert result["output"].shape[:2] == x.shape[:2]
        hidden = [k for k in result.probes if ":" not in k and graph.nodes[k].spiking]
        assert sum(result.probes[k].sum() for k in hidden) > 0, f"{file}: no neuron ever spiked"


def test_braille_recurrence_gets_one_step_on_the_back_edge():
    graph, _ = _load("braille_noDelay_bias_zero.nir")
    delayed = [(e.src, e.dst, e.delay) for e in graph.edges if e.delay]
    assert delayed == [("lif1.w_rec", "lif1.lif", 1)]
    assert graph.nodes["lif1.lif"].kind == "CubaLIF" and "lif1.lif.gain" not in graph.nodes  # snnTorch's r, w_in: gain 1
    np.testing.assert_allclose(graph.nodes["lif1.lif"].alpha, 0.55, rtol=1e-6)  # parameters_*.json: alpha_r
    np.testing.assert_allclose(graph.nodes["lif1.lif"].beta, 0.9, rtol=1e-6)  # beta_r


@pytest.mark.parametrize("file", sorted(GRAPHS))
def test_to_nir_written_and_read_by_nir_gives_back_the_same_graph(file, tmp_path):
    graph, _ = _load(file)
    path = tmp_path / "graph.nir"
    nir.write(path, to_nir(graph))
    assert_graph_equal(from_nir(nir.read(path)), graph)
    assert_graph_equal(snnir.load(path), graph)  # snnir.load reads dt and the scheme from the file
