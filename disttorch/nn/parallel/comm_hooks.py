"""DDP communication hooks: what happens to a gradient bucket between backward and the optimizer.

A hook is hook(state, bucket) -> Future resolving to the bucket's averaged flat gradient tensor.
"""
import numpy as np

from ... import distributed as dist
from ...core.tensor import Tensor
from ...futures import Future


class GradBucket:
    """One bucket of flattened gradients, as handed to a communication hook."""

    def __init__(self, index, buffer, parameters, is_last):
        self._index = index
        self._buffer = buffer
        self._parameters = parameters
        self._is_last = is_last

    def index(self):
        return self._index

    def buffer(self):
        return self._buffer

    def parameters(self):
        return self._parameters

    def is_last(self):
        return self._is_last


def _world(group):
    return dist.get_world_size(group)


def allreduce_hook(process_group, bucket):
    """Average over ranks: each rank divides by the world size, then the all-reduce sums."""
    buffer = bucket.buffer()
    np.divide(buffer._data, _world(process_group), out=buffer._data)
    work = dist.all_reduce(buffer, group=process_group, async_op=True)
    return Future.from_work(work, buffer)


def fp16_compress_hook(process_group, bucket):
    """Send float16 instead of float32: half the bytes, at float16's precision."""
    buffer = bucket.buffer()
    world = _world(process_group)
    # Divide before summing so float16 does not overflow on large gradients.
    compressed = Tensor._wrap((buffer._data / world).astype(np.float16))
    work = dist.all_reduce(compressed, group=process_group, async_op=True)

    def decompress(_):
        buffer._data[...] = compressed._data
        return buffer
    return Future.from_work(work, compressed).then(decompress)


def _to_bf16_bits(values):
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def _from_bf16_bits(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def bf16_compress_hook(process_group, bucket):
    """Send bfloat16: half the bytes with float32's range.

    NumPy has no bfloat16 arithmetic, so ranks all-gather the 16-bit patterns and sum in float32;
    for two ranks that moves the same bytes as a ring all-reduce of bfloat16 would.
    """
    buffer = bucket.buffer()
    world = _world(process_group)
    mine = Tensor._wrap(_to_bf16_bits(buffer._data / world))
    gathered = [Tensor._wrap(np.empty_like(mine._data)) for _ in range(world)]
    work = dist.all_gather(gathered, mine, group=process_group, async_op=True)

    def decompress(_):
        total = _from_bf16_bits(gathered[0]._data).copy()
        for part in gathered[1:]:
            total += _from_bf16_bits(part._data)
        buffer._data[...] = total
        return buffer
    return Future.from_work(work, mine).then(decompress)


class ErrorFeedbackState:
    """Keeps, per bucket, what compression lost last step and adds it back before the next one."""

    def __init__(self, process_group=None):
        self.process_group = process_group
        self.residuals = {}


def with_error_feedback(compress_hook):
    """Wrap a compressing hook so its rounding error is carried into the next step instead of lost."""

    def hook(state, bucket):
        buffer = bucket.buffer()
        residual = state.residuals.get(bucket.index())
        if residual is not None and residual.shape == buffer._data.shape:
            buffer._data += residual
        original = buffer._data.copy()
        world = _world(state.process_group)
        fut = compress_hook(state.process_group, bucket)

        def remember(f):
            averaged = f.value()
            # What this rank meant to contribute minus what the compressed sum credited it with.
            local_sent = _roundtrip(compress_hook, original / world)
            state.residuals[bucket.index()] = (original / world - local_sent) * world
            return averaged
        return fut.then(remember)
    return hook


def _roundtrip(compress_hook, values):
    if compress_hook is fp16_compress_hook:
        return values.astype(np.float16).astype(np.float32)
    if compress_hook is bf16_compress_hook:
        return _from_bf16_bits(_to_bf16_bits(values))
    return values
