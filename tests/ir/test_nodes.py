"""Node construction: normalisation, derived sizes, lazy parameters, and parameter errors."""

import numpy as np
import pytest

from snnir import (
    IF, LI, LIF, AvgPool2d, Conv1d, Conv2d, CubaLIF, Dropout, Flatten, Input, Linear, MaxPool2d, Node,
    NodeParameterError, Output, PerNeuron, Scale, Surrogate, SumPool2d, Threshold, Uniform,
)
from snnir.ir.init import Default


def test_registry_holds_every_primitive():
    expected = {"Input", "Output", "Linear", "Conv1d", "Conv2d", "MaxPool2d", "AvgPool2d", "SumPool2d",
                "Flatten", "Scale", "Dropout", "Threshold", "LIF", "CubaLIF", "IF", "LI"}
    assert expected <= set(Node.registry)
    assert Node.registry["LIF"] is LIF


def test_parameters_are_frozen_float32_copies():
    beta = np.array([0.5, 0.25])
    node = LIF(beta)
    assert node.beta.dtype == np.float32 and node.threshold.shape == ()
    beta[0] = 0.0
    assert node.beta[0] == np.float32(0.5)  # a private copy
    with pytest.raises(ValueError):
        node.beta[0] = 1.0  # read-only
    with pytest.raises(AttributeError):
        node.beta = 0.1  # frozen dataclass


def test_linear_sizes_and_bias_rules():
    lazy = Linear(10)
    assert isinstance(lazy.weight, Default) and isinstance(lazy.bias, Default)
    assert Linear(10, bias=False).bias is None
    explicit = Linear(weight=np.ones((3, 4)))
    assert (explicit.out_features, explicit.in_features) == (3, 4) and explicit.bias is None
    with_bias = Linear(weight=np.ones((3, 4)), bias=np.zeros(3))
    assert with_bias.bias.shape == (3,)
    with pytest.raises(NodeParameterError, match="out_features.*given 5.*implies 3"):
        Linear(5, weight=np.ones((3, 4)))
    with pytest.raises(NodeParameterError, match="Linear.bias: expected shape \\(3,\\)"):
        Linear(weight=np.ones((3, 4)), bias=np.zeros(4))
    with pytest.raises(NodeParameterError, match="give out_features or a weight"):
        Linear()


def test_conv_broadcasts_spatial_arguments_and_derives_sizes():
    conv = Conv2d(8, 5, stride=2)
    assert conv.kernel_size == (5, 5) and conv.stride == (2, 2) and conv.padding == (0, 0)
    concrete = Conv2d(weight=np.zeros((6, 2, 3, 1)), groups=2)
    assert concrete.in_channels == 4 and concrete.kernel_size == (3, 1) and concrete.out_channels == 6
    assert Conv2d(4, 3, padding="same").padding == (1, 1)
    assert Conv2d(4, 3, padding="same", dilation=2).padding == (2, 2)
    assert Conv1d(4, 3, padding="valid").padding == (0,)
    with pytest.raises(NodeParameterError, match="asymmetric"):
        Conv2d(4, 4, padding="same")
    with pytest.raises(NodeParameterError, match="stride 1"):
        Conv2d(4, 3, padding="same", stride=2)
    with pytest.raises(NodeParameterError, match="not divisible by groups"):
        Conv2d(5, 3, groups=2)
    with pytest.raises(NodeParameterError, match="kernel_size.*>= 1"):
        Conv2d(4, 0)
    with pytest.raises(NodeParameterError, match="expected 1 or 2 ints"):
        Conv2d(4, (3, 3, 3))


def test_pool_defaults_and_limits():
    pool = MaxPool2d(2)
    assert pool.stride == (2, 2) and pool.padding == (0, 0)
    assert AvgPool2d(3, stride=1, padding=1).padding == (1, 1)
    with pytest.raises(NodeParameterError, match="at most half the kernel"):
        SumPool2d(2, padding=2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LIF(float("nan")), r"LIF.beta: value nan at index \(\) is not finite"),
        (lambda: LIF(np.array([0.5, np.inf])), r"LIF.beta: value inf at index \(1,\)"),
        (lambda: LIF(0.9, threshold=[[1], [2, 3]]), "LIF.threshold: cannot read as an array"),
        (lambda: LIF("0.9"), "LIF.beta: expected a number or an array"),
        (lambda: LIF(0.9, reset="soft"), r"LIF.reset: expected one of \['subtract', 'zero', 'none'\]"),
        (lambda: LIF(0.9, reset_timing="now"), "LIF.reset_timing"),
        (lambda: LIF(0.9, graded_spikes_factor=0.0), "graded_spikes_factor: must be nonzero"),
        (lambda: LIF(0.9, surrogate="tanh"), "unknown surrogate 'tanh'"),
        (lambda: LIF(0.9, surrogate={"name": "atan", "slope": 3}), r"takes \['alpha'\]"),
        (lambda: LIF(0.9, learn_beta="yes"), "LIF.learn_beta: expected true or false"),
        (lambda: LIF(1e39), "exceed the float32 range"),
        (lambda: Dropout(1.0), "Dropout.p: must be < 1.0"),
        (lambda: Dropout(-0.1), "Dropout.p: must be >= 0.0"),
        (lambda: Input((3, 0)), "Input.shape: every dimension must be a positive int"),
        (lambda: Input((3,), encoding="rate"), "Input.encoding"),
        (lambda: Output(record="voltage"), "Output.record"),
        (lambda: Flatten(start_dim=1.5), "Flatten.start_dim: expected an integer"),
        (lambda: Scale(np.array([1, np.nan])), "Scale.factor"),
        (lambda: CubaLIF(0.5, float("nan")), "CubaLIF.beta"),
    ],
)
def test_bad_parameters_name_the_field(make, match):
    with pytest.raises(NodeParameterError, match=match):
        make()


def test_surrogates_fill_defaults_and_compare_equal():
    assert Surrogate.of("fast_sigmoid") == Surrogate("fast_sigmoid", (("slope", 25.0),))
    assert Surrogate.of({"name": "spike_rate_escape", "slope": 10}).params == (("beta", 1.0), ("slope", 10.0))
    assert LIF(0.9).surrogate == Surrogate("atan", (("alpha", 2.0),))


def test_lazy_parameters_materialise_with_shapes():
    rng = np.random.default_rng(0)
    lif = LIF(PerNeuron(0.9), threshold=Uniform(0.5, 1.5))
    assert lif.is_lazy and set(lif.lazy_fields()) == {"beta", "threshold"}
    concrete = lif.materialize((4, 2), rng)
    assert concrete.beta.shape == (4, 2) and np.all(concrete.beta == np.float32(0.9))
    assert concrete.threshold.shape == (4, 2) and 0.5 <= concrete.threshold.min() <= concrete.threshold.max() <= 1.5
    dense = Linear(7).materialize((100,), rng)
    assert dense.weight.shape == (7, 100) and dense.in_features == 100
    assert np.abs(dense.weight).max() <= 0.1 and np.abs(dense.bias).max() <= 0.1  # PyTorch bound 1/sqrt(fan_in)
    conv = Conv2d(4, 3, groups=2).materialize((6, 8, 8), rng)
    assert conv.weight.shape == (4, 3, 3, 3) and conv.in_channels == 6
    assert np.abs(conv.weight).max() <= 1 / np.sqrt(27)


def test_structural_equality_and_repr():
    a, b = LIF(np.array([0.5, 0.25])), LIF(np.array([0.5, 0.25]))
    assert a.equals(b) and not a.equals(LIF(np.array([0.5, 0.5]))) and not a.equals(IF())
    assert a != b  # identity: arrays have no truth value, structural equality is explicit
    assert repr(LIF(0.9, reset="zero")) == "LIF(beta=0.9 reset=zero)"
    assert repr(Linear(weight=np.ones((3, 4)))) == "Linear(weight=full([3, 4], 1))"


def test_misc_nodes_normalise():
    assert Threshold(0.5).threshold == np.float32(0.5)
    assert LI(0.8).bias is None
    assert IF().state_variables == ("membrane",)
    assert CubaLIF(0.5, 0.9).state_variables == ("current", "membrane")
    assert Output().recordable() == ("value",)
    assert LIF(0.9).recordable() == ("value", "spikes", "membrane")


def test_array_rows_and_the_largest_float32_are_values():
    """Rows given as numpy arrays are read like nested lists; float32's largest value, written as its
    shortest decimal (3.4028235e+38, above it in float64), reads back."""
    assert Linear(weight=[np.ones(3), np.zeros(3)]).weight.shape == (2, 3)
    largest = np.finfo(np.float32).max
    assert LIF(0.5, threshold=float(np.float32(largest).astype(str))).threshold == largest
    with pytest.raises(NodeParameterError, match="exceed the float32 range"):
        LIF(0.5, threshold=3.5e38)
