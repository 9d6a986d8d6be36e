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
