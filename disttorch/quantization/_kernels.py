"""Quantize / dequantize helpers and the int8-weight matrix products used by the quantized layers.

Small batches of dynamically quantized Linear layers use a native int8 x int8 -> int32 kernel (the
optional extension _int8kernel.c). Elsewhere: numpy has no integer BLAS (its int matmul is a plain loop, ~100x slower than sgemm), so the product
widens the int8 weight rows a block at a time into a reused float32 buffer that stays in the
last-level cache, and float32 BLAS multiplies each block; the per-channel scales are applied to the
much smaller output. Main memory then streams only the int8 weights (a quarter of the float32
bytes). Whether that beats a float32 GEMV depends on the machine: the widening copy runs at about
12 G elements/s per core, so it wins only where float32 weights stream from memory slower than that.
"""
import ctypes
import threading

import numpy as np

# One widened block: large enough that the per-block Python overhead is small, small enough to stay
# in the last-level cache while BLAS reads it (measured best among 256 KiB..4 MiB).
_BLOCK_BYTES = 1 << 22
_BUFFERS = threading.local()


def symmetric_per_channel(weight, axis=0, qmax=127):
    """int8 weights and float32 scales per slice along `axis`: w ~= w_q * scale (range [-qmax, qmax])."""
    reduce_axes = tuple(i for i in range(weight.ndim) if i != axis)
    max_abs = np.abs(weight).max(axis=reduce_axes) if weight.size else np.zeros(weight.shape[axis])
    scale = (np.maximum(max_abs, 1e-12) / qmax).astype(np.float32)
    shape = [1] * weight.ndim
    shape[axis] = -1
    q = np.clip(np.rint(weight / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    return q, scale


def affine_qparams(min_val, max_val, qmin, qmax, symmetric=False):
    """(scale, zero_point) mapping [min_val, max_val] (widened to include 0) onto [qmin, qmax]."""
    min_val, max_val = min(float(min_val), 0.0), max(float(max_val), 0.0)
    if symmetric:
        bound = max(-min_val, max_val)
        scale = max(bound / ((qmax - qmin) / 2), 1e-12)
        zero_point = 0 if qmin < 0 else (qmin + qmax + 1) // 2
        return np.float32(scale), int(zero_point)
    scale = max((max_val - min_val) / (qmax - qmin), 1e-12)
    zero_point = int(np.clip(qmin - round(min_val / scale), qmin, qmax))
    return np.float32(scale), zero_point


def fake_quantize(x, scale, zero_point, qmin, qmax):
    """x rounded onto the quantization grid and mapped back to float (what an int8 activation holds)."""
    q = np.clip(np.rint(x * (1.0 / scale)) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).astype(np.float32, copy=False)


def dynamic_quantize(x):
    """Per-tensor symmetric int8 quantization of an activation, returned dequantized (float32)."""
    max_abs = float(np.abs(x).max()) if x.size else 0.0
    scale = max(max_abs, 1e-12) / 127.0
    return fake_quantize(x, scale, 0, -127, 127)


def _buffer(rows, cols):
    buffers = getattr(_BUFFERS, "by_shape", None)
    if buffers is None:
        buffers = _BUFFERS.by_shape = {}
    buf = buffers.get((rows, cols))
    if buf is None:
        buf = buffers[(rows, cols)] = np.empty((rows, cols), np.float32)
    return buf


def int8_linear(x, weight_q, scale, bias=None):
    """x (M, K) float32 @ (weight_q * scale[:, None]).T, weight_q (N, K) int8, plus bias."""
    out = np.empty((x.shape[0], weight_q.shape[0]), np.float32)
    cols = weight_q.shape[1]
    block = max(8, _BLOCK_BYTES // (4 * max(cols, 1)))
    for lo in range(0, weight_q.shape[0], block):
        hi = min(lo + block, weight_q.shape[0])
        buf = _buffer(hi - lo, cols)
        # A plain widening copy is about twice as fast as widening and scaling in one ufunc.
        np.copyto(buf, weight_q[lo:hi], casting="unsafe")
        np.matmul(x, buf.T, out=out[:, lo:hi])
    out *= scale
    if bias is not None:
        out += bias
    return out


def _native_gemm():
    """The compiled int8 x int8 -> int32 product, or None where the optional extension was not built."""
    try:
        from . import _int8kernel
    except ImportError:
        return None
    fn = ctypes.CDLL(_int8kernel.__file__).disttorch_int8_gemm
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_long]
    fn.restype = None
    return fn


_NATIVE_GEMM = _native_gemm()
# The native loop reads the weights once per input row; past a few rows float32 BLAS wins.
NATIVE_MAX_ROWS = 8


def dynamic_int8_linear(x, weight_q, scale, bias=None):
    """Dynamic quantization's Linear: x quantized per tensor to int8, integer products, float output.

    Uses the native int8 kernel for small batches (the latency case) and the widening numpy path
    otherwise; both compute the same quantized product.
    """
    if _NATIVE_GEMM is None or x.shape[0] > NATIVE_MAX_ROWS or weight_q.dtype != np.int8:
        return int8_linear(dynamic_quantize(x), weight_q, scale, bias)
    max_abs = float(np.abs(x).max()) if x.size else 0.0
    x_scale = max(max_abs, 1e-12) / 127.0
    x_q = np.ascontiguousarray(np.clip(np.rint(x * (1.0 / x_scale)), -127, 127).astype(np.int8))
    w_q = np.ascontiguousarray(weight_q)
    acc = np.empty((x.shape[0], w_q.shape[0]), np.int32)
    _NATIVE_GEMM(x_q.ctypes.data, w_q.ctypes.data, acc.ctypes.data, x_q.shape[0], w_q.shape[0], w_q.shape[1])
    out = acc.astype(np.float32)
    out *= scale * np.float32(x_scale)
    if bias is not None:
        out += bias
    return out
