"""Pooling against PyTorch: outputs, indices and input gradients in float64."""
import numpy as np
import pytest

import disttorch
from disttorch.autograd import gradcheck
from disttorch.nn.functional import pooling as F
from disttorch.nn.modules import pooling as layers

torch = pytest.importorskip("torch")


def _compare(name, input_shape, *args, seed=0, **kwargs):
    x = np.random.default_rng(seed).standard_normal(input_shape)
    tx = torch.tensor(x, requires_grad=True)
    dx = disttorch.tensor(x, requires_grad=True)
    expected = getattr(torch.nn.functional, name)(tx, *args, **kwargs)
    got = getattr(F, name)(dx, *args, **kwargs)
    if kwargs.get("return_indices"):
        np.testing.assert_array_equal(got[1].numpy(), expected[1].numpy())
        assert got[1].dtype == disttorch.int64
        expected, got = expected[0], got[0]
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    probe = np.random.default_rng(seed + 1).standard_normal(tuple(expected.shape))
    expected.backward(torch.tensor(probe))
    got.backward(disttorch.tensor(probe))
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


MAX_POOL_CASES = [
    ((2,), dict()),
    ((3,), dict(stride=2)),
    ((3,), dict(stride=2, padding=1)),
    ((3,), dict(stride=2, ceil_mode=True)),
    ((3,), dict(stride=2, padding=1, ceil_mode=True)),
    (((3, 2),), dict(stride=(2, 1), padding=(1, 1), dilation=(2, 1))),
    ((2,), dict(stride=1, dilation=2, return_indices=True)),
    ((3,), dict(stride=2, padding=1, ceil_mode=True, return_indices=True)),
]


@pytest.mark.parametrize("args,kwargs", MAX_POOL_CASES, ids=str)
def test_max_pool2d_matches_torch(args, kwargs):
    _compare("max_pool2d", (2, 3, 9, 8), *args, **kwargs)


def test_max_pool2d_ties_send_gradient_to_first_maximum():
    x = np.zeros((1, 1, 4, 4))
    tx, dx = torch.tensor(x, requires_grad=True), disttorch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 3, 1).sum().backward()
    F.max_pool2d(dx, 3, 1).sum().backward()
    np.testing.assert_array_equal(dx.grad.numpy(), tx.grad.numpy())


def test_max_pool2d_unbatched_and_1d():
    _compare("max_pool2d", (3, 7, 6), 2, ceil_mode=True, return_indices=True)
    _compare("max_pool1d", (2, 3, 11), 3, stride=2, padding=1, ceil_mode=True, return_indices=True)


AVG_POOL_CASES = [
    ((2,), dict()),
    ((3,), dict(stride=2, padding=1)),
    ((3,), dict(stride=2, padding=1, count_include_pad=False)),
    ((3,), dict(stride=2, padding=1, ceil_mode=True)),
    ((3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (((3, 2),), dict(stride=(2, 1), padding=(1, 0), divisor_override=5)),
]


@pytest.mark.parametrize("args,kwargs", AVG_POOL_CASES, ids=str)
def test_avg_pool2d_matches_torch(args, kwargs):
    _compare("avg_pool2d", (2, 3, 9, 8), *args, **kwargs)


def test_avg_pool1d_matches_torch():
    _compare("avg_pool1d", (2, 3, 11), 3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)


@pytest.mark.parametrize("output_size", [(4, 3), 5, (None, 2), 1, (9, 8), (7, 5)], ids=str)
def test_adaptive_avg_pool2d_matches_torch(output_size):
    _compare("adaptive_avg_pool2d", (2, 3, 9, 8), output_size)


def test_adaptive_avg_pool1d_and_unbatched():
    _compare("adaptive_avg_pool1d", (2, 3, 11), 4)
    _compare("adaptive_avg_pool2d", (3, 10, 11), (3, 4))


def test_pool_gradchecks():
    rng = np.random.default_rng(5)
    x = disttorch.tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    assert gradcheck(lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True), (x,))
    assert gradcheck(lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False), (x,))
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 2)), (x,))


def test_modules_match_functional_and_repr():
    x = disttorch.randn(2, 3, 8, 8)
    np.testing.assert_array_equal(layers.MaxPool2d(2)(x).numpy(), F.max_pool2d(x, 2).numpy())
    np.testing.assert_array_equal(layers.AvgPool2d(3, 2, 1)(x).numpy(), F.avg_pool2d(x, 3, 2, 1).numpy())
    out, indices = layers.MaxPool2d(2, return_indices=True)(x)
    assert tuple(indices.shape) == (2, 3, 4, 4)
    for name, args, kwargs in [("MaxPool2d", (2,), {}), ("MaxPool2d", (3,), dict(stride=(2, 1), ceil_mode=True)),
                               ("AvgPool2d", (3, 2, 1), {}), ("AdaptiveAvgPool2d", ((4, None),), {}),
                               ("MaxPool1d", (3,), {}), ("AvgPool1d", (3,), {}), ("AdaptiveAvgPool1d", (2,), {})]:
        assert repr(getattr(layers, name)(*args, **kwargs)) == repr(getattr(torch.nn, name)(*args, **kwargs))


def test_float32_stays_float32():
    x = disttorch.randn(2, 3, 8, 8, requires_grad=True)
    out = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2) + F.adaptive_avg_pool2d(x, 4)
    out.sum().backward()
    assert out.dtype == disttorch.float32 and x.grad.dtype == disttorch.float32


def test_bad_arguments():
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(disttorch.randn(1, 1, 8, 8), 2, padding=2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        F.max_pool2d(disttorch.randn(1, 1, 2, 2), 3)
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        F.avg_pool2d(disttorch.randn(8, 8), 2)
