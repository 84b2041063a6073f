"""Every snnTorch module, option and pattern snnir cannot express raises a clear error naming it."""

import numpy as np
import pytest

import snnir
from snnir.errors import GraphError, UnsupportedNodeError

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from snntorch import surrogate, utils  # noqa: E402
from torch import nn  # noqa: E402

from snnir.frontends.snntorch import from_snntorch  # noqa: E402

N = 4

UNSUPPORTED = {
    "inhibition": (lambda: snn.Leaky(0.9, inhibition=True, init_hidden=True), "inhibition=True"),
    "state_quant": (lambda: snn.Leaky(0.9, state_quant=lambda mem: mem, init_hidden=True), "state_quant"),
    "rleaky_zero": (lambda: snn.RLeaky(0.9, linear_features=N, reset_mechanism="zero", init_hidden=True), r"RSynaptic\(alpha=0"),
    "learn_recurrent": (lambda: snn.RLeaky(0.9, linear_features=N, learn_recurrent=False, init_hidden=True), "learn_recurrent=False"),
    "rsynaptic_same_step": (lambda: snn.RSynaptic(0.5, 0.9, linear_features=N, reset_delay=False, init_hidden=True), "reset_delay=False"),
    "sparse_fast_sigmoid": (lambda: snn.Leaky(0.9, spike_grad=surrogate.SFS(), init_hidden=True), "SFS"),
    "custom_surrogate": (lambda: snn.Leaky(0.9, spike_grad=surrogate.custom_surrogate(lambda i, g, o: g), init_hidden=True), "custom_surrogate"),
    "surrogate_disable": (lambda: snn.Leaky(0.9, surrogate_disable=True, init_hidden=True), "surrogate_disable=True"),
    "learn_graded": (lambda: snn.Leaky(0.9, learn_graded_spikes_factor=True, init_hidden=True), "learn_graded_spikes_factor"),
    "per_neuron_graded": (lambda: snn.Leaky(0.9, graded_spikes_factor=torch.ones(N), init_hidden=True), "graded_spikes_factor"),
    "alpha_neuron": (lambda: snn.Alpha(0.9, 0.8, init_hidden=True), "Alpha"),
    "lapicque_neuron": (lambda: snn.Lapicque(beta=0.9, init_hidden=True), "Lapicque"),
    "relu": (lambda: nn.ReLU(), "ReLU"),
    "batchnorm": (lambda: nn.BatchNorm1d(N), r"BatchNorm1d has no snnir equivalent .*fold it into the Linear or Conv before it"),
}


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_module_or_option_is_named(name):
    make, expected = UNSUPPORTED[name]
    net = nn.Sequential(nn.Linear(3, N), make())
    with pytest.raises(UnsupportedNodeError, match=expected) as caught:
        from_snntorch(net, (3,), 5)
    assert "Sequential[1]" in str(caught.value)  # where


def test_a_neuron_layer_outside_spikingneuron_is_named_as_a_neuron_in_both_forms():
    """LeakyParallel is a plain nn.Module holding an RNN: it read as "a container", and in a time-loop model
    (it runs the whole sequence in one call) as a loop of the wrong length."""
    expected = r"snnTorch's LeakyParallel has no snnir equivalent; supported: snntorch.Leaky"
    with pytest.raises(UnsupportedNodeError, match=r"Sequential\[0\] \(LeakyParallel\): " + expected):
        from_snntorch(nn.Sequential(snn.LeakyParallel(3, N, beta=0.9)), (3,), 5, encoding="sequence")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.parallel = snn.LeakyParallel(input_size=3, hidden_size=N, beta=0.9)

        def forward(self, x):
            return self.parallel(x)

    with pytest.raises(UnsupportedNodeError, match=r"parallel \(LeakyParallel\) at .*: " + expected):
        from_snntorch(Net(), (3,), 5, encoding="sequence")


def test_changed_reset_mechanism_is_refused():
    neuron = snn.Leaky(0.9, init_hidden=True)
    neuron.reset_mechanism = "zero"  # snnTorch 1.0 keeps integrating with the subtract function
    with pytest.raises(UnsupportedNodeError, match="changed after construction"):
        from_snntorch(nn.Sequential(nn.Linear(3, N), neuron), (3,), 5)


def test_even_recurrent_kernel_is_refused():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), snn.RLeaky(0.9, conv2d_channels=2, kernel_size=2, init_hidden=True))
    with pytest.raises(UnsupportedNodeError, match="odd kernel_size"):
        from_snntorch(net, (1, 6, 6), 4)


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode"),
        (nn.MaxPool2d(2, dilation=2), "dilation"),
        (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
        (nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), "count_include_pad"),
        (nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"), "padding_mode"),
    ],
)
def test_unsupported_layer_options_are_named(layer, expected):
    with pytest.raises(UnsupportedNodeError, match=expected):
        from_snntorch(nn.Sequential(layer, snn.Leaky(0.9, init_hidden=True)), (2, 6, 6), 3)


def test_sequential_needs_hidden_states():
    with pytest.raises(GraphError, match="init_hidden=False"):
        from_snntorch(nn.Sequential(nn.Linear(3, N), snn.Leaky(0.9)), (3,), 5)


def test_output_on_an_inner_layer_is_refused():
    net = nn.Sequential(nn.Linear(3, N), snn.Leaky(0.9, init_hidden=True, output=True), nn.Linear(N, 2))
    with pytest.raises(GraphError, match="output=True"):
        from_snntorch(net, (3,), 5)


def test_float64_models_are_refused():
    net = nn.Sequential(nn.Linear(3, N), snn.Leaky(0.9, init_hidden=True)).double()
    with pytest.raises(UnsupportedNodeError, match="float64"):
        from_snntorch(net, (3,), 5)


def test_flattening_the_batch_is_refused():
    with pytest.raises(UnsupportedNodeError, match="batch"):
        from_snntorch(nn.Sequential(nn.Flatten(0), nn.Linear(6, N), snn.Leaky(0.9, init_hidden=True)), (2, 3), 3)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"encoding": "rate"}, GraphError), ({"input_shape": (0, 3)}, GraphError), ({"num_steps": 0}, GraphError)],
)
def test_bad_arguments_are_refused(kwargs, error):
    arguments = {"input_shape": (3,), "num_steps": 5, **kwargs}
    with pytest.raises(error):
        from_snntorch(nn.Sequential(nn.Linear(3, N), snn.Leaky(0.9, init_hidden=True)), **arguments)


def test_errors_share_the_snnir_root():
    assert issubclass(UnsupportedNodeError, snnir.SnnirError) and issubclass(GraphError, snnir.SnnirError)


def test_custom_containers_in_a_sequential_are_named():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, N)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(UnsupportedNodeError, match="Block is a container"):
        from_snntorch(nn.Sequential(Block(), snn.Leaky(0.9, init_hidden=True)), (3,), 5)


def test_a_forward_failing_on_the_probe_says_so():
    class FixedBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, N)
            self.lif = snn.Leaky(0.9)

        def forward(self, x):
            mem = self.lif.reset_mem()
            records = []
            for _ in range(5):
                spk, mem = self.lif(self.fc(x.view(128, -1)), mem)  # a hard-coded batch size
                records.append(spk)
            return torch.stack(records)

    with pytest.raises(GraphError, match=r"failed on a probe input of shape .* at test_snntorch_errors.py:\d+: check input_shape") as caught:
        from_snntorch(FixedBatch(), (3,), 5)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_forward_failing_inside_snntorch_says_so():
    """RSynaptic(reset_delay=False) stepped from the states of its own init_rsynaptic() fails inside snnTorch
    (snnTorch itself fails the same way): the probe's shape is not the thing to check."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.rs = snn.RSynaptic(alpha=0.6, beta=0.8, linear_features=8, reset_delay=False)

        def forward(self, x):
            spk, syn, mem = self.rs.init_rsynaptic()
            records = []
            for _ in range(3):
                spk, syn, mem = self.rs(self.fc(x), spk, syn, mem)
                records.append(spk)
            return torch.stack(records)

    with pytest.raises(GraphError, match=r"failed on a probe input .*; it failed inside snnTorch \(rsynaptic\.py:\d+\): "
                                         r"check the module's own arguments and states"):
        from_snntorch(Net(), (8,), 3)


def test_same_padding_with_an_even_kernel_names_the_module_and_what_to_do():
    net = nn.Sequential(nn.Conv2d(2, 4, 4, padding="same"), snn.Leaky(0.9, init_hidden=True))
    with pytest.raises(UnsupportedNodeError, match=r"Sequential\[0\] \(Conv2d\): padding='same'.*use an odd kernel_size"):
        from_snntorch(net, (2, 9, 9), 3)


@pytest.mark.parametrize(
    "conv",
    [
        lambda: nn.Conv2d(2, 4, 3, padding="same"),
        lambda: nn.Conv2d(2, 4, 4, padding="same", dilation=2),  # d·(k − 1) even: symmetric
        lambda: nn.Conv2d(2, 4, 3, padding=0, padding_mode="replicate"),  # no padding: the mode changes nothing
        lambda: nn.Conv2d(2, 4, 3, padding="valid", padding_mode="reflect"),
    ],
)
def test_convolutions_that_pad_symmetrically_with_zeros_convert(conv):
    torch.manual_seed(0)
    net = nn.Sequential(conv(), snn.Leaky(0.9, init_hidden=True, output=True))
    graph = from_snntorch(net, (2, 9, 9), 3)
    x = torch.rand(2, 2, 9, 9, generator=torch.Generator().manual_seed(1)) * 2
    utils.reset(net)
    with torch.no_grad():
        expected = torch.stack([net(x)[1] for _ in range(3)]).numpy()  # snnTorch's membranes
    found = snnir.compile(graph, "reference").run(x.numpy())["membrane"]
    np.testing.assert_allclose(found, expected, atol=1e-5, rtol=0)


def test_an_input_shape_with_the_batch_axis_gets_a_note():
    net = nn.Sequential(nn.Linear(10, N), snn.Leaky(0.9, init_hidden=True, output=True))
    with pytest.raises(snnir.errors.ShapeError, match=r"Sequential\[0\] \(Linear\): Linear expects a flat input") as error:
        from_snntorch(net, (3, 10), 5)
    assert error.value.__notes__ == ["input_shape=(3, 10) is the shape of one sample, without the batch axis"]
