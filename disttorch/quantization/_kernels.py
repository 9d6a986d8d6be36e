"""Quantize / dequantize helpers and the int8-weight matrix product used by the quantized layers.

Why the product is fast in numpy: integer matmul in numpy has no BLAS, so computing in int32 is slow.
Instead the int8 weight rows are widened (and scaled per output channel) a block at a time into a
small float32 buffer that stays in cache, and float32 BLAS multiplies the block. Main memory then
only streams the int8 weights -- a quarter of the float32 bytes -- which is what bounds batch-1 and
small-batch inference of large layers. Two threads split the rows (numpy releases the GIL in the
widening copy and in BLAS), since one core cannot widen as fast as memory delivers int8 bytes.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_BLOCK_BYTES = 1 << 19  # one float32 weight block: fits the per-core L2 with room for the output
_PARALLEL_MIN_WEIGHTS = 1 << 20
_THREADS = int(os.environ.get("DISTTORCH_QUANT_THREADS", "2"))
_POOL = None
_POOL_LOCK = threading.Lock()
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


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="disttorch-qgemm")
    return _POOL


def _buffer(rows, cols):
    buffers = getattr(_BUFFERS, "by_shape", None)
    if buffers is None:
        buffers = _BUFFERS.by_shape = {}
    buf = buffers.get((rows, cols))
    if buf is None:
        buf = buffers[(rows, cols)] = np.empty((rows, cols), np.float32)
    return buf


def _rows_product(x, weight_q, out, start, stop):
    cols = weight_q.shape[1]
    block = max(8, _BLOCK_BYTES // (4 * cols))
    for lo in range(start, stop, block):
        hi = min(lo + block, stop)
        buf = _buffer(hi - lo, cols)
        # A plain widening copy is about twice as fast as widening and scaling in one ufunc; the
        # per-channel scale is applied to the (much smaller) output instead.
        np.copyto(buf, weight_q[lo:hi], casting="unsafe")
        np.matmul(x, buf.T, out=out[:, lo:hi])


def int8_linear(x, weight_q, scale, bias=None):
    """x (M, K) float32 @ (weight_q * scale[:, None]).T, weight_q (N, K) int8, plus bias."""
    rows = weight_q.shape[0]
    out = np.empty((x.shape[0], rows), np.float32)
    threads = 2 if _THREADS > 1 and weight_q.size >= _PARALLEL_MIN_WEIGHTS and (os.cpu_count() or 1) > 1 else 1
    if threads == 1:
        _rows_product(x, weight_q, out, 0, rows)
    else:
        half = (rows // 2 + 7) // 8 * 8
        parts = [(0, half), (half, rows)]
        list(_pool().map(lambda span: _rows_product(x, weight_q, out, *span), parts))
    out *= scale
    if bias is not None:
        out += bias
    return out
