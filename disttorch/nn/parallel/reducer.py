"""Gradient buckets for DDP: fill as backward produces gradients, all-reduce each as soon as it is full.

Parameters are packed in reverse registration order (roughly the order backward produces their
gradients). A post-accumulate-grad hook copies each gradient into its bucket's flat buffer; a full
bucket starts an asynchronous all-reduce while backward continues. Buckets are launched strictly in
index order so every rank issues the same collectives in the same order.
"""
import time

import numpy as np

from ...core.tensor import Tensor
from .comm_hooks import GradBucket, allreduce_hook

FIRST_BUCKET_BYTES = 1 << 20


class Bucket:
    def __init__(self, index, params, dtype):
        self.index = index
        self.params = params
        self.offsets = []
        offset = 0
        for p in params:
            self.offsets.append(offset)
            offset += p._data.size
        self.buffer = Tensor._wrap(np.zeros(offset, dtype=dtype))
        self.pending = len(params)
        self.future = None

    def view_of(self, position):
        p = self.params[position]
        start = self.offsets[position]
        return self.buffer._data[start:start + p._data.size].reshape(p._data.shape)


def plan_buckets(params, bucket_cap_bytes, first_bucket_bytes=FIRST_BUCKET_BYTES):
    """Group parameters (reverse order, same dtype per bucket) under the byte caps."""
    buckets, current, size, cap = [], [], 0, first_bucket_bytes
    for p in reversed(params):
        nbytes = p._data.nbytes
        if current and (size + nbytes > cap or p._data.dtype != current[0]._data.dtype):
            buckets.append(current)
            current, size, cap = [], 0, bucket_cap_bytes
        current.append(p)
        size += nbytes
    if current:
        buckets.append(current)
    return [Bucket(i, group, group[0]._data.dtype) for i, group in enumerate(buckets)]


class Reducer:
    def __init__(self, params, names, process_group, bucket_cap_bytes, gradient_as_bucket_view):
        self.params = params
        self.names = names
        self.process_group = process_group
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.buckets = plan_buckets(params, bucket_cap_bytes)
        self.location = {}
        for bucket in self.buckets:
            for position, p in enumerate(bucket.params):
                self.location[id(p)] = (bucket, position)
        self.comm_hook = allreduce_hook
        self.comm_state = process_group
        self.active = False
        self.next_to_launch = 0
        self.ready_ids = set()
        self.exposed_seconds = 0.0  # time backward spent waiting on communication (benchmarks read it)
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad_ready) for p in params]

    def register_comm_hook(self, state, hook):
        self.comm_state = state
        self.comm_hook = hook

    def prepare_for_backward(self, unused=(), sync=True):
        """Arm the buckets for one backward pass; `unused` parameters count as ready with zero grad."""
        # A backward that reached some parameters but not all means unused parameters; a forward with
        # no backward at all (e.g. an evaluation pass) is harmless and just re-arms.
        if self.active and self.ready_ids and self.next_to_launch < len(self.buckets):
            self.active = False
            missing = [self.names[i] for i, p in enumerate(self.params) if id(p) not in self.ready_ids]
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a new one. "
                "This error indicates that your module has parameters that were not used in producing loss. "
                "You can enable unused parameter detection by passing the keyword argument "
                "`find_unused_parameters=True` to `torch.nn.parallel.DistributedDataParallel`, or make sure "
                f"all forward outputs participate in the loss. Parameters that did not receive grad: "
                f"{', '.join(missing)}")
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)
            bucket.future = None
        self.next_to_launch = 0
        self.ready_ids = set()
        self.active = sync
        if sync:
            for p in unused:
                self._mark_ready(p, zero=True)

    def _on_grad_ready(self, param):
        if self.active and id(param) not in self.ready_ids:
            self._mark_ready(param, zero=False)

    def _mark_ready(self, param, zero):
        bucket, position = self.location[id(param)]
        self.ready_ids.add(id(param))
        view = bucket.view_of(position)
        if zero or param.grad is None:
            view[...] = 0
        elif self.gradient_as_bucket_view:
            # Once .grad is a view of the bucket, backward accumulates straight into the bucket.
            if param.grad._data.base is not bucket.buffer._data:
                view[...] = param.grad._data
                param.grad = Tensor._wrap(view)
        else:
            view[...] = param.grad._data
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready_buckets()

    def _launch_ready_buckets(self):
        while self.next_to_launch < len(self.buckets) and self.buckets[self.next_to_launch].pending == 0:
            bucket = self.buckets[self.next_to_launch]
            is_last = self.next_to_launch == len(self.buckets) - 1
            grad_bucket = GradBucket(bucket.index, bucket.buffer, bucket.params, is_last)
            bucket.future = self.comm_hook(self.comm_state, grad_bucket)
            self.next_to_launch += 1
        if self.next_to_launch == len(self.buckets):
            self._finalize()

    def _finalize(self):
        """Wait for every bucket and write the averaged gradients back into `.grad`."""
        self.active = False
        started = time.perf_counter()
        for bucket in self.buckets:
            result = bucket.future.wait()
            if result is not bucket.buffer and result is not None:
                bucket.buffer._data[...] = result._data
            for position, p in enumerate(bucket.params):
                view = bucket.view_of(position)
                if self.gradient_as_bucket_view:
                    if p.grad is None or p.grad._data.base is not bucket.buffer._data:
                        p.grad = Tensor._wrap(view)
                elif p.grad is None:
                    p.grad = Tensor._wrap(view.copy())
                else:
                    p.grad._data[...] = view
        self.exposed_seconds += time.perf_counter() - started

    def remove_hooks(self):
        for handle in self._handles:
            handle.remove()
