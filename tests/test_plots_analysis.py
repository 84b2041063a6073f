"""PNG plots and cost estimates."""

import numpy as np
import pytest

import snnir
from snnir.analysis import dense_macs, firing_rates, format_costs, synaptic_operations
from snnir.passes import spike_carriers
from snnir.testing import CASES

pytest.importorskip("matplotlib")
from snnir.plots import plot_activity, plot_history, plot_raster  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_write_png_files(tmp_path):
    spikes = (np.random.default_rng(0).random((25, 4, 10)) < 0.2).astype(np.float32)
    assert plot_raster(spikes, tmp_path / "r.png", sample=2, dt=1e-3).read_bytes().startswith(PNG)
    assert plot_activity({"lif1": spikes.mean((0, 1)), "lif2": spikes.mean((0, 1))}, tmp_path / "a.png").read_bytes().startswith(PNG)
    history = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.4, 0.7, 0.8], "test_accuracy": [0.35, 0.6, 0.75]}
    assert plot_history(history, tmp_path / "h.png").read_bytes().startswith(PNG)
    with pytest.raises(snnir.InputError, match="outside the batch"):
        plot_raster(spikes, tmp_path / "bad.png", sample=9)
    with pytest.raises(snnir.InputError, match=r"nothing to plot: spikes of shape \[0, 10\]"):
        plot_raster(spikes[:0], tmp_path / "bad.png", sample=2)
    with pytest.raises(snnir.InputError, match="nothing to plot"):
        plot_history({"epochs": [1]}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_dense_macs_and_synops():
    graph, inputs = CASES["seed_cnn"].build()
    assert dense_macs(graph, "conv1") == 4 * 12 * 12 * 1 * 9
    assert dense_macs(graph, "fc") == 10 * 24
    assert dense_macs(graph, "lif1") == 0
    assert spike_carriers(graph) >= {"lif1", "lif2", "lif3", "flatten"}
    rates = firing_rates(snnir.compile(graph), inputs)
    costs = {c.node: c for c in synaptic_operations(graph, rates)}
    assert costs["conv1"].source_rate is None and costs["conv1"].synops == costs["conv1"].macs  # dense input
    assert costs["conv2"].source_rate == pytest.approx(rates["lif1"])
    assert costs["fc"].synops == pytest.approx(costs["fc"].macs * rates["flatten"])
    assert "total" in format_costs(list(costs.values()))


def test_the_cost_tables_total_is_the_sum_of_its_rows():
    from snnir.analysis import LayerCost

    costs = [LayerCost(name, "Linear", 10, 0.24, 2.4) for name in "abc"]
    rows = {line.split()[0]: line.split() for line in format_costs(costs).splitlines()[1:]}
    assert [rows[name][-1] for name in "abc"] == ["2", "2", "2"]
    assert rows["total"][1:] == ["30", "6"]  # the rows as shown add up to 6; the unrounded sum 7.2 would print 7


def test_synops_of_synapses_fed_by_spike_trains_and_pools_of_spikes():
    """A sequence input of spikes and a SumPool of spikes are sparse too (numba skips their zeros): their
    synapses cost MACs times the fraction of nonzero values, not MACs (a user walkthrough found the
    NIR-style CNN's SynOps 5x too high)."""
    from snnir import Conv2d, Flatten, GraphBuilder, LIF, Linear, SumPool2d
    from snnir.analysis import activity

    builder = GraphBuilder("nir_style", num_steps=5)
    x = builder.input("x", (2, 8, 8), encoding="sequence")
    last = builder.chain(x, ("conv", Conv2d(4, 3, padding=1)), ("lif", LIF(0.5, threshold=0.05)), ("pool", SumPool2d(2)),
                         ("flat", Flatten()), ("fc", Linear(3)), ("out", LIF(0.5)))
    builder.output("spikes", last)
    graph = builder.build(seed=0)
    data = (np.random.default_rng(0).random((5, 3, 2, 8, 8)) < 0.3).astype(np.float32)
    rates = activity(snnir.compile(graph), data)
    assert rates["x"] == pytest.approx(float(np.mean(data != 0)))
    assert 0 < rates["pool"] <= 1 and rates["flat"] == rates["pool"]
    probes = snnir.compile(graph).run(data, probes=["pool"]).probes
    assert rates["pool"] == pytest.approx(float(np.mean(probes["pool"] != 0)))
    costs = {c.node: c for c in synaptic_operations(graph, rates)}
    assert costs["conv"].synops == pytest.approx(costs["conv"].macs * rates["x"])
    assert costs["fc"].synops == pytest.approx(costs["fc"].macs * rates["flat"])
