"""Autograd semantics: graph modes, retain_graph, accumulation, hooks, autograd.grad, version counters."""
import numpy as np
import pytest

import disttorch
from disttorch import autograd


def _leaf(values=(1.0, 2.0, 3.0)):
    return disttorch.tensor(list(values), requires_grad=True)


def test_leaf_and_non_leaf_flags():
    x = _leaf()
    y = x * 2
    assert x.is_leaf and x.grad_fn is None
    assert not y.is_leaf and y.requires_grad and y.grad_fn.name() == "MulBackward0"
    assert disttorch.ones(2).is_leaf and not disttorch.ones(2).requires_grad


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        disttorch.tensor([1, 2], requires_grad=True)


def test_backward_accumulates_across_calls():
    x = _leaf()
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0, 9.0]
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0, 3.0]


def test_second_backward_without_retain_graph_raises():
    x = _leaf()
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_second_backward():
    x = _leaf()
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.tolist()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array(first))


def test_backward_of_non_scalar_needs_gradient():
    x = _leaf()
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()
    y.backward(disttorch.tensor([1.0, 0.0, 2.0]))
    assert x.grad.tolist() == [2.0, 0.0, 4.0]


def test_backward_gradient_shape_mismatch_names_both_shapes():
    y = _leaf() * 2
    with pytest.raises(RuntimeError, match=r"\[2\].*\[3\]"):
        y.backward(disttorch.ones(2))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        disttorch.ones(1).sum().backward()


def test_shared_subexpression_gets_summed_gradient():
    x = _leaf()
    y = x * 2
    (y * y + y).sum().backward()
    assert x.grad.tolist() == [(8 * v + 2) for v in (1.0, 2.0, 3.0)]


def test_no_grad_context_and_decorator():
    x = _leaf()
    with disttorch.no_grad():
        assert not disttorch.is_grad_enabled()
        y = x * 2
    assert disttorch.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @disttorch.no_grad()
    def doubled(t):
        return t * 2

    assert not doubled(x).requires_grad
    assert disttorch.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = _leaf()
    with disttorch.no_grad():
        with disttorch.enable_grad():
            y = x * 2
        z = x * 2

    @disttorch.enable_grad()
    def doubled(t):
        return t * 2

    with disttorch.no_grad():
        w = doubled(x)
    assert y.requires_grad and w.requires_grad and not z.requires_grad


def test_set_grad_enabled_as_function_context_and_decorator():
    x = _leaf()
    with disttorch.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert disttorch.is_grad_enabled()
    disttorch.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        disttorch.set_grad_enabled(True)
    assert (x * 2).requires_grad

    @disttorch.set_grad_enabled(False)
    def doubled(t):
        return t * 2

    assert disttorch.is_grad_enabled()
    assert not doubled(x).requires_grad
    assert disttorch.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with disttorch.no_grad():
            raise ValueError("boom")
    assert disttorch.is_grad_enabled()


def test_inference_mode_builds_no_graph():
    x = _leaf()
    with disttorch.inference_mode():
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_autograd_grad_returns_without_touching_dot_grad():
    x, w = _leaf(), _leaf((0.5, 0.5, 0.5))
    loss = (x * w).sum()
    gx, gw = autograd.grad(loss, (x, w))
    assert gx.tolist() == [0.5, 0.5, 0.5]
    assert gw.tolist() == [1.0, 2.0, 3.0]
    assert x.grad is None and w.grad is None


def test_autograd_grad_allow_unused():
    x, unused = _leaf(), _leaf()
    loss = (x * x).sum()
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        autograd.grad(loss, [x, unused], retain_graph=True)
    gx, gu = autograd.grad(loss, [x, unused], allow_unused=True)
    assert gx.tolist() == [2.0, 4.0, 6.0]
    assert gu is None


def test_autograd_grad_of_intermediate_tensor():
    x = _leaf()
    y = x * 2
    (gy,) = autograd.grad((y * y).sum(), y)
    assert gy.tolist() == [4.0, 8.0, 12.0]


def test_autograd_grad_with_grad_outputs():
    x = _leaf()
    (gx,) = autograd.grad(x * 3, x, grad_outputs=disttorch.tensor([1.0, 2.0, 0.0]))
    assert gx.tolist() == [3.0, 6.0, 0.0]


def test_backward_with_inputs_only_fills_those():
    x, w = _leaf(), _leaf()
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None
    assert w.grad.tolist() == [1.0, 2.0, 3.0]


def test_register_hook_can_replace_gradient():
    x = _leaf()
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    y.register_hook(lambda g: g * 10)
    y.sum().backward()
    assert seen == [[1.0, 1.0, 1.0]]
    assert x.grad.tolist() == [20.0, 20.0, 20.0]


def test_register_hook_on_leaf_changes_what_accumulates():
    x = _leaf()
    handle = x.register_hook(lambda g: g + 1)
    (x * 2).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0, 3.0]
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_register_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        disttorch.ones(2).register_hook(lambda g: g)


def test_post_accumulate_grad_hook_sees_accumulated_grad():
    x = _leaf()
    seen = []
    handle = x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.tolist()))
    (x * 2).sum().backward()
    (x * 2).sum().backward()
    assert seen == [[2.0, 2.0, 2.0], [4.0, 4.0, 4.0]]
    handle.remove()
    (x * 2).sum().backward()
    assert len(seen) == 2


def test_post_accumulate_grad_hook_runs_once_per_leaf_per_backward():
    x = _leaf()
    calls = []
    x.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    (x * 2 + x * 3 + x.exp()).sum().backward()
    assert len(calls) == 1


def test_post_accumulate_grad_hook_rejected_on_non_leaf():
    with pytest.raises(RuntimeError, match="non-leaf"):
        (_leaf() * 2).register_post_accumulate_grad_hook(lambda t: None)


def test_retain_grad_keeps_intermediate_gradient():
    x = _leaf()
    y = x * 2
    y.retain_grad()
    z = x * 3
    (y * y + z).sum().backward()
    assert y.grad.tolist() == [4.0, 8.0, 12.0]
    assert z.grad is None


def test_grad_is_float_leaf_dtype_and_shape():
    w = disttorch.ones(3, 1, requires_grad=True)
    (w * disttorch.ones(3, 4, dtype=disttorch.float64)).sum().backward()
    assert w.grad.shape == (3, 1)
    assert w.grad.dtype is disttorch.float32
    assert w.grad.tolist() == [[4.0]] * 3


def test_grad_buffer_is_not_aliased_with_upstream_arrays():
    x = _leaf()
    y = x + 0
    y.sum().backward()
    x.grad.add_(1.0)
    (x + 0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0, 3.0]


def test_inplace_on_saved_input_raises_at_backward():
    x = _leaf()
    y = x * 2
    z = y * y
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_inplace_on_saved_output_raises_at_backward():
    x = _leaf()
    y = x.exp()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="version 1; expected version 0"):
        y.sum().backward()


def test_inplace_through_a_view_is_detected():
    x = _leaf()
    y = x * 1
    z = y.sin()
    y[0:1].mul_(0.0)
    with pytest.raises(RuntimeError, match="inplace operation"):
        z.sum().backward()


def test_inplace_on_unsaved_tensor_is_allowed():
    x = _leaf()
    y = x + 1
    z = y * 2  # multiplying by a constant saves only the constant, so editing y afterwards is harmless
    y.add_(1.0)
    z.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_inplace_on_leaf_requiring_grad_raises():
    x = _leaf()
    for edit in (lambda: x.add_(1), lambda: x.mul_(2), lambda: x.zero_(), lambda: x.fill_(1.0),
                 lambda: x.clamp_(0, 1), lambda: x.__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            edit()
    with disttorch.no_grad():
        x.add_(1)
    assert x.tolist() == [2.0, 3.0, 4.0]


def test_setitem_with_grad_on_non_leaf():
    x = _leaf()
    v = disttorch.tensor(5.0, requires_grad=True)
    y = x * 2
    y[1] = v * 3
    y.sum().backward()
    assert y.tolist() == [2.0, 15.0, 6.0]
    assert x.grad.tolist() == [2.0, 0.0, 2.0]
    assert v.grad.item() == 3.0


def test_detach_stops_gradient():
    x = _leaf()
    (x.detach() * x).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0]


def test_requires_grad_on_non_leaf_cannot_be_turned_off():
    with pytest.raises(RuntimeError, match="leaf variables"):
        (_leaf() * 2).requires_grad_(False)


def test_custom_function_with_tensors():
    class Cube(autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x

    x = _leaf()
    Cube.apply(x).sum().backward()
    assert x.grad.tolist() == [3.0, 12.0, 27.0]


def test_core_function_with_arrays():
    from disttorch.core.autograd import Function

    class Scale(Function):
        @staticmethod
        def forward(ctx, x, factor):
            ctx.factor = factor
            return x * factor

        @staticmethod
        def backward(ctx, g):
            return g * ctx.factor, None

    x = _leaf()
    out = Scale.apply(x, 4.0)
    out.sum().backward()
    assert out.grad_fn.needs_input_grad[0]
    assert x.grad.tolist() == [4.0, 4.0, 4.0]


def test_gradient_matches_torch_on_a_shared_graph():
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (disttorch, torch):
        x = lib.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
        w = lib.tensor([1.5, -0.5], requires_grad=True)
        h = (x * w).tanh()
        loss = (h @ w + h.sum(0)).softmax(0).log().sum() + (x ** 2).mean()
        loss.backward()
        grads.append((x.grad.tolist(), w.grad.tolist()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-5)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-5)


VIEW_EDITS = [
    ("view_mul_", lambda y: y.view(-1).mul_(2.0)),
    ("slice_add_", lambda y: y[:, 1:].add_(1.5)),
    ("row_clamp_", lambda y: y[0].clamp_(max=0.5)),
    ("nested_view", lambda y: y.t()[1:].mul_(-3.0)),
    ("setitem_on_view", lambda y: y[1].__setitem__(slice(0, 2), y[0, :2] * 4)),
    ("iadd_through_setitem", lambda y: y.__setitem__((slice(None), 0), y[:, 0] + 5)),
    ("fill_view", lambda y: y[:, 2].fill_(1.0)),
    ("zero_whole", lambda y: y.zero_()),
    ("copy_into_view", lambda y: y[1].copy_(y[0] * 2)),
]


@pytest.mark.parametrize("edit", [e for _, e in VIEW_EDITS], ids=[n for n, _ in VIEW_EDITS])
def test_inplace_edit_through_view_reaches_base_gradient(edit):
    torch = pytest.importorskip("torch")
    results = []
    for lib in (disttorch, torch):
        x = lib.tensor([[1.0, -2.0, 3.0], [0.5, 2.0, -1.0]], requires_grad=True)
        y = x * 1.5
        edit(y)
        (y * y).sum().backward()
        results.append((y.tolist(), x.grad.tolist()))
    np.testing.assert_allclose(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1])


def test_inplace_on_view_of_leaf_requiring_grad_raises():
    x = _leaf()
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        x[1:].mul_(2)


def test_writing_graph_values_into_plain_buffer_records_graph():
    x = _leaf()
    buffer = disttorch.zeros(2, 3)
    buffer[1] = x * 2
    buffer[0].copy_(x)
    assert buffer.requires_grad and not buffer.is_leaf
    (buffer * disttorch.tensor([[1.0], [10.0]])).sum().backward()
    assert x.grad.tolist() == [21.0, 21.0, 21.0]


EDGE_GRADIENTS = [
    ("max_ties_share", lambda x: x.max(), [1.0, 3.0, 3.0]),
    ("min_ties_share", lambda x: x.min(), [1.0, 1.0, 3.0]),
    ("amax_ties_share", lambda x: x.amax(), [2.0, 2.0, 1.0]),
    ("max_dim_ties_pick_one", lambda x: x.max(0).values, [2.0, 2.0, 1.0]),
    ("maximum_ties_split", lambda x: x.maximum(x.detach() * 0 + 2.0), [2.0, 1.0, 3.0]),
    ("norm_at_zero", lambda x: x.norm(), [0.0, 0.0]),
    ("std_of_constant", lambda x: x.std(), [1.0, 1.0, 1.0]),
    ("pow_zero_exponent_at_zero", lambda x: x ** 0, [0.0, 2.0]),
    ("relu_at_zero", lambda x: x.relu(), [0.0, 4.0, -1.0]),
    ("clamp_at_bounds", lambda x: x.clamp(0.0, 1.0), [0.0, 1.0, 2.0]),
    ("abs_at_zero", lambda x: x.abs(), [0.0, -1.0]),
    ("prod_with_zeros", lambda x: x.prod(), [0.0, 0.0, 2.0]),
    ("prod_with_one_zero", lambda x: x.prod(), [0.0, 3.0, 2.0]),
]


@pytest.mark.parametrize("fn,values", [(f, v) for _, f, v in EDGE_GRADIENTS], ids=[n for n, _, _ in EDGE_GRADIENTS])
def test_gradients_at_edge_points_match_torch(fn, values):
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (disttorch, torch):
        x = lib.tensor(values, requires_grad=True)
        fn(x).sum().backward()
        grads.append(x.grad.tolist())
    np.testing.assert_allclose(grads[0], grads[1])


def test_inplace_through_view_of_non_contiguous_root():
    torch = pytest.importorskip("torch")
    results = []
    for lib in (disttorch, torch):
        x = lib.tensor([[1.0, -2.0, 3.0], [0.5, 2.0, -1.0]], requires_grad=True)
        # A transposed buffer with no base: its memory order is not its index order.
        root = lib.from_numpy(np.zeros((3, 2), dtype=np.float32).T)
        root.copy_(x * 2)
        root[1, 1:].mul_(3.0)
        (root * root).sum().backward()
        results.append((root.tolist(), x.grad.tolist()))
    np.testing.assert_allclose(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1])


def _sum_twice(lib, x):
    x.sum().backward()
    x.sum().backward()


def _mean_then_mean_dim(lib, x):
    x.mean().backward()
    x.mean(1).sum().backward()


def _add_leaves_then_edit_one(lib, x):
    other = lib.zeros(x.shape, requires_grad=True)
    (x + other).sum().backward()
    x.grad.add_(10.0)
    return other.grad


def _leaf_root_with_given_gradient(lib, x):
    given = lib.ones(x.shape)
    x.backward(given)
    x.grad.add_(5.0)
    return given


def _hook_keeps_gradient(lib, x):
    kept = []
    y = x * 2
    y.register_hook(kept.append)
    y.sum().backward()
    x.grad.add_(1.0)
    return kept[0]


def _expand_twice(lib, x):
    x[:, :1].expand(2, 4).sum().backward()
    x.sum().backward()
    x.grad.mul_(2)


ALIASING = [_sum_twice, _mean_then_mean_dim, _add_leaves_then_edit_one, _leaf_root_with_given_gradient,
            _hook_keeps_gradient, _expand_twice]


@pytest.mark.parametrize("scenario", ALIASING, ids=[f.__name__.strip("_") for f in ALIASING])
def test_grad_buffers_never_alias_other_arrays(scenario):
    """.grad may adopt a temporary, but must never share memory with anything the user or the graph sees."""
    torch = pytest.importorskip("torch")
    results = []
    for lib in (disttorch, torch):
        x = lib.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], requires_grad=True)
        other = scenario(lib, x)
        results.append((x.grad.tolist(), None if other is None else other.tolist()))
    assert results[0] == results[1]


def test_grad_modes_as_bare_decorators():
    x = _leaf()

    @disttorch.no_grad
    def doubled(t):
        return t * 2

    @disttorch.enable_grad
    def tripled(t):
        return t * 3

    @disttorch.inference_mode
    def halved(t):
        return t * 0.5

    assert not doubled(x).requires_grad and not halved(x).requires_grad
    with disttorch.no_grad():
        assert tripled(x).requires_grad
    assert doubled.__name__ == "doubled"


def test_reshape_that_copies_is_not_a_view():
    x = _leaf((1.0, 2.0, 3.0, 4.0, 5.0, 6.0))
    y = x.reshape(2, 3) * 1
    copied = y.t().reshape(-1)  # not expressible as a view, so reshape copies
    z = y.sin()
    copied.add_(1.0)
    z.sum().backward()
    assert y.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    np.testing.assert_allclose(x.grad.numpy(), np.cos(np.arange(1.0, 7.0)), rtol=1e-6)


def test_fan_in_accumulation_never_writes_through_a_shared_gradient():
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (disttorch, torch):
        p = lib.tensor(np.linspace(0.0, 3.0, 5000), requires_grad=True)  # big enough to be summed in place
        a, b = p * 1.0, p * 2.0
        h = a + b  # add's backward hands one array to both a and b, which each get more gradient later
        ((a * 5.0 + b * 7.0) + h).sin().sum().backward()
        grads.append(p.grad.numpy().copy())
    np.testing.assert_allclose(grads[0], grads[1])


@pytest.mark.parametrize("case", ["split_pieces", "pieces_and_whole", "shared_with_another_edge", "hooked_piece"])
def test_gradients_of_index_pieces_match_torch(case):
    # x[index]'s backward hands the engine a gradient zero outside the piece; pieces of one tensor must add up
    # exactly as dense gradients would, without writing into a gradient another edge still holds.
    torch = pytest.importorskip("torch")
    data = np.random.default_rng(0).standard_normal((2, 3, 9))

    def run(lib, x):
        t = x * 1.5
        q, k, v = t.split(3, dim=2)
        if case == "split_pieces":
            return (q * 2).sum() + (v ** 2).sum()
        if case == "pieces_and_whole":
            return (k * q).sum() + (t ** 2).sum() + t.unbind(0)[1].sum() + t.chunk(3, dim=2)[2].sum()
        if case == "shared_with_another_edge":
            w = x * 2.0
            return ((t + w) ** 2).sum() + (t[0] * 3).sum() + (w[:, 1] * 5).sum()
        q.register_hook(lambda g: g * 10)
        return (q + k).sum()

    ours = disttorch.tensor(data, requires_grad=True)
    ref = torch.tensor(data, requires_grad=True)
    run(disttorch, ours).backward()
    run(torch, ref).backward()
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-12, atol=1e-12)
