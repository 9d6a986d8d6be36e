"""linear and bilinear: one fused graph node each (matmul + bias with a hand-written backward)."""
from ...core.autocast_state import lower_precision
from ...core.autograd import Function
from ...core.backend import get_array_module


class Linear(Function):
    """y = x @ W.T + b over the last axis of x (any leading shape)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        out = x2 @ weight.T
        if bias is not None:
            out += bias
        ctx.save_for_backward(x2, weight)
        ctx.x_shape = x.shape
        ctx.has_bias = bias is not None
        if out.dtype != x.dtype:
            out = out.astype(x.dtype)  # numpy's matmul of ml_dtypes' bfloat16 gives float32; torch keeps bfloat16
        return out if x.ndim == 2 else out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x2, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = grad if grad.ndim == 2 else grad.reshape(-1, grad.shape[-1])
        grad_x = (g2 @ weight).reshape(ctx.x_shape) if need_x else None
        grad_w = g2.T @ x2 if need_w else None
        grad_b = _column_sums(g2) if need_b else None
        return grad_x, grad_w, grad_b


def _column_sums(a):
    """a.sum(axis=0); for float32/float64 as a vector-matrix product, which BLAS runs several times faster than
    NumPy's reduction over rows."""
    if a.dtype.kind != "f" or a.dtype.itemsize < 4:
        return a.sum(axis=0)
    return get_array_module(a).ones(a.shape[0], dtype=a.dtype) @ a


def _dtype_name(t):
    return t.dtype.name.capitalize()


@lower_precision
def linear(input, weight, bias=None):
    """y = input @ weight.T + bias."""
    x, w = input._data, weight._data
    in_features = w.shape[-1]
    if x.ndim == 0 or x.shape[-1] != in_features:
        cols = x.shape[-1] if x.ndim else 1
        rows = x.size // cols if cols else 0
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{cols} and "
                           f"{in_features}x{w.shape[0]}); the input's last dimension must equal "
                           f"in_features={in_features}")
    if x.dtype != w.dtype:
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {_dtype_name(input)} and "
                           f"{_dtype_name(weight)}")
    return Linear.apply(input, weight, bias)


class Bilinear(Function):
    """y_k = x1 @ W_k @ x2 + b_k for x1 (N, in1), x2 (N, in2), W (out, in1, in2)."""

    @staticmethod
    def forward(ctx, x1, x2, weight, bias):
        einsum = get_array_module(x1).einsum
        out = einsum("ni,kij,nj->nk", x1, weight, x2, optimize=True)
        if bias is not None:
            out += bias
        ctx.save_for_backward(x1, x2, weight)
        ctx.einsum = einsum
        return out

    @staticmethod
    def backward(ctx, grad):
        x1, x2, weight = ctx.saved_tensors
        einsum = ctx.einsum
        need_x1, need_x2, need_w, need_b = ctx.needs_input_grad
        grad_x1 = einsum("nk,kij,nj->ni", grad, weight, x2, optimize=True) if need_x1 else None
        grad_x2 = einsum("nk,kij,ni->nj", grad, weight, x1, optimize=True) if need_x2 else None
        grad_w = einsum("nk,ni,nj->kij", grad, x1, x2, optimize=True) if need_w else None
        grad_b = grad.sum(axis=0) if need_b else None
        return grad_x1, grad_x2, grad_w, grad_b


@lower_precision
def bilinear(input1, input2, weight, bias=None):
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {list(input1.shape[:-1])} "
                           f"and {list(input2.shape[:-1])}")
    lead = input1.shape[:-1]
    x1 = input1.reshape(-1, input1.shape[-1])
    x2 = input2.reshape(-1, input2.shape[-1])
    out = Bilinear.apply(x1, x2, weight, bias)
    return out.reshape(*lead, weight.shape[0])
