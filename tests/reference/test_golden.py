"""Golden values for every neuron, reset mode and timing, derived by hand from docs/semantics.md.

Each table was computed on paper from the update equations (the derivations are in docs/semantics.md),
never from snnir's output. All values are dyadic or short decimals, so float32 results must match to
within float32 rounding of the decimal constants.
"""

import numpy as np
import pytest

import snnir
from snnir import IF, LI, LIF, CubaLIF, GraphBuilder, Scale


def _single_neuron(neuron, inputs, *, shape=(1,)):
    """Drive ``neuron`` directly with ``inputs`` (one row per step) and return spikes, states."""
    steps = len(inputs)
    builder = GraphBuilder(num_steps=steps)
    x = builder.input("x", shape, encoding="sequence")
    n = builder.add("n", neuron, builder.add("pass", Scale(1.0), x))
    builder.output("value", n)
    for variable in neuron.state_variables:
        builder.output(variable, n, variable)
    data = np.asarray(inputs, np.float32).reshape(steps, 1, *shape)
    result = snnir.compile(builder.build(), "reference").run(data)
    return {k: v.reshape(steps, *shape).squeeze() for k, v in result.outputs.items()}


INPUTS = [1.5, 0.0, 0.3, 2.0, 0.0]

LIF_TABLES = {
    # (reset, timing): (spikes, recorded membrane)
    ("subtract", "next_step"): ([1, 0, 0, 1, 0], [1.5, -0.25, 0.175, 2.0875, 0.04375]),
    ("zero", "next_step"): ([1, 0, 0, 1, 0], [1.5, 0.0, 0.3, 2.15, 0.0]),
    ("none", "next_step"): ([1, 0, 0, 1, 1], [1.5, 0.75, 0.675, 2.3375, 1.16875]),
    ("subtract", "same_step"): ([1, 0, 0, 1, 0], [0.5, 0.25, 0.425, 1.2125, 0.60625]),
    ("zero", "same_step"): ([1, 0, 0, 1, 0], [0.0, 0.0, 0.3, 0.0, 0.0]),
    ("none", "same_step"): ([1, 0, 0, 1, 1], [1.5, 0.75, 0.675, 2.3375, 1.16875]),
}


@pytest.mark.parametrize("reset,timing", list(LIF_TABLES))
def test_lif_tables(reset, timing):
    spikes, membrane = LIF_TABLES[(reset, timing)]
    out = _single_neuron(LIF(0.5, threshold=1.0, reset=reset, reset_timing=timing), INPUTS)
    np.testing.assert_array_equal(out["value"], spikes)
    np.testing.assert_allclose(out["membrane"], membrane, rtol=0, atol=1e-6)


def test_threshold_is_strict():
    # U equals the threshold (1.0) at steps 0 and 1 and must not spike there: H(0) = 0.
    out = _single_neuron(LIF(0.5), [1.0, 0.5, 0.6])
    np.testing.assert_array_equal(out["value"], [0, 0, 1])
    np.testing.assert_allclose(out["membrane"], [1.0, 1.0, 1.1])


def test_cubalif_subtract_and_zero():
    inputs = [1.0, 0.0, 0.0, 1.0, 0.0]
    current = [1.0, 0.5, 0.25, 1.125, 0.5625]
    sub = _single_neuron(CubaLIF(0.5, 0.5), inputs)
    np.testing.assert_array_equal(sub["value"], [0, 0, 0, 1, 0])
    np.testing.assert_allclose(sub["current"], current)
    np.testing.assert_allclose(sub["membrane"], [1.0, 1.0, 0.75, 1.5, 0.3125])
    zero = _single_neuron(CubaLIF(0.5, 0.5, reset="zero"), inputs)
    np.testing.assert_allclose(zero["current"], current)  # the synaptic current is never reset
    np.testing.assert_allclose(zero["membrane"], [1.0, 1.0, 0.75, 1.5, 0.0])


def test_if_integrates_without_leak():
    out = _single_neuron(IF(threshold=1.0), [0.6, 0.6, 0.6, 0.0, 0.6])
    np.testing.assert_array_equal(out["value"], [0, 1, 0, 0, 1])
    np.testing.assert_allclose(out["membrane"], [0.6, 1.2, 0.8, 0.8, 1.4], atol=1e-6)


def test_li_is_a_leaky_readout():
    out = _single_neuron(LI(0.5), [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(out["value"], [1.0, 1.5, 0.75, 0.375])
    np.testing.assert_allclose(out["membrane"], out["value"])


def test_per_neuron_beta_and_threshold():
    out = _single_neuron(LIF(np.array([0.5, 1.0]), threshold=np.array([1.0, 2.0])), [[1, 1]] * 3, shape=(2,))
    np.testing.assert_array_equal(out["value"], [[0, 0], [1, 0], [0, 1]])
    np.testing.assert_allclose(out["membrane"], [[1.0, 1.0], [1.5, 2.0], [0.75, 3.0]])


def test_beta_is_clamped_on_use():
    # beta 1.5 acts as 1 and -0.5 acts as 0 (snnTorch clamps with beta.clamp(0, 1)).
    out = _single_neuron(LIF(np.array([1.5, -0.5]), threshold=10.0), [[1, 1]] * 3, shape=(2,))
    np.testing.assert_allclose(out["membrane"], [[1, 1], [2, 1], [3, 1]])


def test_graded_spikes_and_bias():
    graded = _single_neuron(LIF(0.5, graded_spikes_factor=2.0), INPUTS)
    np.testing.assert_array_equal(graded["value"], [2, 0, 0, 2, 0])
    biased = _single_neuron(LIF(0.5, bias=0.25), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(biased["membrane"], [0.25, 0.375, 0.4375])


@pytest.mark.parametrize(
    "delay,spikes,membrane",
    [
        (1, [1, 0, 0, 0], [1.5, 0.75, 0.375, 0.1875]),
        (2, [1, 1, 0, 0], [1.5, 1.25, -0.875, -0.9375]),
    ],
)
def test_recurrent_delay_edge(delay, spikes, membrane):
    # x -> lif, lif -> Scale(-0.5) -> lif with `delay`: the neuron inhibits itself `delay` steps later.
    builder = GraphBuilder(num_steps=4)
    x = builder.input("x", (1,), encoding="sequence")
    lif = builder.add("lif", LIF(0.5), builder.add("pass", Scale(1.0), x))
    builder.connect(builder.add("inhibit", Scale(-0.5), lif), lif, delay=delay)
    builder.output("spikes", lif)
    builder.output("membrane", lif, "membrane")
    data = np.array([1.5, 1.5, 0.0, 0.0], np.float32).reshape(4, 1, 1)
    result = snnir.compile(builder.build(), "reference").run(data)
    np.testing.assert_array_equal(result["spikes"].ravel(), spikes)
    np.testing.assert_allclose(result["membrane"].ravel(), membrane)
