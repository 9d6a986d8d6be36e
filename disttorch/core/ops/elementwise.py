"""Elementwise ops with broadcasting; each Function holds its forward and backward."""
import numpy as np

from .. import autograd
from ..autograd import Function
from ..backend import get_array_module
from ._util import broadcast_error, check_same_device, promote_operands, sum_to


def _shape(x):
    return getattr(x, "shape", ())


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(g, sa) if need_a else None), (sum_to(g, sb) if need_b else None)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        return (sum_to(g, sa) if need_a else None), (sum_to(-g, sb) if need_b else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        # Each gradient needs only the other factor; saving just that (as PyTorch does) leaves the
        # unneeded one free to be edited in place before backward.
        ctx.save_for_backward(a if need_b else None, b if need_a else None)
        ctx.shapes = (_shape(a), _shape(b))
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (sum_to(g * b, sa) if need_a else None), (sum_to(g * a, sb) if need_b else None)


def _is_integral(x):
    """Integer or bool array, or a Python int/bool scalar."""
    dtype = getattr(x, "dtype", None)
    return dtype.kind in "biu" if dtype is not None else not isinstance(x, float)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if _is_integral(a) and _is_integral(b):
            return np.true_divide(a, b).astype(np.float32)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(g / b, _shape(a)) if need_a else None
        gb = sum_to(-g * a / (b * b), _shape(b)) if need_b else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = gb = None
        if need_a:
            # a**0 is constant, so its gradient is 0, also at a == 0 where b * a**(b - 1) is 0 * inf.
            base = get_array_module(a).where(b == 0, 1, a)
            ga = sum_to(g * b * base ** (b - 1), _shape(a))
        if need_b:
            xp = get_array_module(out)
            safe_log = xp.log(xp.where(a > 0, a, 1))  # the limit of a**b * log(a) at a == 0 is 0
            gb = sum_to(g * out * safe_log, _shape(b))
        return ga, gb


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return get_array_module(a).maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        # Ties split the gradient evenly, as PyTorch does.
        wa = (a > b) + 0.5 * (a == b)
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(g * wa, _shape(a)).astype(g.dtype, copy=False) if need_a else None
        gb = sum_to(g * (1 - wa), _shape(b)).astype(g.dtype, copy=False) if need_b else None
        return ga, gb


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return get_array_module(a).minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        wa = (a < b) + 0.5 * (a == b)
        need_a, need_b = ctx.needs_input_grad
        ga = sum_to(g * wa, _shape(a)).astype(g.dtype, copy=False) if need_a else None
        gb = sum_to(g * (1 - wa), _shape(b)).astype(g.dtype, copy=False) if need_b else None
        return ga, gb


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        ctx.shapes = (_shape(a), _shape(b))
        return get_array_module(cond).where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        _, need_a, need_b = ctx.needs_input_grad
        xp = get_array_module(g)
        zero = g.dtype.type(0)
        ga = sum_to(xp.where(ctx.cond, g, zero), ctx.shapes[0]) if need_a else None
        gb = sum_to(xp.where(ctx.cond, zero, g), ctx.shapes[1]) if need_b else None
        return None, ga, gb


def _binary(cls, name, a, b):
    a, b = promote_operands(a, b)
    Tensor = autograd.Tensor
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if type(a._data) is not type(b._data):
            check_same_device(name, a, b)
        try:
            return cls.apply(a, b)
        except ValueError:
            raise broadcast_error(name, a.shape, b.shape) from None
    return cls.apply(a, b)


def add(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    return _binary(Add, "add", a, b)


def sub(a, b, alpha=1):
    if alpha != 1:
        b = mul(b, alpha)
    return _binary(Sub, "sub", a, b)


def mul(a, b):
    return _binary(Mul, "mul", a, b)


def div(a, b, rounding_mode=None):
    if rounding_mode is None:
        return _binary(Div, "div", a, b)
    Tensor = autograd.Tensor
    a, b = promote_operands(a, b)
    xa = a._data if isinstance(a, Tensor) else a
    xb = b._data if isinstance(b, Tensor) else b
    if rounding_mode == "floor":
        return Tensor._wrap(np.floor_divide(xa, xb))
    if rounding_mode == "trunc":
        out = np.trunc(np.true_divide(xa, xb))
        kind = np.result_type(xa, xb).kind
        return Tensor._wrap(out.astype(np.result_type(xa, xb)) if kind in "iu" else out)
    raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")


def pow(a, b):
    return _binary(Pow, "pow", a, b)


def maximum(a, b):
    return _binary(Maximum, "maximum", a, b)


def minimum(a, b):
    return _binary(Minimum, "minimum", a, b)


def where(condition, input=None, other=None):
    """where(condition, input, other) picks elementwise; where(condition) is nonzero(as_tuple=True)."""
    Tensor = autograd.Tensor
    if not isinstance(condition, Tensor):
        raise TypeError("where(): argument 'condition' must be a Tensor")
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if input is None or other is None:
        raise TypeError("where() expected both input and other, or neither")
    a, b = input, other
    if condition._data.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype {condition.dtype}")
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        a, b = promote_operands(a, b)
    else:
        a = Tensor._wrap(np.asarray(a, dtype=np.float32 if isinstance(a, float) else None))
    try:
        return Where.apply(condition, a, b)
    except ValueError:
        raise broadcast_error("where", condition.shape, getattr(a, "shape", ())) from None


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * get_array_module(x).sign(x)


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * get_array_module(x).cos(x)


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).cos(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -g * get_array_module(x).sin(x)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1 - out * out)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        # Written via tanh so large negative inputs do not overflow exp().
        out = 0.5 * (xp.tanh(0.5 * x) + 1)
        out = out.astype(x.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out * (1 - out)


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        # Gradient 0 at x == 0, matching PyTorch's relu.
        return g * (out > 0)


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.bounds = (lo, hi)
        return get_array_module(x).clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        mask = True
        if lo is not None:
            mask = x >= lo
        if hi is not None:
            mask = mask & (x <= hi)
        return g * mask, None, None


class Cast(Function):
    @staticmethod
    def forward(ctx, x, np_dtype):
        ctx.src = x.dtype
        return x.astype(np_dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.src), None


def _float_input(x):
    if x._data.dtype.kind in "biu":
        from .. import dtype as dt
        return x.to(dt.get_default_dtype())
    return x


def neg(x):
    if x._data.dtype == np.bool_:
        raise RuntimeError(
            "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a "
            "mask, use the `~` or `logical_not()` operator instead.")
    return Neg.apply(x)


def exp(x):
    return Exp.apply(_float_input(x))


def log(x):
    return Log.apply(_float_input(x))


def sqrt(x):
    return Sqrt.apply(_float_input(x))


def abs(x):
    return Abs.apply(x)


def sin(x):
    return Sin.apply(_float_input(x))


def cos(x):
    return Cos.apply(_float_input(x))


def tanh(x):
    return Tanh.apply(_float_input(x))


def sigmoid(x):
    return Sigmoid.apply(_float_input(x))


def relu(x):
    return Relu.apply(x)


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    Tensor = autograd.Tensor
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    if x._data.dtype.kind in "biu" and (isinstance(min, float) or isinstance(max, float)):
        x = _float_input(x)
    return Clamp.apply(x, min, max)


def cast(x, np_dtype):
    return Cast.apply(x, np_dtype)


class Log1p(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).log1p(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (1 + x)


class Expm1(Function):
    @staticmethod
    def forward(ctx, x):
        out = get_array_module(x).expm1(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (out + 1)


class LogBase(Function):
    """log2 and log10: log(x) / log(base)."""

    @staticmethod
    def forward(ctx, x, base):
        ctx.save_for_backward(x)
        ctx.log_base = np.log(base)
        xp = get_array_module(x)
        return xp.log2(x) if base == 2 else xp.log10(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (x * ctx.log_base), None


class Sinh(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).sinh(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * get_array_module(x).cosh(x)


class Cosh(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return get_array_module(x).cosh(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * get_array_module(x).sinh(x)


class Atan2(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return get_array_module(a).arctan2(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        scale = g / (a * a + b * b)
        return (sum_to(scale * b, _shape(a)) if need_a else None), (sum_to(-scale * a, _shape(b)) if need_b else None)


def log1p(x):
    return Log1p.apply(_float_input(x))


def expm1(x):
    return Expm1.apply(_float_input(x))


def log2(x):
    return LogBase.apply(_float_input(x), 2)


def log10(x):
    return LogBase.apply(_float_input(x), 10)


def sinh(x):
    return Sinh.apply(_float_input(x))


def cosh(x):
    return Cosh.apply(_float_input(x))


def atan2(a, b):
    Tensor = autograd.Tensor
    a, b = (_float_input(v) if isinstance(v, Tensor) else v for v in promote_operands(a, b))
    return _binary(Atan2, "atan2", a, b)


def _no_grad_result(array):
    return autograd.Tensor._wrap(array)


def trunc(x):
    """Piecewise constant, so its gradient is zero: the result carries no history (as torch's zero grad)."""
    return _no_grad_result(get_array_module(x._data).trunc(x._data))


def floor_divide(a, b):
    return div(a, b, rounding_mode="floor")


def remainder(a, b):
    """a - floor(a / b) * b, Python's sign convention; written with differentiable ops for the gradient."""
    return sub(a, mul(floor_divide(a, b), b))


def fmod(a, b):
    """a - trunc(a / b) * b, C's sign convention (the result takes a's sign)."""
    return sub(a, mul(div(a, b, rounding_mode="trunc"), b))


def frac(x):
    return sub(x, trunc(x))


def lerp(start, end, weight):
    return add(start, mul(weight, sub(end, start)))


def clamp_min(x, min):
    return clamp(x, min=min)


def clamp_max(x, max):
    return clamp(x, max=max)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """Built from where(), so replaced elements get a zero gradient and the rest pass theirs through."""
    Tensor = autograd.Tensor
    if x._data.dtype.kind != "f":
        return x.clone()
    info = np.finfo(x._data.dtype)
    xp = get_array_module(x._data)
    out = x
    for mask, value in ((xp.isnan(x._data), nan), (xp.isposinf(x._data), info.max if posinf is None else posinf),
                        (xp.isneginf(x._data), info.min if neginf is None else neginf)):
        if mask.any():
            out = where(Tensor._wrap(mask), Tensor._wrap(xp.asarray(value, dtype=x._data.dtype)), out)
    return out if out is not x else x.clone()


def _logical(fn):
    def op(a, b):
        Tensor = autograd.Tensor
        xa = a._data if isinstance(a, Tensor) else a
        xb = b._data if isinstance(b, Tensor) else b
        return Tensor._wrap(fn(xa, xb))
    return op


logical_and = _logical(np.logical_and)
logical_or = _logical(np.logical_or)
logical_xor = _logical(np.logical_xor)
