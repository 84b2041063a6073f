"""The GEMM's summation order on 0/1 inputs, as calibrated by :mod:`snnir.backends.pytorch.gemm_order`."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from snnir.backends.pytorch import gemm_order  # noqa: E402
from snnir.backends.pytorch.gemm_order import block_starts, blocked_sums, uniform  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _case(rows, width_in, width_out, seed, density=0.1, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(rows, width_in, generator=generator) < density).to(dtype)
    weight = torch.randn(width_out, width_in, generator=generator, dtype=dtype)
    bias = torch.randn(width_out, generator=generator, dtype=dtype)
    return x, weight, bias


def _blocked(x, weight, bias, starts):
    samples, inputs = x.nonzero().unbind(1)
    table = weight.t().contiguous()
    shape = (x.shape[0], x.shape[1], weight.shape[0])
    return blocked_sums(samples, inputs, shape, starts, lambda lo, hi: table[:, lo:hi].contiguous(), bias, 64)


@pytest.mark.parametrize("starts", [uniform(11, 3), (0, 3, 6), (0, 2, 7), (0,)])
def test_blocked_sums_follow_the_formula(starts):
    """y = ((b + s1) + s2) + ..., each block summed from zero in input order, in float32 steps."""
    x, weight, bias = _case(5, 11, 70, seed=1, density=0.5)
    found = _blocked(x, weight, bias, starts)
    w, b = weight.numpy(), bias.numpy()
    bounds = list(starts) + [11]
    for row in range(5):
        total = b.copy()
        for start, stop in zip(bounds, bounds[1:]):
            part = np.zeros(70, np.float32)
            for i in range(start, stop):
                if x[row, i]:
                    part = part + w[:, i]
            total = total + part
        assert np.array_equal(found[row].numpy(), total)


@pytest.mark.parametrize("rows, width_in, width_out, has_bias", [(640, 784, 512, True), (64, 784, 512, True),
                                                                  (200, 300, 256, False), (48, 201, 256, True),
                                                                  (3, 40, 130, True)])
def test_calibrated_blocks_reproduce_the_gemm_on_new_data(rows, width_in, width_out, has_bias):
    x, weight, bias = _case(rows, width_in, width_out, seed=rows + width_in)
    bias = bias if has_bias else None
    starts = block_starts(x, weight, has_bias)
    expected = F.linear(x, weight, bias)
    if starts is not None:
        assert torch.equal(_blocked(x, weight, bias, starts), expected)
    # the calibration has teeth: other blocks give other bits
    wrong = uniform(width_in, 16) if starts != uniform(width_in, 16) else uniform(width_in, 24)
    assert not torch.equal(_blocked(x, weight, bias, wrong), expected)


def test_calibration_runs_once_per_shape(monkeypatch):
    calls = []
    original = gemm_order._calibrate
    monkeypatch.setattr(gemm_order, "_found", {})
    monkeypatch.setattr(gemm_order, "_calibrate", lambda *args: calls.append(args) or original(*args))
    x, weight, _ = _case(32, 100, 150, seed=3)
    first = block_starts(x, weight, True)
    assert block_starts(x.clone(), weight.clone(), True) == first and len(calls) == 1
    block_starts(x[:16], weight, True)  # another shape
    block_starts(x, weight, False)  # no bias: another GEMM call (mm instead of addmm)
    assert len(calls) == 3
