"""Tensor creation, dtypes and promotion, memory sharing, conversions and in-place ops, compared with PyTorch."""
import numpy as np
import pytest

import disttorch


def _dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


CREATIONS = [
    ("tensor_float_list", lambda lib: lib.tensor([1.0, 2.5])),
    ("tensor_int_list", lambda lib: lib.tensor([[1, 2], [3, 4]])),
    ("tensor_bool_list", lambda lib: lib.tensor([True, False])),
    ("tensor_mixed_list", lambda lib: lib.tensor([1, 2.5])),
    ("tensor_scalar_int", lambda lib: lib.tensor(3)),
    ("tensor_scalar_float", lambda lib: lib.tensor(3.0)),
    ("tensor_dtype_kw", lambda lib: lib.tensor([1, 2], dtype=lib.float64)),
    ("tensor_from_float64_ndarray", lambda lib: lib.tensor(np.arange(3.0))),
    ("tensor_from_int32_ndarray", lambda lib: lib.tensor(np.arange(3, dtype=np.int32))),
    ("as_tensor_list", lambda lib: lib.as_tensor([1.0, 2.0])),
    ("zeros", lambda lib: lib.zeros(2, 3)),
    ("zeros_tuple", lambda lib: lib.zeros((2, 3), dtype=lib.int64)),
    ("ones", lambda lib: lib.ones(4)),
    ("full_float", lambda lib: lib.full((2, 2), 1.5)),
    ("full_int", lambda lib: lib.full((2, 2), 7)),
    ("full_bool", lambda lib: lib.full((2,), True)),
    ("empty_shape_only", lambda lib: lib.empty(2, 3).fill_(0.0)),
    ("eye", lambda lib: lib.eye(3)),
    ("eye_rect", lambda lib: lib.eye(2, 4)),
    ("arange_int", lambda lib: lib.arange(5)),
    ("arange_start_step", lambda lib: lib.arange(1, 10, 3)),
    ("arange_float", lambda lib: lib.arange(0, 1, 0.25)),
    ("linspace", lambda lib: lib.linspace(0, 1, 5)),
    ("zeros_like_int", lambda lib: lib.zeros_like(lib.arange(3))),
    ("ones_like_dtype", lambda lib: lib.ones_like(lib.zeros(2), dtype=lib.float64)),
    ("full_like", lambda lib: lib.full_like(lib.zeros(2, 2), 4)),
    ("randint_dtype", lambda lib: lib.randint(0, 5, (3,)).fill_(0)),
    ("rand_dtype", lambda lib: lib.rand(2, 2).fill_(0)),
    ("randn_dtype", lambda lib: lib.randn(2).fill_(0)),
]


@pytest.mark.parametrize("make", [m for _, m in CREATIONS], ids=[n for n, _ in CREATIONS])
def test_creation_matches_torch(make):
    torch = pytest.importorskip("torch")
    ours, ref = make(disttorch), make(torch)
    assert ours.dtype.name == _dtype_name(ref.dtype)
    assert tuple(ours.shape) == tuple(ref.shape)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6)


def test_default_dtypes():
    assert disttorch.zeros(1).dtype is disttorch.float32
    assert disttorch.tensor([1, 2]).dtype is disttorch.int64
    assert disttorch.arange(3).dtype is disttorch.int64
    assert disttorch.tensor(1.0).dtype is disttorch.float32
    assert disttorch.ones(2, requires_grad=True).requires_grad


PROMOTIONS = [
    ("int_tensor_plus_float_scalar", lambda lib: lib.tensor([1, 2]) + 1.5),
    ("int_tensor_times_int_scalar", lambda lib: lib.tensor([1, 2]) * 3),
    ("int_tensor_div_int_scalar", lambda lib: lib.tensor([1, 2]) / 2),
    ("int_tensors_true_divide", lambda lib: lib.tensor([3, 4]) / lib.tensor([2, 2])),
    ("float32_plus_float64_zero_dim", lambda lib: lib.ones(2) + lib.tensor(2.0, dtype=lib.float64)),
    ("float32_plus_float64_tensor", lambda lib: lib.ones(2) + lib.ones(2, dtype=lib.float64)),
    ("int32_plus_int64", lambda lib: lib.ones(2, dtype=lib.int32) + lib.ones(2, dtype=lib.int64)),
    ("int32_plus_int64_zero_dim", lambda lib: lib.ones(2, dtype=lib.int32) + lib.tensor(5)),
    ("int64_plus_float32_zero_dim", lambda lib: lib.tensor([1, 2]) + lib.tensor(0.5)),
    ("bool_plus_int_scalar", lambda lib: lib.tensor([True, False]) + 1),
    ("bool_plus_bool", lambda lib: lib.tensor([True, False]) + lib.tensor([True, True])),
    ("bool_plus_int_tensor", lambda lib: lib.tensor([True, False]) + lib.tensor([2, 3])),
    ("bool_times_float_scalar", lambda lib: lib.tensor([True, False]) * 2.5),
    ("uint8_plus_int8", lambda lib: lib.ones(2, dtype=lib.uint8) + lib.ones(2, dtype=lib.int8)),
    ("float16_plus_float_scalar", lambda lib: lib.ones(2, dtype=lib.float16) + 1.5),
    ("float64_plus_float_scalar", lambda lib: lib.ones(2, dtype=lib.float64) * 0.5),
    ("float_scalar_minus_int_tensor", lambda lib: 1.5 - lib.tensor([1, 2])),
    ("int_sum_is_int64", lambda lib: lib.ones(3, dtype=lib.int32).sum()),
    ("bool_sum_is_int64", lambda lib: lib.tensor([True, True]).sum()),
    ("float64_matmul", lambda lib: lib.ones(2, 2, dtype=lib.float64) @ lib.ones(2, dtype=lib.float64)),
    ("exp_of_int", lambda lib: lib.exp(lib.tensor([0, 1]))),
    ("comparison_is_bool", lambda lib: lib.tensor([1, 2]) > 1.5),
    ("mixed_comparison", lambda lib: lib.ones(2) == lib.tensor([1, 0])),
]


@pytest.mark.parametrize("make", [m for _, m in PROMOTIONS], ids=[n for n, _ in PROMOTIONS])
def test_type_promotion_matches_torch(make):
    torch = pytest.importorskip("torch")
    ours, ref = make(disttorch), make(torch)
    assert ours.dtype.name == _dtype_name(ref.dtype)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-3)


def test_from_numpy_shares_memory_both_ways():
    arr = np.zeros(4, dtype=np.float32)
    t = disttorch.from_numpy(arr)
    arr[1] = 5.0
    assert t[1].item() == 5.0
    t[2] = 7.0
    assert arr[2] == 7.0
    assert t.dtype is disttorch.float32


def test_tensor_copies_but_as_tensor_shares():
    arr = np.zeros(3)
    copied, shared = disttorch.tensor(arr), disttorch.as_tensor(arr)
    arr[0] = 1.0
    assert copied[0].item() == 0.0
    assert shared[0].item() == 1.0


@pytest.mark.parametrize("make_view", [
    lambda t: t.view(3, 2),
    lambda t: t.reshape(6),
    lambda t: t[1],
    lambda t: t[:, 1:],
    lambda t: t.t(),
    lambda t: t.transpose(0, 1),
    lambda t: t.permute(1, 0),
    lambda t: t.unsqueeze(0),
    lambda t: t.flatten(),
], ids=["view", "reshape", "index", "slice", "t", "transpose", "permute", "unsqueeze", "flatten"])
def test_views_write_through(make_view):
    base = disttorch.zeros(2, 3)
    view = make_view(base)
    view.fill_(4.0)
    assert base.sum().item() == view.numel() * 4.0
    base.zero_()
    assert view.sum().item() == 0.0


def test_view_refuses_non_contiguous_input():
    t = disttorch.zeros(3, 4).t()
    with pytest.raises(RuntimeError, match="reshape"):
        t.view(12)
    assert t.reshape(12).shape == (12,)


def test_detach_shares_memory_and_leaves_graph():
    x = disttorch.ones(3, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    d[0] = 10.0
    assert y[0].item() == 10.0


def test_clone_copies_and_keeps_gradient_flow():
    x = disttorch.ones(3, requires_grad=True)
    c = x.clone()
    assert c.grad_fn is not None
    c.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    plain = disttorch.arange(3)
    copy = plain.clone()
    copy[0] = 9
    assert plain[0].item() == 0


def test_item_and_tolist():
    assert disttorch.tensor([[2.5]]).item() == 2.5
    assert isinstance(disttorch.tensor(3).item(), int)
    assert disttorch.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert disttorch.tensor(True).tolist() is True
    with pytest.raises(RuntimeError, match="3 elements"):
        disttorch.ones(3).item()


def test_to_dtype_and_shortcuts():
    t = disttorch.tensor([1.7, -2.2])
    assert t.to(disttorch.int64).tolist() == [1, -2]
    assert t.long().dtype is disttorch.int64
    assert t.double().dtype is disttorch.float64
    assert t.int().dtype is disttorch.int32
    assert t.bool().tolist() == [True, True]
    assert t.to(disttorch.float32) is t
    assert t.to("cpu") is t
    assert t.to(disttorch.float64).to(disttorch.float32).tolist() == t.tolist()
    assert t.to(disttorch.zeros(1, dtype=disttorch.float16)).dtype is disttorch.float16


def test_to_dtype_is_differentiable():
    x = disttorch.ones(2, requires_grad=True)
    x.to(disttorch.float64).sum().backward()
    assert x.grad.dtype is disttorch.float32
    assert x.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("op", ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"])
def test_comparisons_match_torch(op):
    torch = pytest.importorskip("torch")
    a, b = [[1.0, 2.0, 3.0], [4.0, 0.0, 2.0]], [2.0, 2.0, 2.0]
    for rhs in (b, 2.0, 2):
        ours = getattr(disttorch.tensor(a), op)(disttorch.tensor(rhs) if isinstance(rhs, list) else rhs)
        ref = getattr(torch.tensor(a), op)(torch.tensor(rhs) if isinstance(rhs, list) else rhs)
        assert ours.dtype is disttorch.bool
        assert ours.tolist() == ref.tolist()


def test_comparison_with_non_tensor_objects():
    t = disttorch.ones(2)
    assert (t == None) is False  # noqa: E711
    assert (t != "text") is True


INPLACE = [
    ("add_", lambda t: t.add_(2.0)),
    ("add_alpha", lambda t: t.add_(t * 0 + 1, alpha=3)),
    ("sub_", lambda t: t.sub_(0.5)),
    ("mul_", lambda t: t.mul_(3)),
    ("div_", lambda t: t.div_(4)),
    ("zero_", lambda t: t.zero_()),
    ("fill_", lambda t: t.fill_(2.5)),
    ("clamp_", lambda t: t.clamp_(-0.5, 1.5)),
    ("clamp_max_only", lambda t: t.clamp_(max=0.0)),
    ("iadd", lambda t: t.__iadd__(1)),
    ("imul_broadcast", lambda t: t.__imul__(t[:1] * 0 + 2)),
]


@pytest.mark.parametrize("op", [o for _, o in INPLACE], ids=[n for n, _ in INPLACE])
def test_inplace_matches_torch_and_bumps_version(op):
    torch = pytest.importorskip("torch")
    ours, ref = disttorch.tensor([1.0, -2.0, 3.0]), torch.tensor([1.0, -2.0, 3.0])
    before = ours._version
    out = op(ours)
    op(ref)
    assert out is ours
    assert ours._version > before
    np.testing.assert_allclose(ours.numpy(), ref.numpy())


def test_copy_broadcasts_and_casts():
    dst = disttorch.zeros(2, 3)
    dst.copy_(disttorch.tensor([1, 2, 3]))
    assert dst.tolist() == [[1.0, 2.0, 3.0]] * 2
    assert dst.dtype is disttorch.float32
    dst.copy_(np.ones((2, 3)))
    assert dst.sum().item() == 6.0
    with pytest.raises(RuntimeError, match=r"\[4\].*\[2, 3\]"):
        dst.copy_(disttorch.ones(4))


def test_copy_into_graph_propagates_gradient():
    src = disttorch.full((3,), 2.0, requires_grad=True)
    dst = disttorch.zeros(2, 3)
    dst.copy_(src)
    assert dst.requires_grad
    (dst * disttorch.tensor([[1.0], [2.0]])).sum().backward()
    assert src.grad.tolist() == [3.0, 3.0, 3.0]


def test_inplace_on_int_tensor_with_float_raises():
    t = disttorch.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast"):
        t.add_(1.5)


def test_inplace_op_on_non_leaf_records_graph():
    torch = pytest.importorskip("torch")
    results = []
    for lib in (disttorch, torch):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        y.mul_(3)
        y.add_(x)
        y.clamp_(max=15.0)
        (y * y).sum().backward()
        results.append((y.tolist(), x.grad.tolist()))
    assert results[0] == results[1]


def test_setitem_broadcast_and_dtype_conversion():
    t = disttorch.zeros(2, 3, dtype=disttorch.int64)
    t[0] = disttorch.tensor([1, 2, 3])
    t[1, :] = 4
    t[:, 0] = disttorch.tensor([7.9, 8.1]).long()
    assert t.tolist() == [[7, 2, 3], [8, 4, 4]]
    m = disttorch.zeros(4)
    m[disttorch.tensor([True, False, True, False])] = 1.0
    assert m.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_repr_names_grad_fn_and_dtype():
    x = disttorch.ones(2, requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward0>" in repr(x * 2)
    assert "dtype=torch.float64" in repr(disttorch.zeros(1, dtype=disttorch.float64))


def test_shape_queries():
    t = disttorch.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.size() == (2, 3, 4) and t.size(-1) == 4
    assert t.dim() == 3 and t.ndim == 3 and t.numel() == 24 and len(t) == 2
    assert repr(t.shape) == "torch.Size([2, 3, 4])"
    assert t.device == disttorch.device("cpu")
    assert str(t.device) == "cpu"


def test_argmax_argmin_match_torch():
    torch = pytest.importorskip("torch")
    data = [[1.0, 5.0, 2.0], [7.0, 0.0, 7.5]]
    for name in ("argmax", "argmin"):
        for kwargs in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}):
            ours = getattr(disttorch.tensor(data), name)(**kwargs)
            ref = getattr(torch.tensor(data), name)(**kwargs)
            assert ours.dtype is disttorch.int64
            assert ours.tolist() == ref.tolist()


def test_max_with_dim_returns_values_and_indices():
    values, indices = disttorch.tensor([[1.0, 3.0], [4.0, 2.0]]).max(dim=1)
    assert values.tolist() == [3.0, 4.0]
    assert indices.tolist() == [1, 0]
    assert indices.dtype is disttorch.int64


def test_one_hot_matches_torch():
    torch = pytest.importorskip("torch")
    labels = [0, 2, 1, 2]
    ours = disttorch.one_hot(disttorch.tensor(labels), 4)
    ref = torch.nn.functional.one_hot(torch.tensor(labels), 4)
    assert ours.dtype is disttorch.int64
    assert ours.tolist() == ref.tolist()


def test_manual_seed_reproducible():
    disttorch.manual_seed(123)
    first = (disttorch.rand(5), disttorch.randn(3, 2), disttorch.randint(0, 10, (4,)), disttorch.randperm(6))
    disttorch.manual_seed(123)
    second = (disttorch.rand(5), disttorch.randn(3, 2), disttorch.randint(0, 10, (4,)), disttorch.randperm(6))
    for a, b in zip(first, second):
        assert a.tolist() == b.tolist()
    assert disttorch.rand(5).tolist() != first[0].tolist()


def test_rng_state_round_trip():
    disttorch.manual_seed(7)
    state = disttorch.get_rng_state()
    expected = disttorch.randn(4).tolist()
    disttorch.set_rng_state(state)
    assert disttorch.randn(4).tolist() == expected


def test_generator_objects_are_independent():
    g1 = disttorch.Generator().manual_seed(5)
    g2 = disttorch.Generator().manual_seed(5)
    disttorch.rand(3)
    assert disttorch.rand(3, generator=g1).tolist() == disttorch.rand(3, generator=g2).tolist()


def test_numpy_scalars_keep_their_dtype():
    torch = pytest.importorskip("torch")
    for value in (np.float64(2.5), np.float32(1.5), np.int32(3), np.bool_(True)):
        assert disttorch.tensor(value).dtype.name == _dtype_name(torch.tensor(value).dtype)


def test_clamp_int_tensor_with_float_bound_is_float32():
    out = disttorch.tensor([1, 5, 9]).clamp(2.5, 6)
    assert out.dtype is disttorch.float32
    assert out.tolist() == [2.5, 5.0, 6.0]
