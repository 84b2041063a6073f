"""Modules with an explicit time loop: traced on a probe, folded into one step, checked against their own forward."""

import numpy as np
import pytest

import snnir
from snnir import CubaLIF, LIF, Flatten, Scale
from snnir.errors import GraphError, UnsupportedNodeError

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from snntorch import utils  # noqa: E402
from torch import nn  # noqa: E402

from snnir.frontends.snntorch import from_snntorch, to_snntorch  # noqa: E402

STEPS, BATCH = 8, 3


def _rand(*shape, seed=0, scale=2.0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * scale


class SequenceNet(nn.Module):
    """Input [T, B, 5] indexed by step; explicit Synaptic and RLeaky states; a dict of records."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 7)
        self.syn = snn.Synaptic(alpha=0.6, beta=0.8)
        self.fc2 = nn.Linear(7, 4)
        self.rlif = snn.RLeaky(beta=0.7, linear_features=4)

    def forward(self, x):
        syn, mem = self.syn.reset_mem()
        spk2, mem2 = self.rlif.init_rleaky()
        out, membrane, hidden = [], [], []
        for step in range(x.shape[0]):
            spk1, syn, mem = self.syn(self.fc1(x[step]), syn, mem)
            spk2, mem2 = self.rlif(self.fc2(spk1), spk2, mem2)
            out.append(spk2)
            membrane.append(mem2)
            hidden.append(spk1)
        return {"out": torch.stack(out), "mem": torch.stack(membrane), "hidden": torch.stack(hidden)}


class Block(nn.Module):
    def __init__(self, n_in, n_out, beta):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.lif = snn.Leaky(beta=beta, init_hidden=True)

    def forward(self, x):
        return self.lif(self.fc(x))


class BranchNet(nn.Module):
    """init_hidden neurons inside a loop, a nested block, two summed branches, a constant gain, a layer used
    twice per step, a constant drive before the last neuron, and last-step returns."""

    def __init__(self):
        super().__init__()
        self.fa = nn.Linear(12, 5)
        self.fb = nn.Linear(12, 5)
        self.block = Block(5, 5, 0.9)
        self.out = nn.Linear(5, 5)
        self.drive = nn.Parameter(torch.full((5,), 0.25))
        self.lif2 = snn.Leaky(beta=0.5, init_hidden=True, output=True)

    def forward(self, x):
        utils.reset(self)
        x = x.view(x.shape[0], -1)
        for step in range(STEPS):
            spk = self.block(self.fa(x) + self.fb(x) * 0.5)
            spk2, mem2 = self.lif2(self.out(spk) + self.out(spk) + self.drive)
        return spk2, mem2


def test_sequence_module_converts_and_round_trips():
    torch.manual_seed(0)
    net = SequenceNet()
    graph = from_snntorch(net, (5,), STEPS, encoding="sequence")
    assert graph.nodes["x"].encoding == "sequence"
    assert isinstance(graph.nodes["syn"], CubaLIF) and isinstance(graph.nodes["rlif"], LIF)
    assert [o for o in graph.outputs] == ["out", "mem", "hidden"]  # named by the returned dict's keys
    x = _rand(STEPS, BATCH, 5, seed=1)
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in net(x).items()}
    assert expected["out"].sum() > 5
    result = snnir.compile(graph, "reference").run(x.numpy())
    np.testing.assert_array_equal(result["out"], expected["out"])
    np.testing.assert_array_equal(result["hidden"], expected["hidden"])
    np.testing.assert_allclose(result["mem"], expected["mem"], atol=1e-5, rtol=0)
    back = to_snntorch(graph)
    with torch.no_grad():
        found = back(x)
    assert list(found) == ["out", "mem", "hidden"]
    for key, value in found.items():
        np.testing.assert_array_equal(value.numpy(), expected[key])


def test_branches_scales_shared_layers_and_drives():
    torch.manual_seed(1)
    net = BranchNet()
    graph = from_snntorch(net, (3, 4), STEPS)
    assert isinstance(graph.nodes["flatten1"], Flatten) and isinstance(graph.nodes["scale1"], Scale)
    assert [e.src for e in graph.incoming("block_fc")] == ["fa", "scale1"]  # a + b * 0.5: summed in order
    assert [e.src for e in graph.incoming("lif2")] == ["out", "out_2"]  # the shared layer, twice
    np.testing.assert_array_equal(graph.nodes["lif2"].bias, np.full(5, 0.25, np.float32))
    assert graph.metadata["snntorch"]["returns"]["items"][0] == {"output": "spikes", "last_step": True}
    x = _rand(BATCH, 3, 4, seed=2)
    with torch.no_grad():
        spikes, membrane = net(x)
    result = snnir.compile(graph, "reference").run(x.numpy())
    np.testing.assert_array_equal(result["spikes"][-1], spikes.numpy())
    np.testing.assert_allclose(result["membrane"][-1], membrane.numpy(), atol=1e-5, rtol=0)
    with torch.no_grad():
        again = to_snntorch(graph)(x)
    assert torch.equal(again[0], spikes) and torch.equal(again[1], membrane)


def test_generated_loop_is_readable_python():
    torch.manual_seed(2)
    back = to_snntorch(from_snntorch(SequenceNet(), (5,), STEPS, encoding="sequence"))
    assert "for step in range(steps):" in back.code  # a sequence input sets the number of steps
    assert "self.rlif(fc2, spk_rlif, mem_rlif)" in back.code  # RLeaky keeps snnTorch's own recurrence


# -- what cannot be folded ---------------------------------------------------------------------------
class Loop(nn.Module):
    """A one-neuron loop whose step is given as a function, for the error cases."""

    def __init__(self, step, steps=STEPS):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 3)
        self.lif = snn.Leaky(0.9)
        self.lif2 = snn.Leaky(0.9)
        self.step = step
        self.steps = steps

    def forward(self, x):
        mem = self.lif.reset_mem()
        records = []
        for t in range(self.steps):
            spk, mem = self.step(self, x, t, mem)
            records.append(spk)
        return torch.stack(records)


def _no_feedback(self, x, t, mem):
    return self.lif(self.fc(x), torch.zeros(x.shape[0], 3))


def _branch(self, x, t, mem):
    current = self.fc(x)
    if t == 0:
        current = self.fc2(current)
    return self.lif(current, mem)


def _relu(self, x, t, mem):
    return self.lif(torch.relu(self.fc(x)), mem)


def _membrane_edge(self, x, t, mem):
    spk, mem = self.lif(self.fc(x), mem)
    return self.lif2(self.fc2(mem))[0], mem


def _constant_into_synapse(self, x, t, mem):
    return self.lif(self.fc2(self.fc(x) + 1.0), mem)


@pytest.mark.parametrize(
    ("step", "error", "expected"),
    [
        (_no_feedback, GraphError, "its 'mem' argument must be its own"),
        (_branch, GraphError, "runs only once, inside the loop"),
        (_relu, UnsupportedNodeError, "torch.relu"),
        (_membrane_edge, UnsupportedNodeError, "membrane of 'lif'"),
        (_constant_into_synapse, UnsupportedNodeError, "constant drive only as the bias"),
    ],
)
def test_unfoldable_steps_are_named(step, error, expected):
    with pytest.raises(error, match=expected) as caught:
        from_snntorch(Loop(step), (3,), STEPS)
    assert "test_snntorch_trace.py" in str(caught.value) or "lif" in str(caught.value)  # where


class IntegratorFeed(nn.Module):
    """A Leaky that never resets, whose membrane (not its spikes) feeds the next layer: a leaky integrator."""

    def __init__(self, return_spikes=False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)
        self.integrator = snn.Leaky(0.75, reset_mechanism="none")
        self.lif = snn.Leaky(0.5)
        self.return_spikes = return_spikes

    def forward(self, x):
        mem_i, mem = self.integrator.reset_mem(), self.lif.reset_mem()
        records, integrator_spikes = [], []
        for _ in range(STEPS):
            spk_i, mem_i = self.integrator(self.fc1(x), mem_i)
            spk, mem = self.lif(self.fc2(mem_i), mem)
            records.append(spk)
            integrator_spikes.append(spk_i)
        return (torch.stack(records), torch.stack(integrator_spikes)) if self.return_spikes else torch.stack(records)


def test_a_membrane_of_a_leaky_without_reset_feeds_a_layer_as_an_li():
    """``U = β·U + I`` whatever it spikes: with its spikes unused, the Leaky is an LI, whose value is the membrane."""
    net = IntegratorFeed()
    graph = from_snntorch(net, (3,), STEPS)
    assert graph.nodes["integrator"].kind == "LI" and graph.nodes["integrator"].beta == 0.75
    x = _rand(BATCH, 3, scale=1.0)
    with torch.no_grad():
        utils.reset(net)
        expected = net(x).numpy()
    assert np.array_equal(snnir.compile(graph, "torch").run(x.numpy())["spikes"], expected)


def test_a_membrane_whose_neurons_spikes_are_used_too_is_refused():
    with pytest.raises(UnsupportedNodeError, match="membrane of 'integrator', whose spikes are used too"):
        from_snntorch(IntegratorFeed(return_spikes=True), (3,), STEPS)


def test_wrong_number_of_steps_names_the_loop_length():
    with pytest.raises(GraphError, match="seems to run 8 steps"):
        from_snntorch(Loop(_relu), (3,), 5)


def test_an_operation_run_in_some_steps_only_says_so():
    class Gated(Loop):
        def forward(self, x):
            mem, records = self.lif.reset_mem(), []
            for step in range(STEPS):
                current = self.fc(x) if step < STEPS // 2 else self.fc(x) * 0.0
                spk, mem = self.lif(current, mem)
                records.append(spk)
            return torch.stack(records)

    with pytest.raises(GraphError, match=f"Tensor.mul at test_snntorch_trace.py:\\d+ ran in only {STEPS // 2} of the loop's {STEPS} steps"):
        from_snntorch(Gated(None), (3,), STEPS)


def test_returned_values_must_be_per_step_records():
    class Summed(Loop):
        def forward(self, x):
            return super().forward(x).sum(0)

    with pytest.raises(GraphError, match="torch.stack"):
        from_snntorch(Summed(lambda self, x, t, mem: self.lif(self.fc(x), mem)), (3,), STEPS)


def test_indexing_by_step_needs_a_sequence_input():
    with pytest.raises(GraphError, match="encoding='sequence'"):
        from_snntorch(SequenceNet(), (5,), STEPS, encoding="direct", batch_size=STEPS)  # loops over the batch


def test_a_constant_before_a_synaptic_neuron_is_refused():
    class Drive(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.syn = snn.Synaptic(alpha=0.5, beta=0.5, init_hidden=True, output=True)

        def forward(self, x):
            utils.reset(self)
            for _ in range(STEPS):
                spk, syn, mem = self.syn(self.fc(x) + 0.5)
            return spk

    with pytest.raises(UnsupportedNodeError, match="synaptic current"):
        from_snntorch(Drive(), (3,), STEPS)


@pytest.mark.parametrize("others", [0, STEPS - 2, 2 * STEPS])
def test_utils_reset_of_other_neurons_alive_in_the_process_is_not_part_of_the_model(others, monkeypatch):
    """snnTorch's utils.reset zeroes the hidden state of every neuron instance alive in the process (a
    class-wide list). Recorded, its calls would repeat once per instance at one site, and read as a loop
    body when that count equals num_steps: with BranchNet's 2 Leaky, others = STEPS - 2 made it so."""
    monkeypatch.setattr(snn.SpikingNeuron, "instances", [])  # this test's neurons only
    alive = [snn.Leaky(beta=0.5, init_hidden=True) for _ in range(others)]  # noqa: F841 (kept alive)
    torch.manual_seed(1)
    net = BranchNet()
    assert sum(isinstance(n, snn.Leaky) for n in snn.SpikingNeuron.instances) == others + 2
    graph = from_snntorch(net, (3, 4), STEPS)
    x = _rand(BATCH, 3, 4, seed=2)
    with torch.no_grad():
        expected = net(x)[0].numpy()
    np.testing.assert_array_equal(snnir.compile(graph, "reference").run(x.numpy())["spikes"][-1], expected)
