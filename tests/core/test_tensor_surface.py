"""The non-differentiable side of the tensor surface scripts use: indices, dtypes, out=, formatting."""
import warnings

import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 6)).astype(np.float32)


def both(fn):
    return fn(disttorch, disttorch.tensor(X)), fn(torch, torch.tensor(X))


def same(ours, ref):
    np.testing.assert_array_equal(np.asarray(ours.tolist()), np.asarray(ref.tolist()))
    assert ours.dtype.name == str(ref.dtype).removeprefix("torch.")


@pytest.mark.parametrize("fn", [
    lambda lib, x: lib.argsort(x, dim=1),
    lambda lib, x: x.argsort(dim=0, descending=True),
    lambda lib, x: lib.sort(x, 1, descending=True).indices,
    lambda lib, x: lib.topk(x, 3).indices,
    lambda lib, x: x.topk(2, dim=0, largest=False).indices,
    lambda lib, x: lib.kthvalue(x, 3, 1).indices,
    lambda lib, x: lib.median(x, 1).indices,
    lambda lib, x: lib.count_nonzero(x > 0, dim=1),
    lambda lib, x: lib.trunc(x * 3),
    lambda lib, x: lib.floor_divide(x * 3, 2),
    lambda lib, x: lib.logical_and(x > 0, x < 1),
    lambda lib, x: lib.logical_xor(x > 0, x < 1),
    lambda lib, x: lib.tril_indices(4, 5, 1),
    lambda lib, x: lib.triu_indices(3, 3, -1),
    lambda lib, x: lib.logspace(0, 2, 5),
    lambda lib, x: lib.unique(lib.tensor([3, 1, 3, 2, 1])),
    lambda lib, x: lib.unique(lib.tensor([3, 1, 3, 2, 1]), return_inverse=True, return_counts=True)[1],
    lambda lib, x: lib.nan_to_num(lib.tensor([float("nan"), float("inf"), -float("inf"), 1.0]), nan=2.0),
    lambda lib, x: lib.tensor([5, -3, 7]) % 3,
    lambda lib, x: lib.remainder(lib.tensor([5, -3, 7]), -2),
    lambda lib, x: lib.where(x > 0)[1],
    lambda lib, x: lib.where(x > 0, 1.0, 0.0),
    lambda lib, x: lib.where(x > 0, x, 0),
], ids=lambda f: None)
def test_matches_torch(fn):
    same(*both(fn))


def test_sort_and_topk_return_named_pairs():
    values, indices = disttorch.topk(disttorch.tensor([1.0, 5.0, 3.0]), 2)
    assert values.tolist() == [5.0, 3.0] and indices.tolist() == [1, 2]
    result = disttorch.tensor([3.0, 1.0]).sort()
    assert result.values.tolist() == [1.0, 3.0] and result.indices.tolist() == [1, 0]
    with pytest.raises(RuntimeError, match="out of range"):
        disttorch.topk(disttorch.ones(3), 4)


def test_randint_forms_match_torch_signatures():
    disttorch.manual_seed(0)
    a = disttorch.randint(10, (50,))
    b = disttorch.randint(3, 10, (50,))
    c = disttorch.randint(low=2, high=4, size=(2, 3))
    d = disttorch.randint(high=5, size=(4,))
    assert a.dtype == disttorch.int64 and 0 <= a.min().item() and a.max().item() < 10
    assert 3 <= b.min().item() and b.max().item() < 10
    assert c.shape == (2, 3) and set(c.unique().tolist()) <= {2, 3}
    assert d.shape == (4,) and d.max().item() < 5
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        disttorch.randint(5, 5, (2,))


def test_format_spec_on_zero_dim_tensors():
    loss = disttorch.tensor(0.123456)
    assert f"{loss:.4f}" == f"{torch.tensor(0.123456):.4f}" == "0.1235"
    assert f"{disttorch.tensor(7):>4d}" == "   7"
    assert "{}".format(loss) == "{}".format(torch.tensor(0.123456))
    assert "{}".format(disttorch.ones(2)) == str(disttorch.ones(2))
    with pytest.raises(TypeError):
        f"{disttorch.ones(2):.2f}"


def test_out_keyword_writes_into_the_given_tensor():
    out = disttorch.empty(3)
    assert disttorch.add(disttorch.ones(3), 2, out=out) is out
    assert out.tolist() == [3.0, 3.0, 3.0]
    out2 = disttorch.empty(2, 2)
    disttorch.matmul(disttorch.ones(2, 3), disttorch.ones(3, 2), out=out2)
    assert out2.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    values, indices = disttorch.empty(0), disttorch.empty(0, dtype=disttorch.int64)
    disttorch.sort(disttorch.tensor([3.0, 1.0, 2.0]), out=(values, indices))
    assert values.tolist() == [1.0, 2.0, 3.0] and indices.tolist() == [1, 2, 0]
    target = disttorch.zeros(2, 3)
    disttorch.cat([disttorch.ones(1, 3), disttorch.zeros(1, 3)], out=target)
    assert target.sum().item() == 3.0


def test_out_keyword_resizes_with_torchs_warning_and_refuses_autograd():
    out = disttorch.zeros(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        disttorch.sum(disttorch.ones(2, 2), dim=0, out=out)
    assert out.tolist() == [2.0, 2.0] and any("was resized" in str(w.message) for w in caught)
    x = disttorch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        disttorch.mul(x, 2, out=disttorch.empty(2))
    with disttorch.no_grad():
        disttorch.mul(x, 2, out=out)
    assert out.tolist() == [2.0, 2.0]
    with pytest.raises(RuntimeError, match="can't be cast"):
        disttorch.add(disttorch.ones(2), 1.5, out=disttorch.zeros(2, dtype=disttorch.int64))


def test_bfloat16_rounds_like_torch_and_keeps_its_dtype():
    values = RNG.standard_normal(100).astype(np.float32)
    ours = disttorch.tensor(values).to(disttorch.bfloat16)
    ref = torch.tensor(values).to(torch.bfloat16)
    np.testing.assert_array_equal(ours.float().numpy(), ref.float().numpy())
    assert ours.dtype is disttorch.bfloat16 and ours.element_size() == 2 and ours.is_floating_point()
    a = disttorch.ones(2, 3, dtype=disttorch.bfloat16)
    assert (a @ a.t()).dtype is disttorch.bfloat16
    assert (a * 2).dtype is disttorch.bfloat16 and a.exp().dtype is disttorch.bfloat16
    assert (a + disttorch.ones(3)).dtype is disttorch.float32
    assert (a + disttorch.ones(3, dtype=disttorch.float16)).dtype is disttorch.float32
    assert (a + 1.5).dtype is disttorch.bfloat16
    assert repr(disttorch.tensor([0.5], dtype=disttorch.bfloat16)) == repr(torch.tensor([0.5], dtype=torch.bfloat16))
    w = disttorch.ones(3, requires_grad=True)
    (w.bfloat16() * 3).sum().backward()
    assert w.grad.dtype is disttorch.float32 and w.grad.tolist() == [3.0, 3.0, 3.0]


def test_finfo_and_iinfo_match_torch():
    for ours, ref in ((disttorch.float32, torch.float32), (disttorch.bfloat16, torch.bfloat16),
                      (disttorch.float16, torch.float16)):
        assert (disttorch.finfo(ours).eps, disttorch.finfo(ours).max, disttorch.finfo(ours).tiny) == (
            torch.finfo(ref).eps, torch.finfo(ref).max, torch.finfo(ref).tiny)
    assert disttorch.finfo().eps == torch.finfo().eps
    assert (disttorch.iinfo(disttorch.int64).max, disttorch.iinfo(disttorch.uint8).min) == (
        torch.iinfo(torch.int64).max, torch.iinfo(torch.uint8).min)


def test_random_fills_stay_in_range():
    disttorch.manual_seed(1)
    e = disttorch.empty(1000).exponential_(2.0)
    assert e.min().item() >= 0 and abs(e.mean().item() - 0.5) < 0.1
    r = disttorch.empty(100, dtype=disttorch.int64).random_(3, 7)
    assert set(r.unique().tolist()) <= {3, 4, 5, 6}
    assert disttorch.ones(3, 3).multinomial(2).shape == (3, 2)
    assert set(disttorch.full((50,), 0.5).bernoulli().unique().tolist()) <= {0.0, 1.0}


def test_einsum_refuses_a_differentiable_diagonal_and_computes_it_without_grad():
    m = disttorch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert disttorch.einsum("ii->", m).item() == 5.0
    with pytest.raises(NotImplementedError, match="diagonal"):
        disttorch.einsum("ii->i", m.requires_grad_())


def test_in_place_variants():
    x = disttorch.tensor([[-2.0, 0.5], [3.0, -1.0]])
    x.clamp_(min=-1.0, max=1.0)
    assert x.tolist() == [[-1.0, 0.5], [1.0, -1.0]]
    assert x.tril_().tolist() == [[-1.0, 0.0], [1.0, -1.0]]
    y = disttorch.zeros(2, 3).scatter_(1, disttorch.tensor([[2], [0]]), 1.0)
    assert y.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_print_options_change_reprs_like_torch():
    values = [[1.23456, 2.5], [3.0, 4.125]]
    try:
        for options in (dict(precision=2), dict(profile="short"), dict(threshold=5, edgeitems=1)):
            disttorch.set_printoptions(**options)
            torch.set_printoptions(**options)
            assert repr(disttorch.tensor(values)) == repr(torch.tensor(values))
            assert repr(disttorch.arange(10.0)) == repr(torch.arange(10.0))
    finally:
        disttorch.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


def test_tensor_properties_and_in_place_shape_edits():
    t = disttorch.zeros(2, 3)
    ref = torch.zeros(2, 3)
    assert (t.nbytes, t.itemsize, t.get_device()) == (ref.nbytes, ref.itemsize, ref.get_device())
    assert t.share_memory_() is t and t.pin_memory() is t and not t.is_pinned()
    assert t.unsqueeze_(0).shape == (1, 2, 3) and t.squeeze_().shape == (2, 3)
    assert t.t_().shape == (3, 2) and t.transpose_(0, 1).shape == (2, 3)
    x = disttorch.tensor([[1.7, -2.2], [0.25, 4.0]])
    assert x.clone().floor_().tolist() == torch.tensor(x.tolist()).floor_().tolist()
    assert x.clone().ceil_().tolist() == torch.tensor(x.tolist()).ceil_().tolist()
    assert x.clone().sign_().tolist() == torch.tensor(x.tolist()).sign_().tolist()
    np.testing.assert_allclose(x.clone().reciprocal_().numpy(), torch.tensor(x.tolist()).reciprocal_().numpy())
    assert disttorch.zeros(3, 3).fill_diagonal_(2.0).tolist() == torch.zeros(3, 3).fill_diagonal_(2.0).tolist()
    assert disttorch.zeros(5, 2).fill_diagonal_(1.0, wrap=True).tolist() == \
        torch.zeros(5, 2).fill_diagonal_(1.0, wrap=True).tolist()
    assert disttorch.argwhere(x > 0).tolist() == torch.argwhere(torch.tensor(x.tolist()) > 0).tolist()


def test_retains_grad_and_in_place_shape_edits_keep_history():
    w = disttorch.ones(3, requires_grad=True)
    h = w * 2
    assert not h.retains_grad
    h.retain_grad()
    assert h.retains_grad and not w.retains_grad
    h.unsqueeze_(0)
    (h * 3).sum().backward()
    assert h.shape == (1, 3) and w.grad.tolist() == [6.0, 6.0, 6.0]


def test_legacy_variable_and_anomaly_switches():
    v = disttorch.autograd.Variable(disttorch.ones(2), requires_grad=True)
    assert isinstance(v, disttorch.Tensor) and v.requires_grad
    assert not disttorch.autograd.is_anomaly_enabled()
    with disttorch.autograd.detect_anomaly():
        assert disttorch.autograd.is_anomaly_enabled()
    with disttorch.autograd.set_detect_anomaly(True):
        assert disttorch.autograd.is_anomaly_enabled()
    assert not disttorch.autograd.is_anomaly_enabled()


def test_unfold_edge_cases_match_torch():
    for lib in (disttorch, torch):
        assert tuple(lib.tensor(2.0).unfold(0, 1, 1).shape) == (1,)
    assert tuple(disttorch.zeros(3, 4).unfold(1, 4, 9).shape) == tuple(torch.zeros(3, 4).unfold(1, 4, 9).shape)
    for args in [(0, 5, 1), (0, 2, 0)]:
        with pytest.raises(RuntimeError) as theirs:
            torch.zeros(3, 4).unfold(*args)
        with pytest.raises(RuntimeError) as ours:
            disttorch.zeros(3, 4).unfold(*args)
        assert str(ours.value) == str(theirs.value)


def test_erfinv_at_and_beyond_the_ends_matches_torch():
    values = [-1.0, -0.9999999, 0.0, 0.9999, 1.0, 1.5]
    np.testing.assert_allclose(disttorch.erfinv(disttorch.tensor(values)).numpy(),
                               torch.erfinv(torch.tensor(values)).numpy(), rtol=1e-6)
