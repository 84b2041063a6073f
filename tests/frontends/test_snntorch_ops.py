"""Torch operations between modules in a traced time loop: functional pooling, constants made in forward,
subtraction, division, negation, ``.detach()``, and readable names for what has no snnir equivalent.

Golden values are the snnTorch module's own forward on the same input.
"""

import warnings

import numpy as np
import pytest

import snnir
from snnir import AvgPool2d, MaxPool2d, Scale, SumPool2d
from snnir.errors import SemanticsWarning, UnsupportedNodeError

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from snnir.frontends.snntorch import from_snntorch, to_snntorch  # noqa: E402

STEPS, BATCH = 8, 3


def _rand(*shape, seed=0, scale=2.0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * scale


class ConvLoop(nn.Module):
    """snnTorch tutorial 6's CNN forward: ``lif(F.max_pool2d(conv(x), 2), mem)`` with ``step`` replaced."""

    def __init__(self, between):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.lif1 = snn.Leaky(beta=0.5)
        self.between = between

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        spk_rec, mem_rec = [], []
        for _ in range(STEPS):
            spk1, mem1 = self.lif1(self.between(self.conv1(x)).flatten(1), mem1)
            spk_rec.append(spk1)
            mem_rec.append(mem1)
        return torch.stack(spk_rec), torch.stack(mem_rec)


class DenseLoop(nn.Module):
    """``lif(between(fc(x)), mem)`` over STEPS steps."""

    def __init__(self, between):
        super().__init__()
        torch.manual_seed(1)
        self.fc = nn.Linear(10, 4)
        self.lif = snn.Leaky(beta=0.8)
        self.between = between

    def forward(self, x):
        mem = self.lif.reset_mem()
        rec = []
        for _ in range(STEPS):
            spk, mem = self.lif(self.between(self.fc(x)), mem)
            rec.append(mem)
        return torch.stack(rec)


def _same_as_snntorch(net, graph, x):
    """The graph on the reference backend, and its to_snntorch module, against the module's own forward."""
    with torch.no_grad():
        expected = net(x)
        back = to_snntorch(graph)(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    back = back if isinstance(back, tuple) else (back,)
    result = snnir.compile(graph, "reference").run(x.numpy())
    for found, golden, output in zip(back, expected, result):
        assert torch.equal(found, golden)  # the same torch operations: bit for bit
        np.testing.assert_allclose(result[output], golden.numpy(), atol=1e-5, rtol=0)


# -- functional pooling --------------------------------------------------------------------------------
POOLS = {
    "max": (lambda v: F.max_pool2d(v, 2), MaxPool2d, {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0)}),
    "max_strided": (lambda v: F.max_pool2d(v, 3, stride=1, padding=1), MaxPool2d, {"kernel_size": (3, 3), "stride": (1, 1), "padding": (1, 1)}),
    "avg": (lambda v: F.avg_pool2d(v, 2), AvgPool2d, {"kernel_size": (2, 2), "stride": (2, 2)}),
    "avg_padded": (lambda v: F.avg_pool2d(v, 3, 2, 1), AvgPool2d, {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)}),
    "sum": (lambda v: F.avg_pool2d(v, 2, divisor_override=1), SumPool2d, {"kernel_size": (2, 2)}),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_functional_pooling_converts(name):
    between, kind, fields = POOLS[name]
    net = ConvLoop(between)
    graph = from_snntorch(net, (1, 9, 9), STEPS)
    node = graph.nodes["pool1"]
    assert type(node) is kind
    assert all(getattr(node, key) == value for key, value in fields.items())
    _same_as_snntorch(net, graph, _rand(BATCH, 1, 9, 9, seed=3))


@pytest.mark.parametrize(
    ("between", "expected"),
    [
        (lambda v: F.max_pool2d(v, 2, ceil_mode=True), "ceil_mode"),
        (lambda v: F.max_pool2d(v, 2, dilation=2), "dilation"),
        (lambda v: F.avg_pool2d(v, 3, 1, 1, count_include_pad=False), "count_include_pad"),
        (lambda v: F.avg_pool2d(v, 2, divisor_override=3), "divisor_override"),
    ],
)
def test_functional_pooling_options_snnir_lacks_are_named(between, expected):
    with pytest.raises(UnsupportedNodeError, match=f"torch.nn.functional.\\w+_pool2d at test_snntorch_ops.py:\\d+: {expected}"):
        from_snntorch(ConvLoop(between), (1, 9, 9), STEPS)


@pytest.mark.parametrize(
    ("between", "name"),
    [
        (lambda v: F.max_pool1d(v.flatten(2), 2), "torch.nn.functional.max_pool1d"),
        (F.relu, "torch.nn.functional.relu"),
        (lambda v: v.unsqueeze(1).squeeze(1), "Tensor.unsqueeze"),
        (lambda v: 0.5 - v, "Tensor.__rsub__"),
    ],
)
def test_unsupported_functions_have_readable_names(between, name):
    with pytest.raises(UnsupportedNodeError, match=f"^{name} at test_snntorch_ops.py:"):
        from_snntorch(ConvLoop(between), (1, 9, 9), STEPS)


# -- arithmetic with constants ---------------------------------------------------------------------------
ARITHMETIC = {
    "tensor_constant": lambda v: v + torch.tensor(0.3),
    "linspace_constant": lambda v: v + torch.linspace(0, 0.5, 4),
    "minus_number": lambda v: v - 0.3,
    "minus_tensor": lambda v: v - torch.full((4,), 0.7),
    "divided_by_power_of_two": lambda v: v / 4,
    "divided_per_element": lambda v: v / torch.tensor([2.0, 0.5, -4.0, 1.0]),
    "negated": lambda v: -v,
    "negated_in_place": lambda v: v.clone().neg_(),
    "constant_moved_to_the_device": lambda v: v + torch.tensor(0.3).to(v.device).float(),
}


@pytest.mark.parametrize("name", list(ARITHMETIC))
def test_arithmetic_with_constants_is_exact(name):
    net = DenseLoop(ARITHMETIC[name])
    graph = from_snntorch(net, (10,), STEPS)
    _same_as_snntorch(net, graph, _rand(BATCH, 10, seed=4))


def test_constants_become_biases_and_scales():
    lif = from_snntorch(DenseLoop(ARITHMETIC["tensor_constant"]), (10,), STEPS).nodes["lif"]
    assert lif.bias == np.float32(0.3)
    lif = from_snntorch(DenseLoop(ARITHMETIC["minus_number"]), (10,), STEPS).nodes["lif"]
    assert lif.bias == -np.float32(0.3)
    graph = from_snntorch(DenseLoop(ARITHMETIC["divided_per_element"]), (10,), STEPS)
    np.testing.assert_array_equal(graph.nodes["scale1"].factor, np.float32([0.5, 2.0, -0.25, 1.0]))
    assert isinstance(from_snntorch(DenseLoop(ARITHMETIC["negated"]), (10,), STEPS).nodes["scale1"], Scale)


def test_division_that_rounds_differently_is_refused_with_the_rewrite():
    with pytest.raises(UnsupportedNodeError, match=r"Tensor.div at test_snntorch_ops.py:\d+: divides by 3.0.*x \* \(1/c\)"):
        from_snntorch(DenseLoop(lambda v: v / 3), (10,), STEPS)


def test_subtracting_a_signal_suggests_the_exact_rewrite():
    with pytest.raises(UnsupportedNodeError, match=r"a \+ b \* -1.0"):
        from_snntorch(DenseLoop(lambda v: v - v * 0.5), (10,), STEPS)


def test_random_tensors_made_in_forward_are_not_frozen_into_constants():
    class Noisy(DenseLoop):
        def forward(self, x):
            noise = torch.rand(4)  # a new draw each forward: no snnir constant computes that
            self.between = lambda v: v + noise
            return super().forward(x)

    with pytest.raises(UnsupportedNodeError, match="^torch.rand at test_snntorch_ops.py:"):
        from_snntorch(Noisy(None), (10,), STEPS)


@pytest.mark.parametrize("between", [lambda v: v + torch.tensor(0.3) * 2, lambda v: v + (torch.tensor(0.3) + 1.0)])
def test_constants_computed_in_forward_are_refused_with_what_a_constant_may_be(between):
    with pytest.raises(UnsupportedNodeError, match="computes a constant in forward.*a module buffer or parameter"):
        from_snntorch(DenseLoop(between), (10,), STEPS)


# -- .detach() ------------------------------------------------------------------------------------------
class Detached(nn.Module):
    """A stop-gradient between two layers (and, with ``twice``, on the input as well)."""

    def __init__(self, twice=False):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.lif1 = nn.Linear(10, 8), snn.Leaky(beta=0.8)
        self.fc2, self.lif2 = nn.Linear(8, 3), snn.Leaky(beta=0.8)
        self.twice = twice

    def forward(self, x):
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        rec = []
        for _ in range(STEPS):
            spk1, mem1 = self.lif1(self.fc1(x.detach() if self.twice else x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1.detach()), mem2)
            rec.append(mem2)
        return torch.stack(rec)


def test_detach_warns_once_per_site_naming_it():
    with pytest.warns(SemanticsWarning) as caught:
        graph = from_snntorch(Detached(), (10,), STEPS)
    messages = [str(w.message) for w in caught if issubclass(w.category, SemanticsWarning)]
    assert len(messages) == 1  # once, not once per step
    assert "Tensor.detach at test_snntorch_ops.py:" in messages[0] and "on lif1 (Leaky)" in messages[0]
    assert "carries gradients through it" in messages[0]
    _same_as_snntorch(Detached(), graph, _rand(BATCH, 10, seed=5))  # inference is unchanged


def test_each_detach_site_warns():
    with pytest.warns(SemanticsWarning) as caught:
        from_snntorch(Detached(twice=True), (10,), STEPS)
    assert len([w for w in caught if issubclass(w.category, SemanticsWarning)]) == 2


def test_detach_gradient_differs_as_warned():
    """snnTorch's fc1 gets no gradient through the detach; the graph's (torch backend) does."""
    net, x = Detached(), _rand(4, 10, seed=6, scale=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SemanticsWarning)
        graph = from_snntorch(net, (10,), STEPS)
    net(x).sum().backward()
    assert net.fc1.weight.grad is None or not net.fc1.weight.grad.any()
    model = snnir.compile(graph, "torch")
    model.train()
    out = model(x)
    out[list(out)[0]].sum().backward()
    assert dict(model.named_parameters())["layers.fc1.weight"].grad.abs().sum() > 0


def test_a_value_read_into_python_warns_that_it_is_frozen():
    """``v * v.mean().item()``: the trace sees one number, which the graph keeps as a constant."""
    with pytest.warns(SemanticsWarning, match=r"Tensor.item at .* reads a value of the data into Python") as caught:
        from_snntorch(DenseLoop(lambda v: v * v.mean().item()), (10,), STEPS)
    assert sum("reads a value" in str(w.message) for w in caught) == 1  # once per site, not per step
