"""The reference neurons against snnTorch 1.0 itself (the peer library is the other source of truth).

Neuron updates are element-wise, so with identical float32 inputs the two must agree bit for bit:
spikes and membranes, for every reset mechanism, both reset timings, scalar and per-neuron parameters.
"""

import numpy as np
import pytest

import snnir
from snnir import LIF, CubaLIF, GraphBuilder, Scale

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")

STEPS, BATCH, WIDTH = 30, 4, 7


def _run_reference(neuron, inputs):
    builder = GraphBuilder(num_steps=STEPS)
    x = builder.input("x", (WIDTH,), encoding="sequence")
    n = builder.add("n", neuron, builder.add("pass", Scale(1.0), x))
    builder.output("spikes", n)
    for variable in neuron.state_variables:
        builder.output(variable, n, variable)
    return snnir.compile(builder.build(), "reference").run(inputs)


def _run_snntorch(neuron, inputs, names):
    """Step an snnTorch neuron over ``inputs``; returns ``{name: [T, B, W]}`` for its outputs in order."""
    state = neuron.reset_mem()
    state = state if isinstance(state, tuple) else (state,)
    records = {name: [] for name in names}
    with torch.no_grad():
        for t in range(STEPS):
            spikes, *state = neuron(torch.from_numpy(inputs[t]), *state)
            for name, value in zip(names, (spikes, *state)):
                records[name].append(value.numpy())
    return {name: np.stack(values) for name, values in records.items()}


def _inputs(seed):
    return np.random.default_rng(seed).normal(0.4, 0.8, (STEPS, BATCH, WIDTH)).astype(np.float32)


def _params(per_neuron, seed):
    rng = np.random.default_rng(seed)
    if per_neuron:
        return rng.uniform(0.3, 1.0, WIDTH).astype(np.float32), rng.uniform(0.5, 1.5, WIDTH).astype(np.float32)
    return np.float32(0.8), np.float32(1.0)


@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_leaky_matches_snntorch(reset, reset_delay, per_neuron):
    beta, threshold = _params(per_neuron, 1)
    inputs = _inputs(2)
    ours = _run_reference(
        LIF(beta, threshold=threshold, reset=reset, reset_timing="next_step" if reset_delay else "same_step"), inputs
    )
    theirs = snn.Leaky(beta=torch.tensor(beta), threshold=torch.tensor(threshold), reset_mechanism=reset, reset_delay=reset_delay)
    expected = _run_snntorch(theirs, inputs, ["spikes", "membrane"])
    for key, values in expected.items():
        np.testing.assert_array_equal(ours[key], values, err_msg=key)


@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_synaptic_matches_snntorch(reset, reset_delay):
    beta, threshold = _params(True, 3)
    alpha = np.random.default_rng(4).uniform(0.2, 0.9, WIDTH).astype(np.float32)
    inputs = _inputs(5)
    ours = _run_reference(
        CubaLIF(alpha, beta, threshold=threshold, reset=reset, reset_timing="next_step" if reset_delay else "same_step"),
        inputs,
    )
    theirs = snn.Synaptic(
        alpha=torch.tensor(alpha), beta=torch.tensor(beta), threshold=torch.tensor(threshold),
        reset_mechanism=reset, reset_delay=reset_delay,
    )
    expected = _run_snntorch(theirs, inputs, ["spikes", "current", "membrane"])
    for key, values in expected.items():
        np.testing.assert_array_equal(ours[key], values, err_msg=key)


def test_graded_spikes_match_snntorch():
    inputs = _inputs(6)
    ours = _run_reference(LIF(0.7, graded_spikes_factor=1.5, reset_timing="same_step"), inputs)
    theirs = snn.Leaky(beta=0.7, graded_spikes_factor=1.5, reset_delay=False)
    expected = _run_snntorch(theirs, inputs, ["spikes", "membrane"])
    for key, values in expected.items():
        np.testing.assert_array_equal(ours[key], values, err_msg=key)
