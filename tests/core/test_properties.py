"""Property tests (hypothesis): broadcasting binary ops and reductions against numpy on random shapes."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import disttorch

SETTINGS = settings(max_examples=40, deadline=None, database=None)

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (disttorch.maximum, np.maximum),
}


def _values(shape, seed, low=0.5, high=2.0):
    """Positive values keep div well away from zero; the sign is randomised per element."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2**16))
def test_broadcast_binary_forward_and_gradient_shapes(shapes, op, seed):
    ours, reference = BINARY[op]
    a_np, b_np = _values(shapes.input_shapes[0], seed), _values(shapes.input_shapes[1], seed + 1)
    a = disttorch.tensor(a_np, requires_grad=True)
    b = disttorch.tensor(b_np, requires_grad=True)
    out = ours(a, b)
    expected = reference(a_np, b_np)
    assert out.shape == expected.shape == shapes.result_shape
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12)

    out.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    if op == "add":
        # Each input element was used once per broadcast copy, so its gradient counts the copies.
        copies_a = np.prod(shapes.result_shape, dtype=np.int64) // max(a_np.size, 1)
        np.testing.assert_allclose(a.grad.numpy(), np.full(a_np.shape, float(copies_a)))
        np.testing.assert_allclose(b.grad.sum().item(), float(np.prod(shapes.result_shape)))


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_broadcast_mul_gradient_equals_summed_numpy_gradient(shapes, seed):
    a_np, b_np = _values(shapes.input_shapes[0], seed), _values(shapes.input_shapes[1], seed + 1)
    a = disttorch.tensor(a_np, requires_grad=True)
    b = disttorch.tensor(b_np, requires_grad=True)
    (a * b).sum().backward()
    full_b = np.broadcast_to(b_np, shapes.result_shape)
    lead = len(shapes.result_shape) - a_np.ndim
    summed = full_b.sum(axis=tuple(range(lead)))
    summed = summed.sum(axis=tuple(i for i, s in enumerate(a_np.shape) if s == 1), keepdims=True)
    np.testing.assert_allclose(a.grad.numpy(), summed.reshape(a_np.shape), rtol=1e-12)


@st.composite
def array_and_dims(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    dims = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                         unique_by=lambda d: d % len(shape)))
    return shape, tuple(dims), draw(st.booleans()), draw(st.integers(0, 2**16))


REDUCTIONS = {
    "sum": (lambda t, d, k: t.sum(dim=d, keepdim=k), lambda a, d, k: a.sum(axis=d, keepdims=k)),
    "mean": (lambda t, d, k: t.mean(dim=d, keepdim=k), lambda a, d, k: a.mean(axis=d, keepdims=k)),
    "amax": (lambda t, d, k: t.amax(dim=d, keepdim=k), lambda a, d, k: a.max(axis=d, keepdims=k)),
    "amin": (lambda t, d, k: t.amin(dim=d, keepdim=k), lambda a, d, k: a.min(axis=d, keepdims=k)),
    "var": (lambda t, d, k: t.var(dim=d, keepdim=k, correction=0), lambda a, d, k: a.var(axis=d, keepdims=k)),
    "logsumexp": (lambda t, d, k: t.logsumexp(dim=d, keepdim=k),
                  lambda a, d, k: np.log(np.exp(a).sum(axis=d, keepdims=k))),
}


@SETTINGS
@given(case=array_and_dims(), name=st.sampled_from(sorted(REDUCTIONS)))
def test_multi_dim_reductions_match_numpy(case, name):
    shape, dims, keepdim, seed = case
    ours, reference = REDUCTIONS[name]
    data = _values(shape, seed)
    x = disttorch.tensor(data, requires_grad=True)
    out = ours(x, dims, keepdim)
    expected = reference(data, dims, keepdim)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert x.grad.shape == x.shape


@SETTINGS
@given(case=array_and_dims())
def test_single_dim_reductions_match_numpy(case):
    shape, dims, keepdim, seed = case
    dim = dims[0]
    data = _values(shape, seed)
    x = disttorch.tensor(data)
    np.testing.assert_allclose(x.prod(dim=dim, keepdim=keepdim).numpy(), data.prod(axis=dim, keepdims=keepdim))
    values, indices = x.max(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(values.numpy(), data.max(axis=dim, keepdims=keepdim))
    np.testing.assert_array_equal(indices.numpy(), np.argmax(data, axis=dim, keepdims=keepdim))
    np.testing.assert_allclose(x.cumsum(dim).numpy(), data.cumsum(axis=dim))
    np.testing.assert_allclose(x.softmax(dim).sum(dim).numpy(), np.ones(np.delete(shape, dim % len(shape))))
