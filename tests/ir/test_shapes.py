"""Shape rules agree with PyTorch's own layers (conv, pool, flatten), including the failures."""

import itertools

import numpy as np
import pytest

from snnir import AvgPool2d, Conv1d, Conv2d, Flatten, MaxPool2d, ShapeError, SumPool2d

torch = pytest.importorskip("torch")

CONV2D = [
    combo
    for combo in itertools.product([(3, 9, 11), (4, 5, 5)], [1, (3, 2)], [1, (2, 1)], [0, (1, 2)], [1, 2], [1, 2])
    if combo[0][0] % combo[-1] == 0  # input channels divisible by groups
]


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,groups", CONV2D)
def test_conv2d_shapes_match_torch(shape, kernel, stride, padding, dilation, groups):
    node = Conv2d(4, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    layer = torch.nn.Conv2d(shape[0], 4, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    try:
        expected = tuple(layer(torch.zeros(1, *shape)).shape[1:])
    except RuntimeError:
        with pytest.raises(ShapeError):
            node.infer_output(shape)
        return
    assert node.infer_output(shape) == expected


@pytest.mark.parametrize("length,kernel,stride,padding,dilation", list(itertools.product([7, 16], [1, 3], [1, 2], [0, 2], [1, 3])))
def test_conv1d_shapes_match_torch(length, kernel, stride, padding, dilation):
    node = Conv1d(3, kernel, stride=stride, padding=padding, dilation=dilation)
    layer = torch.nn.Conv1d(2, 3, kernel, stride=stride, padding=padding, dilation=dilation)
    expected = tuple(layer(torch.zeros(1, 2, length)).shape[1:])
    assert node.infer_output((2, length)) == expected


POOLS = [(MaxPool2d, torch.nn.MaxPool2d), (AvgPool2d, torch.nn.AvgPool2d), (SumPool2d, torch.nn.AvgPool2d)]


@pytest.mark.parametrize("kinds", POOLS, ids=lambda k: k[0].__name__)
@pytest.mark.parametrize("kernel,stride,padding", list(itertools.product([2, (3, 2)], [None, 1, (2, 3)], [0, 1])))
def test_pool_shapes_match_torch(kinds, kernel, stride, padding):
    ours, theirs = kinds
    node = ours(kernel, stride=stride, padding=padding)
    layer = theirs(kernel, stride=stride, padding=padding)
    shape = (2, 9, 8)
    expected = tuple(layer(torch.zeros(1, *shape)).shape[1:])
    assert node.infer_output(shape) == expected


@pytest.mark.parametrize("start,end", [(0, -1), (1, -1), (0, 1), (1, 2), (-2, -1), (2, 2)])
def test_flatten_matches_torch(start, end):
    shape = (2, 3, 4)
    to_torch = lambda d: d + 1 if d >= 0 else d  # torch counts the batch axis
    expected = tuple(torch.flatten(torch.zeros(1, *shape), to_torch(start), to_torch(end)).shape[1:])
    assert Flatten(start_dim=start, end_dim=end).infer_output(shape) == expected


def test_shape_errors_are_specific():
    with pytest.raises(ShapeError, match=r"spatial axis 0 of size 3 \(padding 0\) is smaller than the dilated kernel 5"):
        Conv2d(4, 5).infer_output((1, 3, 8))
    with pytest.raises(ShapeError, match=r"in_channels=2, but its input has 3 channels"):
        Conv2d(4, 3, weight=None, in_channels=2).infer_output((3, 8, 8))
    with pytest.raises(ShapeError, match=r"expects an input \(C, H, W\)"):
        MaxPool2d(2).infer_output((8,))
    with pytest.raises(ShapeError, match="does not fit an input of rank 2"):
        Flatten(start_dim=1, end_dim=0).infer_output((2, 3))
    with pytest.raises(ShapeError, match="Linear expects a flat input"):
        from snnir import Linear

        Linear(3).infer_output((2, 3))


def test_numpy_shapes_of_the_reference_kernels_follow_the_rules():
    import snnir

    graph = snnir.Sequential(Conv2d(3, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2)), AvgPool2d(2, padding=1),
                             Flatten(), input_shape=(2, 9, 8), num_steps=2)
    result = snnir.compile(graph).run(np.zeros((3, 2, 9, 8), np.float32))
    assert result["output"].shape == (2, 3, *graph.shapes["flatten1"])
