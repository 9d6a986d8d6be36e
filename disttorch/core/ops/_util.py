"""Helpers shared by the op modules: undo broadcasting, normalise dims, promote operands."""
import numpy as np

from .. import autograd
from .. import dtype as dt


def sum_to(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (the single place that does so)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, size in enumerate(shape) if size == 1 and grad.shape[i + lead] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if lead:
        grad = grad.reshape(shape)
    return grad


def normalize_dim(dim, ndim, op="op"):
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-size}, {size - 1}], but got {dim})"
        )
    return dim % size


def normalize_dims(dim, ndim):
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(sorted(normalize_dim(d, ndim) for d in dim))
    return (normalize_dim(dim, ndim),)


def broadcast_error(op, a_shape, b_shape):
    """PyTorch's wording for incompatible shapes, naming the op and both shapes."""
    a, b = list(a_shape), list(b_shape)
    for i in range(1, max(len(a), len(b)) + 1):
        sa = a[-i] if i <= len(a) else 1
        sb = b[-i] if i <= len(b) else 1
        if sa != sb and sa != 1 and sb != 1:
            dim = max(len(a), len(b)) - i
            return RuntimeError(
                f"{op}: the size of tensor a ({sa}) must match the size of tensor b ({sb}) at "
                f"non-singleton dimension {dim} (shapes {a} and {b})"
            )
    return RuntimeError(f"{op}: shapes {a} and {b} cannot be broadcast together")


def check_same_device(op, a, b):
    if a.device != b.device:
        raise RuntimeError(
            f"{op}: expected all tensors to be on the same device, but found at least two devices, "
            f"{a.device} and {b.device}!"
        )


def promote_operands(a, b):
    """Apply PyTorch's type promotion to a binary op's operands (tensors or Python scalars)."""
    Tensor = autograd.Tensor
    a_is_t = isinstance(a, Tensor)
    b_is_t = isinstance(b, Tensor)
    if a_is_t and b_is_t:
        da, db = a._data.dtype, b._data.dtype
        if da == db:
            return a, b
        ta, tb = dt.from_numpy(da), dt.from_numpy(db)
        a_scalar, b_scalar = a._data.ndim == 0, b._data.ndim == 0
        if a_scalar == b_scalar:
            target = dt.promote(ta, tb)
        elif a_scalar:
            target = dt.promote_with_scalar(tb, ta._category)
        else:
            target = dt.promote_with_scalar(ta, tb._category)
        return (a if ta is target else a.to(target)), (b if tb is target else b.to(target))
    # NumPy operands take part as tensors, NumPy scalars as Python scalars, as in PyTorch.
    if isinstance(a, np.ndarray):
        return promote_operands(Tensor._wrap(a), b)
    if isinstance(b, np.ndarray):
        return promote_operands(a, Tensor._wrap(b))
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    if a_is_t:
        return _with_scalar(a, b), b
    if b_is_t:
        return a, _with_scalar(b, a)
    raise TypeError("expected at least one tensor operand")


def _with_scalar(tensor, scalar):
    kind = tensor._data.dtype.kind
    if isinstance(scalar, bool):
        return tensor
    if isinstance(scalar, float) and kind in "biu":
        return tensor.to(dt.get_default_dtype())
    if isinstance(scalar, int) and kind == "b":
        return tensor.to(dt.int64)
    if not isinstance(scalar, (int, float)):
        raise TypeError(f"unsupported operand type for a tensor op: {type(scalar).__name__}")
    return tensor


def scalar_as_array(xp, value, like):
    """A Python scalar as a 0-d array of `like`'s dtype (so NumPy does not widen the result)."""
    return xp.asarray(value, dtype=like.dtype)
