"""Activation functions; each elementwise op with a non-trivial derivative is one Function."""
import math
import warnings

import numpy as np

from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.ops import elementwise as ew
from ...core.ops import reduction as rd
from ...core.ops.shape import split as _split

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_COEF = 0.044715

# erf(x) = x * sum_n c_n x^(2n) with c_n = 2/sqrt(pi) * (-1)^n / (n! (2n+1)); below |x| = 3 fifty terms
# reach double precision (the largest term is ~3e3, so cancellation costs under four digits).
_ERF_SERIES_LIMIT = 3.0
_ERF_SERIES = [2.0 / _SQRT_PI * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(50)]
_ERFC_FRACTION_DEPTH = 60


def erf_array(x):
    """The error function on an ndarray (numpy or cupy), accurate to double precision, in x's dtype."""
    xp = get_array_module(x)
    z = x.astype(np.float64)
    out = xp.empty_like(z)
    small = xp.abs(z) < _ERF_SERIES_LIMIT
    out[small] = _erf_series(xp, z[small])
    large = ~small
    if large.any():
        out[large] = _erf_tail(xp, z[large])
    return out.astype(x.dtype, copy=False)


def _erf_series(xp, z):
    t = z * z
    acc = xp.full_like(z, _ERF_SERIES[-1])
    for coef in reversed(_ERF_SERIES[:-1]):
        acc *= t
        acc += coef
    return z * acc


def _erf_tail(xp, z):
    # Continued fraction erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))),
    # converging fast for a >= 3 where erfc is below 3e-5.
    a = xp.abs(z)
    frac = a.copy()
    for k in range(_ERFC_FRACTION_DEPTH, 0, -1):
        frac = a + (k / 2.0) / frac
    erfc = xp.exp(-a * a) / (_SQRT_PI * frac)
    return xp.sign(z) * (1.0 - erfc)


class Erf(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return erf_array(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = get_array_module(x)
        return grad * (2.0 / _SQRT_PI) * xp.exp(-x * x)


def erf(input):
    return Erf.apply(ew._float_input(input))


class Gelu(Function):
    @staticmethod
    def forward(ctx, x, approximate):
        xp = get_array_module(x)
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_COEF * x * x * x)
            return (0.5 * x * (1.0 + xp.tanh(inner))).astype(x.dtype, copy=False)
        return (0.5 * x * (1.0 + erf_array(x / _SQRT_2))).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xp = get_array_module(x)
        if ctx.approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_COEF * x * x * x)
            t = xp.tanh(inner)
            d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_COEF * x * x)
            local = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
        else:
            cdf = 0.5 * (1.0 + erf_array(x / _SQRT_2))
            pdf = xp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
            local = cdf + x * pdf
        return (grad * local).astype(x.dtype, copy=False), None


class LeakyRelu(Function):
    @staticmethod
    def forward(ctx, x, slope):
        xp = get_array_module(x)
        positive = x > 0
        ctx.save_for_backward(positive)
        ctx.slope = slope
        return xp.where(positive, x, x * x.dtype.type(slope))

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved_tensors
        xp = get_array_module(grad)
        return xp.where(positive, grad, grad * grad.dtype.type(ctx.slope)), None


class Elu(Function):
    @staticmethod
    def forward(ctx, x, alpha, scale):
        xp = get_array_module(x)
        positive = x > 0
        negative_part = alpha * xp.expm1(xp.minimum(x, 0))
        out = (scale * xp.where(positive, x, negative_part)).astype(x.dtype, copy=False)
        ctx.save_for_backward(positive, negative_part)
        ctx.alpha_scale = (alpha, scale)
        return out

    @staticmethod
    def backward(ctx, grad):
        positive, negative_part = ctx.saved_tensors
        alpha, scale = ctx.alpha_scale
        xp = get_array_module(grad)
        local = scale * xp.where(positive, 1.0, negative_part + alpha)
        return (grad * local).astype(grad.dtype, copy=False), None, None


class Silu(Function):
    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        sig = (0.5 * (xp.tanh(0.5 * x) + 1)).astype(x.dtype, copy=False)
        ctx.save_for_backward(x, sig)
        return x * sig

    @staticmethod
    def backward(ctx, grad):
        x, sig = ctx.saved_tensors
        return grad * sig * (1 + x * (1 - sig))


class Softplus(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = get_array_module(x)
        scaled = x * beta
        linear = scaled > threshold
        # log1p(exp(s)) = max(s, 0) + log1p(exp(-|s|)) never overflows.
        soft = (xp.maximum(scaled, 0) + xp.log1p(xp.exp(-xp.abs(scaled)))) / beta
        ctx.save_for_backward(scaled, linear)
        return xp.where(linear, x, soft).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        scaled, linear = ctx.saved_tensors
        xp = get_array_module(grad)
        sig = 0.5 * (xp.tanh(0.5 * scaled) + 1)
        return xp.where(linear, grad, grad * sig).astype(grad.dtype, copy=False), None, None


def _maybe_inplace(input, op, inplace):
    """op(input), or with inplace=True written back into input (recorded on a snapshot when grad is on)."""
    return input._inplace(op) if inplace else op(input)


def relu(input, inplace=False):
    return input.relu_() if inplace else ew.relu(input)


def relu_(input):
    return input.relu_()


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _maybe_inplace(input, lambda x: LeakyRelu.apply(x, negative_slope), inplace)


def elu(input, alpha=1.0, inplace=False):
    return _maybe_inplace(input, lambda x: Elu.apply(x, alpha, 1.0), inplace)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    return _maybe_inplace(input, lambda x: Elu.apply(x, _SELU_ALPHA, _SELU_SCALE), inplace)


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise ValueError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _maybe_inplace(input, lambda x: Elu.apply(x / alpha, 1.0, 1.0) * alpha, inplace)


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate argument must be either none or tanh, got '{approximate}'")
    return Gelu.apply(input, approximate)


def silu(input, inplace=False):
    return _maybe_inplace(input, lambda x: Silu.apply(x), inplace)


def mish(input, inplace=False):
    return _maybe_inplace(input, lambda x: x * ew.tanh(softplus(x)), inplace)


def sigmoid(input):
    return ew.sigmoid(input)


def tanh(input):
    return ew.tanh(input)


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta, threshold)


def logsigmoid(input):
    return -Softplus.apply(-input, 1.0, 20.0)


def softsign(input):
    return input / (ew.abs(input) + 1)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(input, lambda x: ew.clamp(x, min_val, max_val), inplace)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace=False):
    return _maybe_inplace(input, lambda x: ew.clamp(x / 6 + 0.5, 0.0, 1.0), inplace)


def hardswish(input, inplace=False):
    return _maybe_inplace(input, lambda x: x * ew.clamp(x / 6 + 0.5, 0.0, 1.0), inplace)


def threshold(input, threshold, value, inplace=False):
    return _maybe_inplace(input, lambda x: ew.where(x > threshold, x, value), inplace)


def hardshrink(input, lambd=0.5):
    return ew.where(ew.abs(input) > lambd, input, 0.0)


def softshrink(input, lambd=0.5):
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return ew.where(input > lambd, input - lambd, ew.where(input < -lambd, input + lambd, 0.0))


def tanhshrink(input):
    return input - ew.tanh(input)


def prelu(input, weight):
    if weight.numel() != 1 and (input.dim() < 2 or input.shape[1] != weight.numel()):
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                           f"{weight.numel()} and channel size = {input.shape[1] if input.dim() > 1 else 1}.")
    if weight.numel() == 1:
        slope = weight.reshape(())
    else:
        slope = weight.reshape(-1, *([1] * (input.dim() - 2)))
    return ew.clamp(input, min=0.0) + slope * ew.clamp(input, max=0.0)


def glu(input, dim=-1):
    if input.shape[dim] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.dim()} is size "
                           f"{input.shape[dim]}")
    a, b = _split(input, input.shape[dim] // 2, dim)
    return a * ew.sigmoid(b)


def _softmax_dim(ndim):
    warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call to include dim=X "
                  "as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _softmax_dim(input.dim())
    return rd.softmax(input, dim, dtype=dtype)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _softmax_dim(input.dim())
    return rd.softmax(-input, dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _softmax_dim(input.dim())
    return rd.log_softmax(input, dim, dtype=dtype)
