"""Matrix products: matmul (with batching and broadcasting), mm, bmm, dot."""
from .. import autograd
from ..autograd import Function
from ..backend import get_array_module
from ._util import check_same_device, sum_to


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        xp = get_array_module(g)
        # 1-d operands are promoted to matrices for the products, then the added dim is dropped.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = xp.expand_dims(g, -1)
        if a.ndim == 1:
            g = xp.expand_dims(g, -2)
        ga = gb = None
        if need_a:
            ga = g @ xp.swapaxes(b2, -1, -2)
            ga = sum_to(ga, a2.shape).reshape(a.shape)
        if need_b:
            if b2.ndim == 2 and g.ndim > 2:
                # Batched input times a shared matrix: fold the batch into rows for one BLAS call.
                gb = a2.reshape(-1, a2.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gb = sum_to(xp.swapaxes(a2, -1, -2) @ g, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


def _check_operands(name, a, b):
    Tensor = autograd.Tensor
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{name}(): arguments must be Tensors, got {type(a).__name__} and {type(b).__name__}")
    check_same_device(name, a, b)
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(
            f"{name}: expected both operands to have the same dtype, but got {a.dtype} and {b.dtype}. "
            "Cast one with .to(dtype)."
        )


def matmul(a, b):
    _check_operands("matmul", a, b)
    sa, sb = a._data.shape, b._data.shape
    if a._data.ndim == 0 or b._data.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {len(sa)}D and {len(sb)}D")
    inner_a = sa[-1]
    inner_b = sb[0] if len(sb) == 1 else sb[-2]
    if inner_a != inner_b:
        if len(sa) <= 2 and len(sb) <= 2:
            raise RuntimeError(
                f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, sa if len(sa) == 2 else (1,) + sa))} "
                f"and {'x'.join(map(str, sb if len(sb) == 2 else sb + (1,)))})"
            )
        raise RuntimeError(f"matmul: shapes {list(sa)} and {list(sb)} cannot be multiplied (inner sizes {inner_a} != {inner_b})")
    try:
        return Matmul.apply(a, b)
    except ValueError:
        raise RuntimeError(f"matmul: batch dimensions of {list(sa)} and {list(sb)} cannot be broadcast") from None


def mm(a, b):
    _check_operands("mm", a, b)
    if a._data.ndim != 2 or b._data.ndim != 2:
        raise RuntimeError(f"mm: expected 2D tensors, got {a._data.ndim}D and {b._data.ndim}D")
    return matmul(a, b)


def bmm(a, b):
    _check_operands("bmm", a, b)
    if a._data.ndim != 3 or b._data.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor, got {a._data.ndim}D and {b._data.ndim}D")
    if a._data.shape[0] != b._data.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {a._data.shape[0]} and {b._data.shape[0]}")
    return matmul(a, b)


def dot(a, b):
    _check_operands("dot", a, b)
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D tensors")
    if a._data.shape != b._data.shape:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{a._data.shape[0]}] and src [{b._data.shape[0]}] "
            "to have the same number of elements, but got different"
        )
    return matmul(a, b)

