"""The hand-written reverse-time backward passes against autograd through a naive step loop (float64).

For every neuron kind, reset mode and timing, the scan (one custom autograd function over the whole
sequence) and a loop of ``step`` calls (ordinary autograd, snnTorch's graph) must produce the same
outputs and the same gradients for the drive, the initial state and every learnable parameter.
"""

import itertools

import numpy as np
import pytest

from snnir import LI, LIF, IF, CubaLIF

torch = pytest.importorskip("torch")
from snnir.backends.pytorch.rules import RULES  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")

STEPS, BATCH, SHAPE = 9, 3, (4,)


def _layer(node):
    return RULES.rule_for(node)(node, SHAPE, SHAPE).double()


def _run(layer, drive, state, use_scan):
    if use_scan:
        value, recorded, _ = layer.sequence(drive, state, STEPS)
        return value, recorded
    state = state if state is not None else layer.init_state(BATCH, drive)
    values, recorded = [], {name: [] for name in layer.state_variables}
    for t in range(STEPS):
        value, state = layer.step(drive[t] if drive.shape[0] > 1 else drive[0], state)
        values.append(value)
        for name in recorded:
            recorded[name].append(state[name])
    return torch.stack(values), {name: torch.stack(v) for name, v in recorded.items()}


def _gradients(node, *, steady=False, with_state=False, seed=0):
    generator = torch.Generator().manual_seed(seed)
    drive = torch.randn((1 if steady else STEPS, BATCH, *SHAPE), generator=generator, dtype=torch.float64) * 0.8 + 0.5
    upstream_value = torch.randn((STEPS, BATCH, *SHAPE), generator=generator, dtype=torch.float64)
    upstream_states = torch.randn((STEPS, BATCH, *SHAPE), generator=generator, dtype=torch.float64)
    initial = torch.rand((BATCH, *SHAPE), generator=generator, dtype=torch.float64)
    results = []
    for use_scan in (True, False):
        layer = _layer(node)
        x = drive.clone().requires_grad_()
        state = None
        if with_state:
            state = {name: (initial * (i + 1)).clone().requires_grad_() for i, name in enumerate(layer.state_variables)}
        value, recorded = _run(layer, x, state, use_scan)
        loss = (value * upstream_value).sum() + sum((v * upstream_states).sum() for v in recorded.values())
        leaves = [x] + ([] if state is None else list(state.values())) + [p for p in layer.parameters()]
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        results.append((value.detach(), {k: v.detach() for k, v in recorded.items()}, grads))
    (value_a, rec_a, grads_a), (value_b, rec_b, grads_b) = results
    assert torch.equal(value_a, value_b), "forward values differ between scan and step loop"
    for name in rec_a:
        assert torch.equal(rec_a[name], rec_b[name]), f"recorded {name} differs"
    assert value_a.abs().sum() > 0
    for index, (a, b) in enumerate(zip(grads_a, grads_b)):
        assert (a is None) == (b is None), f"gradient {index}: present in only one of the two"
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"gradient {index} differs")
    return value_a


RESETS = ("subtract", "zero", "none")
TIMINGS = ("next_step", "same_step")
SURROGATES = ("atan", "fast_sigmoid", "sigmoid", "triangular", "straight_through", "spike_rate_escape", "heaviside")


@pytest.mark.parametrize("reset,timing", list(itertools.product(RESETS, TIMINGS)))
def test_lif_backward_matches_autograd(reset, timing):
    beta = np.array([0.5, 0.9, 1.2, 0.75], np.float32)  # 1.2 is clamped: no gradient through the clamp
    node = LIF(beta, threshold=np.array([0.6, 1.0, 0.8, 1.1], np.float32), reset=reset, reset_timing=timing,
               learn_beta=True, learn_threshold=True, bias=np.float32(0.1), graded_spikes_factor=1.5)
    spikes = _gradients(node, with_state=True)
    assert spikes.max() == 1.5


@pytest.mark.parametrize("reset,timing", list(itertools.product(RESETS, TIMINGS)))
def test_cubalif_backward_matches_autograd(reset, timing):
    node = CubaLIF(np.array([0.3, 0.6, 0.9, 0.5], np.float32), np.float32(0.8), threshold=np.float32(0.9), reset=reset,
                   reset_timing=timing, learn_alpha=True, learn_beta=True, learn_threshold=True,
                   bias=np.array([0.0, 0.1, -0.1, 0.2], np.float32))
    _gradients(node, with_state=True)


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_every_surrogate_backward_matches_autograd(surrogate):
    _gradients(LIF(np.float32(0.85), surrogate=surrogate, learn_beta=True), seed=3)


def test_steady_drive_gradient_is_summed_over_time():
    _gradients(LIF(np.float32(0.9), learn_beta=True), steady=True, seed=4)
    _gradients(CubaLIF(np.float32(0.5), np.float32(0.9)), steady=True, seed=5)


def test_if_and_li_backward_match_autograd():
    _gradients(IF(threshold=np.float32(1.5), learn_threshold=True), with_state=True, seed=6)
    _gradients(LI(np.array([0.2, 0.5, 0.9, 1.0], np.float32), learn_beta=True, bias=np.float32(0.3)), with_state=True, seed=7)


def test_fixed_parameters_receive_no_gradient():
    layer = _layer(LIF(np.float32(0.9)))
    assert [name for name, _ in layer.named_parameters()] == []
    drive = torch.randn(STEPS, BATCH, *SHAPE, dtype=torch.float64, requires_grad=True)
    spikes, _, _ = layer.sequence(drive, None, STEPS)
    spikes.sum().backward()
    assert drive.grad is not None and drive.grad.abs().sum() > 0
