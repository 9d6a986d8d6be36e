"""Activation functions; each elementwise op with a non-trivial derivative is one Function."""
import math
import warnings

import numpy as np

from ...core import grad_mode
from ...core.autograd import Function
from ...core.backend import get_array_module
from ...core.ops import elementwise as ew
from ...core.ops import reduction as rd
from ...core.ops.shape import split as _split

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_COEF = 0.044715

# Double precision: erf(x) = x * sum_n c_n x^(2n) with c_n = 2/sqrt(pi) * (-1)^n / (n! (2n+1)); below |x| = 3
# fifty terms reach double precision (the largest term is ~3e3, so cancellation costs under four digits).
_ERF_SERIES_LIMIT = 3.0
_ERF_SERIES = [2.0 / _SQRT_PI * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(50)]
_ERFC_FRACTION_DEPTH = 60


def _monic(p, q):
    """(P, Q) rescaled so that Q's leading coefficient is 1 (one multiplication fewer per block)."""
    return tuple(c / q[-1] for c in p), tuple(c / q[-1] for c in q)


# Single precision: erf(x) = tanh(x P(x^2) / Q(x^2)) on |x| <= 3.92, beyond which float32 rounds erf to +-1.
# P/Q (degree 3 over 3) is a minimax fit to atanh(erf(x)) / x, weighted by how an error there moves erf, so
# float32 erf lands within 4 ulps of math.erf (1.4e-7 absolute) in a dozen and a half passes, with no float64.
_ERF_CLIP = 3.92
_ERF_P = (1.128379170824034, 0.2798072300032923, 0.04264684393221429, 0.0021783129506948986)
_ERF_Q = (1.0, 0.15689293319744016, 0.023690149130184125, 0.00032493098546061336)
_ERF_PQ = _monic(_ERF_P, _ERF_Q)
# GELU's normal CDF, (1 + erf(x / sqrt(2))) / 2, needs it only to ~1.5e-7 absolute (float32 ulps of values
# near 1/2 and 1): a degree 3 over 2 fit of the same kind (within 1.6e-7 of erf) saves two passes of the
# dozen and a half. The 1/sqrt(2) scaling is folded into the coefficients.
_CDF_ERF_P = (1.1283799575424527, 0.25263182108023396, 0.028034941499413733, 0.0006805717216096196)
_CDF_ERF_Q = (1.0, 0.13281709080862197, 0.012912875817822116)
_NORMAL_CDF_PQ = _monic(tuple(c / _SQRT_2 / 2.0 ** k for k, c in enumerate(_CDF_ERF_P)),
                        tuple(c / 2.0 ** k for k, c in enumerate(_CDF_ERF_Q)))


# Elementwise chains of a dozen passes run over blocks small enough for their temporaries to stay in cache: on
# a (12, 64, 512) float32 activation that is about 3x faster than whole-array passes. The temporaries are
# allocated once per call and reused by every block (a fresh 256 KiB array per pass is a fresh mmap).
_BLOCK_ELEMENTS = 1 << 16


def _blockwise(kernel, outputs, *arrays, scratch=0):
    """Run kernel(xp, out_1..out_n, *array_blocks, *scratch_blocks) over aligned flat blocks; returns the n
    outputs. `scratch` temporaries of one block's size come after the inputs."""
    xp = get_array_module(arrays[0])
    shape = arrays[0].shape
    flat = [xp.ravel(a) for a in arrays]
    size, dtype = flat[0].size, flat[0].dtype
    results = [xp.empty(size, dtype=dtype) for _ in range(outputs)]
    temporaries = [xp.empty(min(size, _BLOCK_ELEMENTS), dtype=dtype) for _ in range(scratch)]
    for begin in range(0, size, _BLOCK_ELEMENTS):
        end = min(begin + _BLOCK_ELEMENTS, size)
        kernel(xp, *(r[begin:end] for r in results), *(a[begin:end] for a in flat),
               *(t[:end - begin] for t in temporaries))
    results = tuple(r.reshape(shape) for r in results)
    return results if outputs > 1 else results[0]


def _horner(xp, out, t, coefficients):
    """out = sum_k coefficients[k] t^k, in place; a leading coefficient of 1 saves the first multiplication."""
    scalar = t.dtype.type
    if coefficients[-1] == 1.0:
        xp.add(t, scalar(coefficients[-2]), out=out)
    else:
        xp.multiply(t, scalar(coefficients[-1]), out=out)
        out += scalar(coefficients[-2])
    for coef in reversed(coefficients[:-2]):
        out *= t
        out += scalar(coef)
    return out


def _tanh_rational(xp, out, x, p, q, clip, t, numerator):
    """out = tanh(x P(t) / Q(t)) with t = min(x^2, clip^2), in x's dtype; t and numerator are scratch.

    Clamping t (not x) leaves x's sign and magnitude in the numerator: past the clip the ratio only grows, and
    tanh has long since rounded to +-1. Most blocks hold nothing past the clip; a max (a fast reduction) finds
    those and spares them the clamping pass (NaN compares false, so a block holding one is clamped too).
    """
    with np.errstate(over="ignore"):  # x^2 of huge x is inf, clamped right away
        xp.multiply(x, x, out=t)
    limit = t.dtype.type(clip * clip)
    if xp is not np or not t.max() <= limit:
        xp.minimum(t, limit, out=t)
    _horner(xp, numerator, t, p)
    numerator *= x
    xp.divide(numerator, _horner(xp, out, t, q), out=out)
    xp.tanh(out, out=out)


def _erf_kernel(xp, out, x, t, numerator):
    _tanh_rational(xp, out, x, *_ERF_PQ, _ERF_CLIP, t, numerator)


def _normal_cdf_kernel(xp, out, x, t, numerator):
    _tanh_rational(xp, out, x, *_NORMAL_CDF_PQ, _ERF_CLIP * _SQRT_2, t, numerator)
    out += x.dtype.type(1.0)
    out *= x.dtype.type(0.5)


def _single_precision(x):
    return x.dtype.itemsize <= 4


def erf_array(x):
    """The error function on an ndarray (numpy or cupy) in x's dtype: to float32 rounding for float32 and
    narrower (computed in float32), to double precision for float64."""
    xp = get_array_module(x)
    if _single_precision(x):
        return _blockwise(_erf_kernel, 1, x.astype(np.float32, copy=False), scratch=2).astype(x.dtype,
                                                                                            copy=False)
    out = xp.empty_like(x)
    small = xp.abs(x) < _ERF_SERIES_LIMIT
    out[small] = _erf_series(xp, x[small])
    large = ~small
    if large.any():
        out[large] = _erf_tail(xp, x[large])
    return out


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


def normal_cdf_array(x):
    """P(N(0, 1) <= x) = (1 + erf(x / sqrt(2))) / 2 in x's dtype (float32 or float64)."""
    if _single_precision(x):
        return _blockwise(_normal_cdf_kernel, 1, x, scratch=2)
    cdf = erf_array(x * (1.0 / _SQRT_2))
    cdf *= 0.5
    cdf += 0.5
    return cdf


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


# Giles' polynomial approximation of erfinv (central region, then tails), good to float32.
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                   -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def erfinv_array(x):
    """The inverse error function on an ndarray: ±inf at ±1, NaN outside [-1, 1]."""
    xp = get_array_module(x)
    work = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = -xp.log((1.0 - work) * (1.0 + work))
        central, tail = w - 2.5, xp.sqrt(w) - 3.0
        p_central = xp.zeros_like(work)
        p_tail = xp.zeros_like(work)
        for a, b in zip(_ERFINV_CENTRAL, _ERFINV_TAIL):
            p_central = p_central * central + a
            p_tail = p_tail * tail + b
        y = xp.where(w < 5.0, p_central, p_tail) * work
        # Two Newton steps on erf(y) = x take the float32 estimate to double precision.
        finite = xp.isfinite(y)
        for _ in range(2):
            step = (erf_array(xp.where(finite, y, 0.0)) - work) / ((2.0 / _SQRT_PI) * xp.exp(-y * y))
            y = xp.where(finite, y - step, y)
        y = xp.where(xp.abs(work) == 1.0, xp.sign(work) * np.inf, y)
    return y.astype(x.dtype, copy=False)


class Erfinv(Function):
    @staticmethod
    def forward(ctx, x):
        out = erfinv_array(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        xp = get_array_module(out)
        return grad * (_SQRT_PI / 2.0) * xp.exp(out * out)


def erfinv(input):
    return Erfinv.apply(ew._float_input(input))


def _gelu_kernel(xp, out, cdf, x, t, numerator):
    _normal_cdf_kernel(xp, cdf, x, t, numerator)
    with np.errstate(invalid="ignore"):  # -inf * 0 is NaN, as PyTorch gives without a warning
        xp.multiply(x, cdf, out=out)


def _gelu_inference_kernel(xp, out, x, t, numerator, cdf):
    _gelu_kernel(xp, out, cdf, x, t, numerator)


def _gelu_grad_kernel(xp, out, grad, x, cdf):
    # d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    xp.multiply(x, x, out=out)
    out *= x.dtype.type(-0.5)
    xp.exp(out, out=out)
    out *= x
    out *= x.dtype.type(1.0 / math.sqrt(2.0 * math.pi))
    out += cdf
    out *= grad


def _gelu_tanh_kernel(xp, out, gate, x):
    # gate = tanh(sqrt(2/pi) * (x + 0.044715 x^3)), saved: the derivative reuses it.
    xp.multiply(x, x, out=gate)
    gate *= x.dtype.type(_SQRT_2_OVER_PI * _GELU_TANH_COEF)
    gate += x.dtype.type(_SQRT_2_OVER_PI)
    gate *= x
    xp.tanh(gate, out=gate)
    xp.add(gate, x.dtype.type(1.0), out=out)
    out *= x
    out *= x.dtype.type(0.5)


def _gelu_tanh_grad_kernel(xp, out, grad, x, gate):
    # d/dx 0.5 x (1 + tanh u) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'(x)
    one = x.dtype.type(1.0)
    xp.multiply(x, x, out=out)
    out *= x.dtype.type(3.0 * _SQRT_2_OVER_PI * _GELU_TANH_COEF)
    out += x.dtype.type(_SQRT_2_OVER_PI)
    out *= x
    sech2 = gate * gate
    xp.subtract(one, sech2, out=sech2)
    out *= sech2
    out += gate
    out += one
    out *= x.dtype.type(0.5)
    out *= grad


class Gelu(Function):
    """x * Phi(x) (Phi the normal CDF), or its tanh approximation; all arithmetic in x's dtype."""

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.approximate = approximate
        ctx.dtype = x.dtype
        if x.dtype.itemsize < 4:
            x = x.astype(np.float32)  # half precision computes in float32, as PyTorch's CPU kernels do
        if approximate == "tanh":
            out, gate = _blockwise(_gelu_tanh_kernel, 2, x)
            ctx.save_for_backward(x, gate)
        elif not (grad_mode.is_grad_enabled() and ctx.needs_input_grad[0]) and _single_precision(x):
            out = _blockwise(_gelu_inference_kernel, 1, x, scratch=3)  # no graph: the CDF need not outlive a block
        elif _single_precision(x):
            out, cdf = _blockwise(_gelu_kernel, 2, x, scratch=2)
            ctx.save_for_backward(x, cdf)
        else:
            cdf = normal_cdf_array(x)
            ctx.save_for_backward(x, cdf)
            out = x * cdf
        return out.astype(ctx.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, gate_or_cdf = ctx.saved_tensors
        kernel = _gelu_tanh_grad_kernel if ctx.approximate == "tanh" else _gelu_grad_kernel
        return _blockwise(kernel, 1, grad.astype(x.dtype, copy=False), x, gate_or_cdf).astype(ctx.dtype,
                                                                                               copy=False), None


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
