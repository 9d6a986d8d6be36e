"""Gradient buckets for DDP: fill as backward produces gradients, all-reduce each as soon as it is full.

Parameters are first packed in reverse registration order (roughly the order backward produces their
gradients); after the first synchronised backward the buckets are rebuilt once in the order the
gradients really arrived (rank 0's order, so every rank agrees). A post-accumulate-grad hook copies
each gradient into its bucket's flat buffer (a bucket holding one big parameter all-reduces its
`.grad` in place instead); a full bucket starts an asynchronous all-reduce while backward continues.
Buckets are launched strictly in index order so every rank issues the same collectives in the same
order.
"""
import os
import time
import weakref

import numpy as np

from ... import distributed as dist
from ...comm import DistError
from ...distributed._util import _group, _mark_written
from ...core.backend import get_array_module
from ...core.tensor import Tensor
from ...futures import Future
from .comm_hooks import GradBucket

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
        xp = get_array_module(params[0]._data)
        self.buffer = Tensor._wrap(xp.zeros(offset, dtype=dtype))
        self.views = [self.buffer._data[start:start + p._data.size].reshape(p._data.shape)
                      for p, start in zip(params, self.offsets)]
        self.pending = len(params)
        self.future = None
        # This step's perf_counter() marks: bucket ready, all-reduce started and done (timeline()).
        self.marks = None
        # What this step's all-reduce works on: the flat buffer, or a lone parameter's own `.grad`.
        self.comm_buffer = self.buffer


def plan_buckets(params, owners, bucket_cap_bytes, first_bucket_bytes=FIRST_BUCKET_BYTES):
    """Group parameters, in the order their gradients are expected, under the byte caps.

    `owners[i]` names the module holding params[i]. A module's parameters get their gradients from
    the same backward step, so they never top up an earlier bucket: a big layer's bias there would
    hold that bucket back until the layer's whole backward is done. A parameter of at least
    `first_bucket_bytes` gets a bucket of its own, which is all-reduced in its `.grad` without copies.
    Each bucket holds one dtype; the first is kept small so the first all-reduce starts early.
    """
    lone_bytes = min(first_bucket_bytes, bucket_cap_bytes)
    planner = _BucketPacker(lone_bytes, bucket_cap_bytes)
    for group in _runs_of_same_owner(params, owners):
        large = [p for p in group if p._data.nbytes >= lone_bytes]
        small = [p for p in group if p._data.nbytes < lone_bytes]
        if large:
            planner.close()
        planner.add_together(small)
        for p in large:
            planner.close()
            planner.add_together([p])
        if large:
            planner.close()
    planner.close()
    return [Bucket(i, group, group[0]._data.dtype) for i, group in enumerate(planner.buckets)]


class _BucketPacker:
    def __init__(self, first_cap, cap):
        self.buckets, self.current, self.size = [], [], 0
        self.cap, self.next_cap = first_cap, cap

    def close(self):
        if self.current:
            self.buckets.append(self.current)
            self.current, self.size, self.cap = [], 0, self.next_cap

    def add_together(self, params):
        """Append `params` to the open bucket, or start a new one when they would overflow it."""
        if self.current and self.size + sum(p._data.nbytes for p in params) > self.cap:
            self.close()
        for p in params:
            if self.current and p._data.dtype != self.current[0]._data.dtype:
                self.close()
            self.current.append(p)
            self.size += p._data.nbytes


def _runs_of_same_owner(params, owners):
    runs = []
    for p, owner in zip(params, owners):
        if runs and runs[-1][0] == owner:
            runs[-1][1].append(p)
        else:
            runs.append((owner, [p]))
    return [group for _, group in runs]


def overlap_has_a_core(cores_per_rank):
    """Whether a background thread can actually receive and fold beside backward on this machine.

    That needs a core that backward is not using: `cores_per_rank` counts every rank of the job that
    runs on this process's cores (ranks in other network namespaces of the same machine included). With
    one core (or less) per rank, the communication thread only time-slices with backward and takes the
    GIL from it for every message, so each bucket's sends start as it fills and the rest runs in the
    training thread (see Reducer._communicate). DISTTORCH_DDP_OVERLAP=1/0 forces either way.
    """
    forced = os.environ.get("DISTTORCH_DDP_OVERLAP")
    if forced is not None:
        return forced != "0"
    return cores_per_rank >= 2


def _cores_per_rank():
    from ... import comm
    return comm.world().transport.cores_per_rank()


def _spans_hosts(process_group):
    """Whether the group's ranks live on more than one host (every rank decides alike)."""
    from ... import comm
    transport = comm.world().transport
    return len({transport.host_key(rank) for rank in _group(process_group).ranks}) > 1


class Reducer:
    def __init__(self, params, names, process_group, bucket_cap_bytes, gradient_as_bucket_view):
        self.params = params
        self.names = names
        self.process_group = process_group
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.bucket_cap_bytes = bucket_cap_bytes
        self.index_of = {id(p): i for i, p in enumerate(params)}
        self.owners = [name.rpartition(".")[0] for name in names]
        self._use_buckets(plan_buckets(params[::-1], self.owners[::-1], bucket_cap_bytes))
        # Parameter indices in the order gradients became ready, kept until the buckets are rebuilt.
        self.ready_order = []
        self.arrival_order = None
        self.rebuilt = False
        # None: the built-in average (see _communicate).
        self.comm_hook = None
        self.comm_state = process_group
        self.active = False
        # DDP replaces this to explain failures caused by ranks that ran out of inputs.
        self.explain_comm_error = lambda error: error
        self.next_to_launch = 0
        self.ready_ids = set()
        self.used_since_sync = set()
        self.used_counts = None
        # Time backward spent blocked on communication, inline all-reduces included (benchmarks read it).
        self.exposed_seconds = 0.0
        self.overlap = overlap_has_a_core(_cores_per_rank())
        self.end_steps_together = _spans_hosts(process_group)
        self.reduce_at_end = self._agree_to_reduce_at_end()
        # One flat buffer per dtype for the all-reduce at the end (see _agree_to_reduce_at_end).
        self._staging = {}
        # The hooks reach the reducer through a weak reference and go with it, as torch's do: a model
        # wrapped again (after a restart) must not keep every earlier reducer and its buckets alive.
        on_ready = weakref.WeakMethod(self._on_grad_ready)

        def hook(param):
            method = on_ready()
            if method is not None:
                method(param)
        handles = [p.register_post_accumulate_grad_hook(hook) for p in params]
        weakref.finalize(self, _remove_handles, handles)

    def _agree_to_reduce_at_end(self):
        """Whether built-in averaging waits for the end of backward and then all-reduces every bucket
        as one array: when all ranks share one host and no rank has a core to spare.

        Started during backward, each bucket's all-reduce through shared memory is one more point where
        a rank waits for the slowest, in the training thread, while there is no link to keep busy; at
        the end, one array costs one wait and one round of signals (a quarter of the time of five
        buckets for bench_ddp's MLP). Every rank must issue the same collectives, so all ranks agree here.
        """
        if self.end_steps_together or dist.get_world_size(self.process_group) == 1:
            return False
        wanted = Tensor._wrap(np.array([0 if self.overlap else 1], dtype=np.int32))
        dist.all_reduce(wanted, op=dist.ReduceOp.MIN, group=self.process_group)
        return bool(wanted._data[0])

    def _use_buckets(self, buckets):
        self.buckets = buckets
        self.location = {}
        for bucket in buckets:
            for position, p in enumerate(bucket.params):
                self.location[id(p)] = (bucket, position)

    def _rebuild_buckets(self):
        """Re-plan the buckets in the order gradients arrived during the first synchronised backward.

        Ranks may have seen different orders, so rank 0's is broadcast and used everywhere.
        """
        order = Tensor._wrap(np.array(self.arrival_order, dtype=np.int64))
        root = 0 if self.process_group is None else dist.get_global_rank(self.process_group, 0)
        dist.broadcast(order, src=root, group=self.process_group)
        self._use_buckets(plan_buckets([self.params[i] for i in order._data],
                                       [self.owners[i] for i in order._data], self.bucket_cap_bytes))
        self.rebuilt = True

    def register_comm_hook(self, state, hook):
        self.comm_state = state
        self.comm_hook = hook

    def prepare_for_backward(self, reached_ids=None, sync=True):
        """Arm the buckets for the backward of the forward that just ran.

        `reached_ids` (given when unused-parameter detection is on) holds the ids of the parameters
        this forward's graph reaches; the others count as ready at once, contributing whatever
        gradient they hold (zeros if none).
        """
        self._raise_if_previous_reduction_unfinished()
        if sync and not self.rebuilt and self.arrival_order is not None:
            self._rebuild_buckets()
        if reached_ids is not None:
            self.used_since_sync.update(id(p) for p in self.params if id(p) in reached_ids)
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)
            bucket.future = None
            bucket.comm_buffer = bucket.buffer
            bucket.marks = None
        self._step_marks = {"origin": time.perf_counter()}
        self.next_to_launch = 0
        self.ready_ids = set()
        self.ready_order = []
        self.active = sync
        self.used_counts = None
        if sync and reached_ids is not None:
            self._count_users_across_ranks()
            for p in self.params:
                if id(p) not in reached_ids:
                    self._mark_ready(p)

    def _raise_if_previous_reduction_unfinished(self):
        # A backward that reached some parameters but not all means unused parameters; a forward with
        # no backward at all (e.g. an evaluation pass) is harmless and just re-arms.
        if not (self.active and self.ready_ids and self.next_to_launch < len(self.buckets)):
            return
        self.active = False
        missing = [name for name, p in zip(self.names, self.params) if id(p) not in self.ready_ids]
        raise RuntimeError(
            "Expected to have finished reduction in the prior iteration before starting a new one. "
            "This error indicates that your module has parameters that were not used in producing loss. "
            "You can enable unused parameter detection by passing the keyword argument "
            "`find_unused_parameters=True` to `torch.nn.parallel.DistributedDataParallel`, or make sure "
            f"all forward outputs participate in the loss. Parameters that did not receive grad on rank "
            f"{dist.get_rank(self.process_group)}: {', '.join(missing)}")

    def _count_users_across_ranks(self):
        """Start summing, over ranks, which parameters some forward used since the last sync.

        A parameter no rank used keeps its `.grad` untouched, exactly as in a single process (where
        it would get no gradient at all); the counts travel before any bucket, on every rank alike.
        """
        used = np.array([id(p) in self.used_since_sync for p in self.params], dtype=np.int32)
        self.used_since_sync = set()
        self.used_counts = Tensor._wrap(used)
        self._used_work = dist.all_reduce(self.used_counts, group=self.process_group, async_op=True)

    def _on_grad_ready(self, param):
        if self.active and id(param) not in self.ready_ids:
            try:
                self._mark_ready(param)
            except DistError as error:
                explained = self.explain_comm_error(error)
                if explained is error:
                    raise
                raise explained from error

    def _mark_ready(self, param):
        bucket, position = self.location[id(param)]
        self.ready_ids.add(id(param))
        if not self.rebuilt:
            self.ready_order.append(self.index_of[id(param)])
        grad = param.grad
        view = bucket.views[position]
        if grad is None:
            view[...] = 0
        elif self._reduce_in_place(bucket, grad):
            bucket.comm_buffer = grad
        elif not (self.gradient_as_bucket_view and grad._data.base is bucket.buffer._data):
            view[...] = grad._data
            if self.gradient_as_bucket_view:
                param.grad = Tensor._wrap(view)
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready_buckets()

    def _reduce_in_place(self, bucket, grad):
        """A bucket holding one parameter can all-reduce that `.grad` itself: no copy in or out.

        Only for the built-in average (hooks are promised the bucket's flat buffer) and when `.grad`
        is not meant to be a view of the bucket.
        """
        return (self.comm_hook is None and not self.gradient_as_bucket_view and len(bucket.params) == 1
                and grad._data.flags.c_contiguous and grad._data.dtype == bucket.buffer._data.dtype)

    def _launch_ready_buckets(self):
        while self.next_to_launch < len(self.buckets) and self.buckets[self.next_to_launch].pending == 0:
            bucket = self.buckets[self.next_to_launch]
            bucket.marks = {"ready": time.perf_counter()}
            bucket.future = self._communicate(bucket)
            self.next_to_launch += 1
        if self.next_to_launch == len(self.buckets):
            self._finalize()

    def _communicate(self, bucket):
        """Start the bucket's all-reduce. Data bound straight for the peers leaves right here (ZeroMQ's
        I/O threads carry it while backward goes on); receiving and folding then runs on the
        communication thread with overlap, else at the end of backward. Anything else (shared memory,
        the ring) runs on the communication thread with overlap, else inline, now; or, when all ranks
        agreed to reduce at the end, every bucket then goes in one all-reduce (returns None)."""
        if self.comm_hook is None and self.reduce_at_end:
            return None
        if self.comm_hook is None:
            started = time.perf_counter()
            _mark_written(bucket.comm_buffer)
            # AVG divides while folding, piece by piece, while each is in cache.
            work = _group(self.process_group).all_reduce(
                bucket.comm_buffer._data, dist.ReduceOp.AVG, async_op=True, deferred=not self.overlap)
            bucket.marks["sent"] = time.perf_counter()
            self.exposed_seconds += time.perf_counter() - started
            bucket.marks["work"] = work
            return Future.from_work(work, bucket.comm_buffer)
        is_last = bucket.index == len(self.buckets) - 1
        return self.comm_hook(self.comm_state, GradBucket(bucket.index, bucket.buffer, bucket.params, is_last))

    def _finalize(self):
        """Wait for every bucket and write the averaged gradients back into `.grad`."""
        self.active = False
        if self.arrival_order is None:
            self.arrival_order = self.ready_order
        started = self._step_marks["backward_done"] = time.perf_counter()
        if self.comm_hook is None and self.reduce_at_end:
            self._all_reduce_together()
            results = [None] * len(self.buckets)
        else:
            results = []
            for bucket in self.buckets:
                results.append(bucket.future.wait())
                bucket.marks.setdefault("waited", time.perf_counter())
        globally_unused = set()
        if self.used_counts is not None:
            self._used_work.wait()
            globally_unused = {id(p) for p, count in zip(self.params, self.used_counts._data) if count == 0}
        self._step_marks["finalized"] = time.perf_counter()
        for bucket, result in zip(self.buckets, results):
            if bucket.comm_buffer is not bucket.buffer:
                continue  # reduced in place: `.grad` already holds the average
            if result is not bucket.buffer and result is not None:
                bucket.buffer._data[...] = result._data
            for position, p in enumerate(bucket.params):
                if id(p) not in globally_unused:
                    self._write_grad(bucket, position, p)
        synchronised = time.perf_counter()
        self._end_step_together()
        self._step_marks["synced"] = time.perf_counter()
        self.exposed_seconds += self._step_marks["synced"] - synchronised + self._step_marks["finalized"] - started

    def _all_reduce_together(self):
        """Average every bucket with one all-reduce per dtype, through a flat staging buffer."""
        by_dtype = {}
        for bucket in self.buckets:
            by_dtype.setdefault(bucket.comm_buffer._data.dtype, []).append(bucket)
        group = _group(self.process_group)
        for dtype, buckets in by_dtype.items():
            started = time.perf_counter()
            sources = [bucket.comm_buffer._data.reshape(-1) for bucket in buckets]
            total = sum(source.size for source in sources)
            staging = self._staging.get(dtype)
            if staging is None or staging.size != total:
                staging = self._staging[dtype] = get_array_module(sources[0]).empty(total, dtype)
            get_array_module(staging).concatenate(sources, out=staging)
            group.all_reduce(staging, dist.ReduceOp.AVG)
            offset = 0
            for bucket, source in zip(buckets, sources):
                source[...] = staging[offset:offset + source.size]
                offset += source.size
                _mark_written(bucket.comm_buffer)
                bucket.marks.update(start=started, done=time.perf_counter())

    def _end_step_together(self):
        """Leave the step only once every rank holds every average: a barrier.

        An all-reduce that sends each contribution straight to every peer (two ranks, small buckets,
        the exchange between hosts) finishes on a late rank as soon as its own sends are out, as the
        early ranks' data is already there, while an early rank still waits for the late one's data
        to cross the link. The late rank's next step then starts that much earlier than the early
        rank's, mirroring the offset, so it survives from step to step and every step pays it again:
        on a link-bound cluster up to a whole transfer time, with compute and communication back to
        back instead of overlapped. A ring's all-gather lines the ranks up by itself; this does it on
        every path for one empty message each way. Within one host, large buckets go through shared
        memory, where every rank waits for every other's signal anyway, and transfers are short.
        """
        if self.end_steps_together:
            dist.barrier(group=self.process_group)

    def _write_grad(self, bucket, position, p):
        view = bucket.views[position]
        if self.gradient_as_bucket_view:
            if p.grad is None or p.grad._data.base is not bucket.buffer._data:
                p.grad = Tensor._wrap(view)
        elif p.grad is None:
            p.grad = Tensor._wrap(view.copy())
        else:
            p.grad._data[...] = view

    def timeline(self):
        """The last synchronised step, in seconds since its forward ended (`origin`, in perf_counter()
        seconds, which processes on one machine share): when each bucket became ready, when its all-reduce
        call returned to backward (`sent`; a direct exchange has then handed all its data to ZeroMQ's
        I/O threads; None under a comm hook), when receiving and folding ran
        (`start`, `done`), when backward finished, when every averaged gradient was in place and when
        every rank had them (`synced`). For finding where a step's time goes (bench_cluster)."""
        origin = self._step_marks["origin"]
        rows = []
        for bucket in self.buckets:
            marks = bucket.marks
            work = marks.get("work")
            start = marks.get("start", work.started_at if work is not None else marks["ready"])
            done = marks.get("done", work.finished_at if work is not None else marks["waited"])
            sent = marks.get("sent")
            rows.append({"bucket": bucket.index, "bytes": int(bucket.buffer._data.nbytes),
                         "ready": marks["ready"] - origin, "sent": None if sent is None else sent - origin,
                         "start": start - origin, "done": done - origin})
        return {"buckets": rows, "origin": origin, "backward_done": self._step_marks["backward_done"] - origin,
                "finalized": self._step_marks["finalized"] - origin, "synced": self._step_marks["synced"] - origin}


def _remove_handles(handles):
    for handle in handles:
        handle.remove()
