"""nn.functional pieces not covered through layers: erf accuracy, gradchecks in float64, fused-node counts."""
import math

import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F
from disttorch.autograd import gradcheck


def _input(*shape, seed=0):
    return disttorch.tensor(np.random.default_rng(seed).standard_normal(shape) * 2, requires_grad=True)


def test_erf_is_accurate_to_near_double_precision():
    points = np.concatenate([np.linspace(-8, 8, 2001), [0.0, 2.999999, 3.0, 3.000001, -3.0, 30.0, -30.0]])
    ours = F.erf(disttorch.tensor(points)).numpy()
    expected = np.array([math.erf(v) for v in points])
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-13)


def test_float32_erf_is_accurate_to_float32_rounding():
    points = np.concatenate([np.linspace(-6, 6, 1_200_001), [0.0, 1e-30, -1e-6, 3.92, 3.93, 100.0, -np.inf, np.inf]])
    points = points.astype(np.float32)
    ours = F.erf(disttorch.from_numpy(points)).numpy()
    assert ours.dtype == np.float32
    expected = np.array([math.erf(v) for v in points.astype(np.float64)])
    float32_ulp = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    # Within a few units in the last place everywhere: relative accuracy near 0, absolute near +-1.
    assert (np.abs(ours - expected) / float32_ulp).max() <= 6
    assert np.abs(ours - expected).max() <= 2.5e-7


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_float32_gelu_is_accurate(approximate):
    torch = pytest.importorskip("torch")
    points = np.linspace(-12, 12, 200_001).astype(np.float32)
    ours = disttorch.from_numpy(points).requires_grad_()
    ref = torch.from_numpy(points.astype(np.float64)).requires_grad_()  # the exact values, to compare with
    out, ref_out = F.gelu(ours, approximate=approximate), torch.nn.functional.gelu(ref, approximate=approximate)
    assert out.dtype == disttorch.float32
    # x * Phi(x) with Phi within 2e-7 (a few float32 ulps of values near 1/2 and 1) of the exact CDF.
    error = np.abs(out.detach().numpy() - ref_out.detach().numpy())
    assert (error <= 1e-6 * np.abs(ref_out.detach().numpy()) + 2e-7 * np.abs(points)).all()
    out.sum().backward()
    ref_out.sum().backward()
    # 1 + tanh(u) and 1 - tanh(u)^2 cancel in float32 far left (torch's float32 kernel too): ~1e-6 absolute.
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-6, atol=2e-6)


@pytest.mark.parametrize("name,fn", [
    ("erf", F.erf),
    ("gelu", F.gelu),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.3)),
    ("elu", F.elu),
    ("selu", F.selu),
    ("celu", lambda x: F.celu(x, 0.7)),
    ("silu", F.silu),
    ("mish", F.mish),
    ("softplus", lambda x: F.softplus(x, beta=1.5, threshold=2.0)),
    ("logsigmoid", F.logsigmoid),
    ("log_softmax", lambda x: F.log_softmax(x, dim=1)),
    ("layer_norm", lambda x: F.layer_norm(x, (4,))),
    ("batch_norm", lambda x: F.batch_norm(x, None, None, training=True)),
    ("group_norm", lambda x: F.group_norm(x, 2)),
    ("normalize", F.normalize),
])
def test_gradcheck(name, fn):
    assert gradcheck(fn, (_input(3, 4),))


def test_normalization_gradcheck_with_affine_parameters():
    x = _input(4, 4, 3)
    w, b = _input(4, seed=1), _input(4, seed=2)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (x, w, b))
    assert gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), (x, w, b))
    w3, b3 = _input(3, seed=3), _input(3, seed=4)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (3,), w, b), (x, w3, b3))


def test_linear_and_bilinear_gradcheck():
    x, w, b = _input(5, 3), _input(2, 3, seed=1), _input(2, seed=2)
    assert gradcheck(F.linear, (x, w, b))
    x1, x2, w2 = _input(4, 2), _input(4, 3, seed=1), _input(5, 2, 3, seed=2)
    assert gradcheck(lambda a, c, w: F.bilinear(a, c, w), (x1, x2, w2))


def test_embedding_gradcheck_with_repeated_indices():
    weight = _input(6, 3)
    idx = disttorch.tensor([[0, 2, 2], [5, 0, 1]])
    assert gradcheck(lambda w: F.embedding(idx, w), (weight,))


def test_embedding_padding_row_gets_no_gradient():
    weight = _input(6, 3)
    F.embedding(disttorch.tensor([0, 2, 0]), weight, padding_idx=0).sum().backward()
    assert weight.grad.numpy()[0].tolist() == [0.0, 0.0, 0.0]
    assert weight.grad.numpy()[2].tolist() == [1.0, 1.0, 1.0]


def test_embedding_scale_grad_by_freq_matches_torch():
    torch = pytest.importorskip("torch")
    idx = [[0, 2, 2], [5, 2, 1]]
    weight = _input(6, 3)
    ref_weight = torch.tensor(weight.detach().numpy(), requires_grad=True)
    F.embedding(disttorch.tensor(idx), weight, scale_grad_by_freq=True).sum().backward()
    torch.nn.functional.embedding(torch.tensor(idx), ref_weight, scale_grad_by_freq=True).sum().backward()
    np.testing.assert_allclose(weight.grad.numpy(), ref_weight.grad.numpy())


def test_linear_is_a_single_graph_node():
    out = F.linear(_input(2, 3), _input(4, 3, seed=1), _input(4, seed=2))
    assert len([f for f, _ in out.grad_fn.next_functions if f is not None]) == 3


def test_softmax_without_dim_warns_and_picks_torch_default():
    x = _input(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        out = F.softmax(x)
    np.testing.assert_allclose(out.detach().numpy().sum(axis=1), [1.0, 1.0])


def test_functional_dropout_eval_is_identity_and_mask_is_shared_with_backward():
    x = _input(50, 50)
    assert F.dropout(x, 0.5, training=False) is x
    out = F.dropout(x, 0.5)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy() == 0, out.detach().numpy() == 0)


def test_batch_norm_gradcheck_4d_and_eval_mode():
    x = _input(3, 2, 2, 3)
    w, b = _input(2, seed=1), _input(2, seed=2)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (x, w, b))
    assert gradcheck(lambda x: F.batch_norm(x, None, None, training=True), (x,))
    mean, var = disttorch.tensor([0.5, -1.0], dtype=disttorch.float64), disttorch.tensor([2.0, 0.5],
                                                                                          dtype=disttorch.float64)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, mean, var, w, b), (x, w, b))
    assert gradcheck(lambda x, b: F.batch_norm(x, mean, var, None, b), (x, b))


def test_batch_norm_eval_uses_running_stats():
    mean, var = disttorch.tensor([1.0, -1.0]), disttorch.tensor([4.0, 0.25])
    x = disttorch.tensor([[3.0, 0.0]])
    out = F.batch_norm(x, mean, var, eps=0.0)
    np.testing.assert_allclose(out.numpy(), [[1.0, 2.0]])


def test_layer_norm_shape_error():
    with pytest.raises(RuntimeError, match=r"expected input with shape \[\*, 5\]"):
        F.layer_norm(disttorch.randn(2, 4), (5,))


def test_group_norm_divisibility_error():
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(disttorch.randn(2, 6), 4)
