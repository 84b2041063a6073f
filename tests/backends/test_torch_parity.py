"""Parity with real snnTorch 1.0: the same weights give the same spikes, losses and gradients.

Each network is built twice, in snnTorch and by hand in snnir with snnTorch's initial weights, and
trained side by side. At every optimizer step the spike records must be identical, the losses within
1e-6 and every gradient within 1e-5 of snnTorch's (relative to the largest entry of that gradient).
The gradient comparison runs in lockstep (snnir takes snnTorch's parameters before each step), so it
measures the backward pass, not the divergence Adam amplifies from last-bit differences; a second
check lets both sides run their own Adam and requires the spikes to stay identical.
"""

import numpy as np
import pytest

import snnir
from snnir import IF, LIF, Conv2d, CubaLIF, Flatten, GraphBuilder, Linear, MaxPool2d

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from snntorch import functional as SF  # noqa: E402
from snntorch import surrogate  # noqa: E402

from snnir.backends.pytorch import ce_rate_loss, mse_count_loss  # noqa: E402


def _array(tensor):
    return tensor.detach().numpy().copy()


def _dense(module):
    return Linear(weight=_array(module.weight), bias=_array(module.bias))


def _compare_grads(theirs, ours, step):
    for name, mine in ours.items():
        reference = theirs[name].grad
        scale = float(reference.abs().max())
        assert mine.grad is not None, f"step {step}: no gradient for {name}"
        error = float((mine.grad - reference).abs().max()) / (scale or 1.0)
        assert error <= 1e-5, f"step {step}: gradient of {name} differs by {error:.2e} (relative to its maximum)"


def _train_side_by_side(snn_forward, theirs, model, inputs, targets, their_loss, our_loss, steps=4, record="spikes"):
    """Lockstep training: compare spikes, loss and gradients at every step (see the module docstring)."""
    optimizer = torch.optim.Adam(list(theirs.values()), lr=2e-3)
    ours = dict(model.named_parameters())
    for step in range(steps):
        with torch.no_grad():
            for name, parameter in ours.items():
                parameter.copy_(theirs[name])
        optimizer.zero_grad()
        expected = snn_forward()
        loss_theirs = their_loss(expected, targets)
        loss_theirs.backward()
        model.zero_grad()
        found = model(inputs)[record]
        loss_ours = our_loss(found, targets)
        loss_ours.backward()
        assert torch.equal(found, expected.to(found.dtype)), f"step {step}: spike records differ"
        difference = abs(float(loss_ours.detach()) - float(loss_theirs.detach()))
        assert difference <= 1e-6, f"step {step}: losses differ by {difference}"
        _compare_grads(theirs, ours, step)
        optimizer.step()
    return found


# -- the seed CNN ---------------------------------------------------------------------------------------
def _seed_cnn(steps):
    torch.manual_seed(1)
    conv1, conv2, fc = torch.nn.Conv2d(1, 8, 5), torch.nn.Conv2d(8, 16, 5), torch.nn.Linear(256, 10)
    grad = surrogate.fast_sigmoid()
    leaky = [snn.Leaky(beta=0.9, spike_grad=grad) for _ in range(3)]
    builder = GraphBuilder("quickstart_cnn", num_steps=steps)
    x = builder.input("x", (1, 28, 28))
    last = builder.chain(
        x,
        ("conv1", Conv2d(weight=_array(conv1.weight), bias=_array(conv1.bias))),
        ("pool1", MaxPool2d(2)),
        ("lif1", LIF(0.9, surrogate="fast_sigmoid")),
        ("conv2", Conv2d(weight=_array(conv2.weight), bias=_array(conv2.bias))),
        ("pool2", MaxPool2d(2)),
        ("lif2", LIF(0.9, surrogate="fast_sigmoid")),
        ("flatten", Flatten()),
        ("fc1", _dense(fc)),
        ("lif3", LIF(0.9, surrogate="fast_sigmoid")),
    )
    builder.output("spikes", last)
    theirs = {"layers.conv1.weight": conv1.weight, "layers.conv1.bias": conv1.bias, "layers.conv2.weight": conv2.weight,
              "layers.conv2.bias": conv2.bias, "layers.fc1.weight": fc.weight, "layers.fc1.bias": fc.bias}

    def forward(images):
        mems = [layer.reset_mem() for layer in leaky]
        record = []
        for _ in range(steps):
            s1, mems[0] = leaky[0](torch.nn.functional.max_pool2d(conv1(images), 2), mems[0])
            s2, mems[1] = leaky[1](torch.nn.functional.max_pool2d(conv2(s1), 2), mems[1])
            s3, mems[2] = leaky[2](fc(s2.flatten(1)), mems[2])
            record.append(s3)
        return torch.stack(record)

    return builder.build(), theirs, forward


# Time chunks (chunk_steps) must not matter: on the CPU larger batches run a few steps at a time.
CHUNKS = [None, 4]


@pytest.mark.parametrize("chunk_steps", CHUNKS)
def test_seed_cnn_matches_snntorch(chunk_steps):
    graph, theirs, forward = _seed_cnn(25)
    model = snnir.compile(graph, "torch", chunk_steps=chunk_steps)
    images, targets = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(2)), torch.arange(12) % 10
    spikes = _train_side_by_side(lambda: forward(images), theirs, model, images, targets,
                                 SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2), mse_count_loss(0.8, 0.2))
    assert spikes.sum() > 0  # the comparison saw activity
    assert SF.accuracy_rate(spikes, targets) == snnir.backends.pytorch.accuracy_rate(spikes, targets)


def test_seed_cnn_independent_optimizers_stay_identical():
    graph, theirs, forward = _seed_cnn(25)
    model = snnir.compile(graph, "torch")
    images, targets = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(3)), torch.arange(8)
    mine, reference = torch.optim.Adam(model.parameters(), lr=2e-3), torch.optim.Adam(list(theirs.values()), lr=2e-3)
    loss_ours, loss_theirs = mse_count_loss(0.8, 0.2), SF.mse_count_loss(0.8, 0.2)
    for step in range(4):
        reference.zero_grad()
        expected = forward(images)
        loss_theirs(expected, targets).backward()
        reference.step()
        mine.zero_grad()
        found = model(images)["spikes"]
        loss_ours(found, targets).backward()
        mine.step()
        assert torch.equal(found.detach(), expected.detach()), f"step {step}: spikes differ"
    drift = max(float((p.detach() - theirs[n].detach()).abs().max()) for n, p in model.named_parameters())
    assert drift < 1e-5, f"parameters drifted by {drift}"


# -- the seed FC net with learnable per-neuron beta --------------------------------------------------------
@pytest.mark.parametrize("chunk_steps", CHUNKS)
def test_seed_fc_with_learnable_beta_matches_snntorch(chunk_steps):
    steps = 25
    torch.manual_seed(4)
    fc1, fc2 = torch.nn.Linear(784, 300), torch.nn.Linear(300, 10)
    lif1, lif2 = snn.Leaky(beta=0.9), snn.Leaky(beta=torch.rand(10), learn_beta=True)
    builder = GraphBuilder("quickstart_fc", num_steps=steps)
    x = builder.input("x", (784,))
    last = builder.chain(x, ("fc1", _dense(fc1)), ("lif1", LIF(0.9)), ("fc2", _dense(fc2)),
                         ("lif2", LIF(_array(lif2.beta), learn_beta=True)))
    builder.output("spikes", last)
    builder.output("membrane", last, "membrane")
    model = snnir.compile(builder.build(), "torch", chunk_steps=chunk_steps)
    theirs = {"layers.fc1.weight": fc1.weight, "layers.fc1.bias": fc1.bias, "layers.fc2.weight": fc2.weight,
              "layers.fc2.bias": fc2.bias, "layers.lif2.beta": lif2.beta}

    def forward(images):
        m1, m2, record = lif1.reset_mem(), lif2.reset_mem(), []
        for _ in range(steps):
            s1, m1 = lif1(fc1(images), m1)
            s2, m2 = lif2(fc2(s1), m2)
            record.append(s2)
        return torch.stack(record)

    images = torch.rand(16, 784, generator=torch.Generator().manual_seed(5))
    targets = torch.arange(16) % 10
    spikes = _train_side_by_side(lambda: forward(images), theirs, model, images, targets,
                                 SF.mse_count_loss(0.8, 0.2), mse_count_loss(0.8, 0.2))
    assert spikes.sum() > 0


# -- spike-train input through wide layers: the default event-driven sums against snnTorch's GEMMs -----------
@pytest.mark.parametrize("chunk_steps", CHUNKS)
@pytest.mark.parametrize("inputs_width, hidden", [(200, 256), (784, 512)])
def test_spike_input_through_wide_layers_matches_snntorch(chunk_steps, inputs_width, hidden):
    """Linears fed by spikes sum the weights of the input events by default (where that reproduces the
    GEMM bit for bit): the spikes must still be snnTorch's, hidden layer included. The widths take the
    GEMM's two block layouts (halves below 384 inputs, blocks of 192 above, on AVX-512 machines)."""
    steps = 20
    torch.manual_seed(14)
    fc1, fc2, fc3 = torch.nn.Linear(inputs_width, hidden), torch.nn.Linear(hidden, hidden), torch.nn.Linear(hidden, 10)
    lif1, lif2, lif3 = snn.Leaky(beta=0.9), snn.Leaky(beta=0.85), snn.Leaky(beta=0.9)
    with torch.no_grad():  # livelier than the default initialisation: every layer spikes
        for layer, gain in ((fc1, 2.0), (fc2, 3.0), (fc3, 4.0)):
            layer.weight.mul_(gain)
    builder = GraphBuilder("spike_fc", num_steps=steps)
    last = builder.chain(builder.input("x", (inputs_width,), encoding="sequence"), ("fc1", _dense(fc1)), ("lif1", LIF(0.9)),
                         ("fc2", _dense(fc2)), ("lif2", LIF(0.85)), ("fc3", _dense(fc3)), ("lif3", LIF(0.9)))
    builder.output("spikes", last)
    model = snnir.compile(builder.build(), "torch", chunk_steps=chunk_steps)
    theirs = {f"layers.{name}.{kind}": getattr(layer, kind) for name, layer in (("fc1", fc1), ("fc2", fc2), ("fc3", fc3))
              for kind in ("weight", "bias")}
    inputs = (torch.rand(steps, 12, inputs_width, generator=torch.Generator().manual_seed(15)) < 0.1).float()
    hidden = []

    def forward():
        m1, m2, m3, record = lif1.reset_mem(), lif2.reset_mem(), lif3.reset_mem(), []
        hidden.clear()
        for t in range(steps):
            s1, m1 = lif1(fc1(inputs[t]), m1)
            s2, m2 = lif2(fc2(s1), m2)
            s3, m3 = lif3(fc3(s2), m3)
            record.append(s3)
            hidden.append(s1)
        return torch.stack(record)

    targets = torch.arange(12) % 10
    spikes = _train_side_by_side(forward, theirs, model, inputs, targets, SF.mse_count_loss(0.8, 0.2), mse_count_loss(0.8, 0.2))
    density = float(torch.stack(hidden).detach().mean())
    assert spikes.sum() > 0 and 0.02 < density < 0.25, density  # fc2 sees sparse spikes: the event path


# -- Synaptic (CubaLIF) with learnable alpha, beta and threshold ----------------------------------------------
@pytest.mark.parametrize("chunk_steps", CHUNKS)
def test_synaptic_network_matches_snntorch(chunk_steps):
    steps = 30
    torch.manual_seed(6)
    fc1, fc2 = torch.nn.Linear(20, 16), torch.nn.Linear(16, 5)
    alpha, beta = torch.rand(16) * 0.5 + 0.4, torch.rand(16) * 0.3 + 0.6
    syn1 = snn.Synaptic(alpha=alpha, beta=beta, learn_alpha=True, learn_beta=True, learn_threshold=True)
    syn2 = snn.Synaptic(alpha=0.8, beta=0.9, reset_mechanism="zero", spike_grad=surrogate.spike_rate_escape())
    builder = GraphBuilder("synaptic", num_steps=steps)
    x = builder.input("x", (20,), encoding="sequence")
    last = builder.chain(
        x, ("fc1", _dense(fc1)),
        ("syn1", CubaLIF(_array(alpha), _array(beta), learn_alpha=True, learn_beta=True, learn_threshold=True)),
        ("fc2", _dense(fc2)), ("syn2", CubaLIF(0.8, 0.9, reset="zero", surrogate="spike_rate_escape")),
    )
    builder.output("spikes", last)
    model = snnir.compile(builder.build(), "torch", chunk_steps=chunk_steps)
    theirs = {"layers.fc1.weight": fc1.weight, "layers.fc1.bias": fc1.bias, "layers.fc2.weight": fc2.weight,
              "layers.fc2.bias": fc2.bias, "layers.syn1.alpha": syn1.alpha, "layers.syn1.beta": syn1.beta,
              "layers.syn1.threshold": syn1.threshold}
    inputs = (torch.rand(steps, 10, 20, generator=torch.Generator().manual_seed(7)) < 0.4).float()

    def forward():
        (j1, u1), (j2, u2), record = syn1.reset_mem(), syn2.reset_mem(), []
        for t in range(steps):
            s1, j1, u1 = syn1(fc1(inputs[t]), j1, u1)
            s2, j2, u2 = syn2(fc2(s1), j2, u2)
            record.append(s2)
        return torch.stack(record)

    targets = torch.arange(10) % 5
    spikes = _train_side_by_side(forward, theirs, model, inputs, targets, SF.ce_rate_loss(), ce_rate_loss())
    assert spikes.sum() > 0


# -- RLeaky: a recurrent LIF layer through a delayed Linear ---------------------------------------------------
def _rleaky(steps):
    torch.manual_seed(8)
    fc1, fc2 = torch.nn.Linear(12, 10), torch.nn.Linear(10, 4)
    rleaky = snn.RLeaky(beta=0.85, linear_features=10)
    lif2 = snn.Leaky(beta=0.9)
    builder = GraphBuilder("rleaky", num_steps=steps)
    x = builder.input("x", (12,), encoding="sequence")
    lif = builder.add("lif1", LIF(0.85), builder.add("fc1", _dense(fc1), x))
    # snnTorch applies the recurrent Linear to the previous spikes (zeros at t = 0, so its bias acts from
    # the first step): the delay sits on the spikes, before the synapse.
    builder.add("rec", _dense(rleaky.recurrent))
    builder.connect(lif, "rec", delay=1)
    builder.connect("rec", lif)
    out = builder.add("lif2", LIF(0.9), builder.add("fc2", _dense(fc2), lif))
    builder.output("spikes", out)
    builder.output("membrane1", lif, "membrane")
    theirs = {"layers.fc1.weight": fc1.weight, "layers.fc1.bias": fc1.bias, "layers.fc2.weight": fc2.weight,
              "layers.fc2.bias": fc2.bias, "layers.rec.weight": rleaky.recurrent.weight, "layers.rec.bias": rleaky.recurrent.bias}

    def forward(inputs, membranes=None):
        s1, m1 = rleaky.reset_mem()
        m2, record = lif2.reset_mem(), []
        for t in range(steps):
            s1, m1 = rleaky(fc1(inputs[t]), s1, m1)
            s2, m2 = lif2(fc2(s1), m2)
            record.append(s2)
            if membranes is not None:
                membranes.append(m1.detach())
        return torch.stack(record)

    return builder.build(), theirs, forward


@pytest.mark.parametrize("chunk_steps", CHUNKS)
def test_rleaky_network_matches_snntorch(chunk_steps):
    steps = 20
    graph, theirs, forward = _rleaky(steps)
    model = snnir.compile(graph, "torch", chunk_steps=chunk_steps)
    inputs = (torch.rand(steps, 8, 12, generator=torch.Generator().manual_seed(9)) < 0.5).float()
    targets = torch.arange(8) % 4
    spikes = _train_side_by_side(lambda: forward(inputs), theirs, model, inputs, targets,
                                 SF.mse_count_loss(0.8, 0.2), mse_count_loss(0.8, 0.2))
    assert spikes.sum() > 0
    # Membranes: snnTorch adds (β·U + I) + rec, snnir β·U + (I + rec) (fan-in first, docs/semantics.md).
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(theirs[name])
    membranes = []
    forward(inputs, membranes)
    ours = model(inputs)["membrane1"].detach()
    np.testing.assert_allclose(ours.numpy(), torch.stack(membranes).numpy(), rtol=1e-6, atol=1e-6)  # a few ulp


def test_if_is_leaky_with_unit_beta():
    torch.manual_seed(10)
    fc = torch.nn.Linear(6, 5)
    leaky = snn.Leaky(beta=1.0, threshold=0.5)
    builder = GraphBuilder(num_steps=15)
    builder.output("spikes", builder.add("n", IF(threshold=0.5), builder.add("fc", _dense(fc), builder.input("x", (6,), "sequence"))))
    model = snnir.compile(builder.build(), "torch")
    inputs = torch.rand(15, 4, 6, generator=torch.Generator().manual_seed(11))
    mem, record = leaky.reset_mem(), []
    for t in range(15):
        spk, mem = leaky(fc(inputs[t]), mem)
        record.append(spk)
    assert torch.equal(model(inputs)["spikes"], torch.stack(record))


def test_one_to_one_rleaky_trains_its_recurrent_factor_like_snntorch():
    """RLeaky(all_to_all=False): snnTorch trains ``V`` (learn_recurrent=True by default); the imported
    Scale carries ``learn_factor`` and the torch backend trains it with the same gradient."""
    from snntorch import utils

    from snnir.frontends.snntorch import from_snntorch

    steps = 16
    torch.manual_seed(4)
    net = torch.nn.Sequential(
        torch.nn.Linear(12, 10),
        snn.RLeaky(beta=0.85, all_to_all=False, V=torch.rand(10, generator=torch.Generator().manual_seed(2)), init_hidden=True),
        torch.nn.Linear(10, 4),
        snn.Leaky(beta=0.9, init_hidden=True, output=True),
    )
    graph = from_snntorch(net, (12,), steps, encoding="sequence")
    assert graph.nodes["lif1_rec"].learn_factor
    model = snnir.compile(graph, "torch")
    theirs = {"layers.fc1.weight": net[0].weight, "layers.fc1.bias": net[0].bias, "layers.lif1_rec.factor": net[1].V,
              "layers.fc2.weight": net[2].weight, "layers.fc2.bias": net[2].bias}
    assert set(dict(model.named_parameters())) == set(theirs)
    inputs = (torch.rand(steps, 8, 12, generator=torch.Generator().manual_seed(9)) < 0.5).float()

    def forward():
        utils.reset(net)
        return torch.stack([net(inputs[t])[0] for t in range(steps)])

    spikes = _train_side_by_side(forward, theirs, model, inputs, torch.arange(8) % 4,
                                 SF.mse_count_loss(0.8, 0.2), mse_count_loss(0.8, 0.2))
    assert spikes.sum() > 0 and float(net[1].V.grad.abs().sum()) > 0
    trained = model.to_graph().nodes["lif1_rec"].factor
    np.testing.assert_array_equal(trained, _array(model.layer("lif1_rec").factor))


def test_a_frozen_one_to_one_factor_stays_frozen_both_ways():
    from snnir.frontends.snntorch import from_snntorch, to_snntorch

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), snn.RLeaky(beta=0.8, all_to_all=False, V=0.3, learn_recurrent=False,
                                                                init_hidden=True, output=True))
    graph = from_snntorch(net, (3,), 5)
    assert not graph.nodes["lif1_rec"].learn_factor
    assert "layers.lif1_rec.factor" not in dict(snnir.compile(graph, "torch").named_parameters())
    back = to_snntorch(graph)[1]
    assert not back.V.requires_grad and to_snntorch(graph.with_nodes({"lif1_rec": graph.nodes["lif1_rec"].replace(learn_factor=True)}))[1].V.requires_grad
