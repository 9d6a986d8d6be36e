"""torch.distributed for disttorch: process groups and collectives over ZeroMQ.

Collectives work in place on the tensors' buffers (``tensor._data``), exactly
like PyTorch's. The heavy lifting lives in disttorch.comm, which works on raw
arrays and is what DDP calls directly. ``backend`` may be "zmq" (native),
"gloo" or "nccl": all run over the ZeroMQ transport (CUDA tensors are staged
through host memory), so PyTorch scripts run unchanged.
"""
import os

import numpy as np

from disttorch import comm
from disttorch.comm import (CollectiveMismatch, CollectiveTimeout, DistBackendError, DistError,
                            DistNetworkError, DistStoreError, PrefixStore, RankFailure, ReduceOp,
                            TCPStore, Work)
from disttorch.comm import flight_recorder
from disttorch.comm.process_group import ProcessGroup
from disttorch.core.tensor import Tensor

from ._util import GroupMember, _group, _group_rank, _is_member, _mark_written
from .objects import all_gather_object, broadcast_object_list, gather_object, scatter_object_list
from .p2p import P2POp, batch_isend_irecv, irecv, isend, recv, send

Store = TCPStore
_BACKENDS = ("zmq", "gloo", "nccl", "cpu:gloo,cuda:nccl")


class Backend:
    """torch.distributed.Backend: backend names."""
    ZMQ = "zmq"
    GLOO = "gloo"
    NCCL = "nccl"


group = GroupMember


def is_available():
    return True


def is_gloo_available():
    return True


def is_nccl_available():
    return False


def is_initialized():
    return comm.is_initialized()


def is_torchelastic_launched():
    """True when started by disttorch-launch (or torchrun)."""
    return any(name in os.environ for name in ("DISTTORCH_RESTART_COUNT", "TORCHELASTIC_RUN_ID"))


def get_node_local_rank(fallback_rank=None):
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if fallback_rank is not None:
        return fallback_rank
    raise RuntimeError("LOCAL_RANK is not set; start workers with disttorch-launch or pass "
                       "fallback_rank")


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Join the job: rendezvous through ``init_method`` (default "env://") or ``store``."""
    name = (backend or "zmq").lower()
    if name not in _BACKENDS:
        raise ValueError(f"Invalid backend {backend!r}: disttorch supports {_BACKENDS}")
    world = comm.init(init_method, rank, world_size, timeout, store, name)
    GroupMember.WORLD = world.default_group


def destroy_process_group(group=None):
    """Destroy ``group``; with no argument, leave the job and close every socket."""
    if group is None or group is GroupMember.WORLD:
        comm.shutdown()
        GroupMember.WORLD = None


def dump_flight_recorder(path=None):
    """Write this rank's flight record (its last DISTTORCH_TRACE_BUFFER_SIZE collectives) as JSON.

    disttorch's counterpart of torch's ``_dump_nccl_trace``: ``path`` defaults to
    ``disttorch-trace-rank<R>.json`` in DISTTORCH_TRACE_DUMP_DIR (else the temp folder).
    Returns the path written. Works before, during and after the process group's life.
    """
    return flight_recorder.dump("dump_flight_recorder()", path)


def get_rank(group=None):
    if not _is_member(group):
        return -1
    return _group(group).rank


def get_world_size(group=None):
    if not _is_member(group):
        return -1
    return _group(group).size


def get_backend(group=None):
    return comm.world().backend


def get_process_group_ranks(group):
    return list(_group(group).ranks)


def get_global_rank(group, group_rank):
    return _group(group).ranks[group_rank]


def get_group_rank(group, global_rank):
    return _group_rank(_group(group), global_rank, "rank")


def new_group(ranks=None, timeout=None, backend=None, pg_options=None,
              use_local_synchronization=False, group_desc=None):
    """A group of a subset of ranks. Every rank must call it, in the same order."""
    made = comm.world().new_group(ranks)
    return GroupMember.NON_GROUP_MEMBER if made is None else made


def _data(tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"collectives take disttorch Tensors, got {type(tensor).__name__}; wrap "
                        "arrays with torch.from_numpy, or call disttorch.comm for raw arrays")
    return tensor._data


def _same_size(tensors, expected, op):
    for tensor in tensors:
        if tensor._data.size != expected._data.size or tensor._data.dtype != expected._data.dtype:
            raise ValueError(
                f"{op}: every tensor must match the input's {expected._data.dtype.name} with "
                f"{expected._data.size} elements, got {tensor._data.dtype.name} with "
                f"{tensor._data.size} elements")


def _stack_host(tensors):
    return np.ascontiguousarray(np.stack([_host(tensor._data) for tensor in tensors]))


def _host(array):
    return array if isinstance(array, np.ndarray) else array.get()


def _then(work, finish):
    """Run ``finish`` after the collective, now (blocking) or inside Work.wait()."""
    if work is None:
        finish()
        return None
    return _FinishingWork(work, finish)


class _FinishingWork(Work):
    """A Work whose wait() also copies results into the caller's tensors."""

    def __init__(self, inner, finish):
        super().__init__(inner._description)
        self._inner = inner
        self._finish_fn = finish

    def is_completed(self):
        return self._inner.is_completed()

    def wait(self, timeout=None):
        self._inner.wait(timeout)
        if self._finish_fn is not None:
            finish, self._finish_fn = self._finish_fn, None
            finish()
        return True

    synchronize = wait


# ------------------------------------------------------------------- collectives
def _with_outputs(work, *tensors):
    if work is not None:
        work._outputs = list(tensors)
    return work


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    if not _is_member(group):
        return None
    _mark_written(tensor)
    return _with_outputs(_group(group).all_reduce(_data(tensor), op, async_op), tensor)


def reduce(tensor, dst=0, op=ReduceOp.SUM, group=None, async_op=False):
    if not _is_member(group):
        return None
    pg = _group(group)
    _mark_written(tensor)
    return pg.reduce(_data(tensor), _group_rank(pg, dst, "dst"), op, async_op)


def broadcast(tensor, src=0, group=None, async_op=False):
    if not _is_member(group):
        return None
    pg = _group(group)
    _mark_written(tensor)
    return _with_outputs(pg.broadcast(_data(tensor), _group_rank(pg, src, "src"), async_op),
                         tensor)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """``output_tensor`` holds world_size inputs, concatenated or stacked along dim 0."""
    if not _is_member(group):
        return None
    _mark_written(output_tensor)
    return _with_outputs(
        _group(group).all_gather(_data(output_tensor), _data(input_tensor), async_op),
        output_tensor)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    if not _is_member(group):
        return None
    pg = _group(group)
    _data(tensor)
    _check_list_length(tensor_list, pg, "all_gather", "tensor_list")
    _same_size(tensor_list, tensor, "all_gather")
    gathered = np.empty((pg.size, tensor._data.size), dtype=tensor._data.dtype)
    work = pg.all_gather(gathered, _host(tensor._data), async_op)
    return _with_outputs(_then(work, lambda: _scatter_rows(gathered, tensor_list)), *tensor_list)


def _scatter_rows(rows, tensors):
    for row, tensor in zip(rows, tensors):
        tensor._data[...] = _like(tensor._data, row.reshape(tensor._data.shape))
        _mark_written(tensor)


def _like(target, host_values):
    if isinstance(target, np.ndarray):
        return host_values
    from disttorch.core.backend import get_array_module
    return get_array_module(target).asarray(host_values)


def _check_list_length(tensors, pg, op, name):
    if tensors is None or len(tensors) != pg.size:
        raise ValueError(f"{op}: {name} must hold one tensor per rank of the group "
                         f"({pg.size}), got {0 if tensors is None else len(tensors)}")


def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    if not _is_member(group):
        return None
    pg = _group(group)
    root = _group_rank(pg, dst, "dst")
    outputs = None
    if pg.rank == root:
        _check_list_length(gather_list, pg, "gather", "gather_list")
        _same_size(gather_list, tensor, "gather")
        outputs = [_data(output) for output in gather_list]
        _mark_written(*gather_list)
    return pg.gather(_data(tensor), outputs, root, async_op)


def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    if not _is_member(group):
        return None
    pg = _group(group)
    root = _group_rank(pg, src, "src")
    inputs = None
    if pg.rank == root:
        _check_list_length(scatter_list, pg, "scatter", "scatter_list")
        _same_size(scatter_list, tensor, "scatter")
        inputs = [_data(block) for block in scatter_list]
    _mark_written(tensor)
    return pg.scatter(_data(tensor), inputs, root, async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """``input`` holds world_size blocks shaped like ``output`` (concatenated or stacked)."""
    if not _is_member(group):
        return None
    _mark_written(output)
    return _with_outputs(_group(group).reduce_scatter(_data(output), _data(input), op, async_op),
                         output)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    if not _is_member(group):
        return None
    pg = _group(group)
    _check_list_length(input_list, pg, "reduce_scatter", "input_list")
    _same_size(input_list, output, "reduce_scatter")
    _mark_written(output)
    return pg.reduce_scatter(_data(output), _stack_host(input_list), op, async_op)


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
    if not _is_member(group):
        return None
    pg = _group(group)
    _check_list_length(output_tensor_list, pg, "all_to_all", "output_tensor_list")
    _check_list_length(input_tensor_list, pg, "all_to_all", "input_tensor_list")
    _mark_written(*output_tensor_list)
    return pg.all_to_all([_data(t) for t in output_tensor_list],
                         [_data(t) for t in input_tensor_list], async_op)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op=False):
    """all_to_all on dim-0 slices of one tensor (equal slices unless split sizes are given)."""
    if not _is_member(group):
        return None
    pg = _group(group)
    outputs = _split_rows(_data(output), output_split_sizes, pg.size)
    inputs = _split_rows(_data(input), input_split_sizes, pg.size)
    _mark_written(output)
    return pg.all_to_all(outputs, inputs, async_op)


def _split_rows(array, split_sizes, parts):
    if split_sizes is None:
        if array.shape[0] % parts:
            raise ValueError(f"all_to_all_single: dim 0 ({array.shape[0]}) must divide evenly "
                             f"by the group size {parts}, or pass split sizes")
        split_sizes = [array.shape[0] // parts] * parts
    bounds = np.cumsum([0, *split_sizes])
    return [array[low:high] for low, high in zip(bounds[:-1], bounds[1:])]


def barrier(group=None, async_op=False, device_ids=None):
    if not _is_member(group):
        return None
    return _group(group).barrier(async_op)


def monitored_barrier(group=None, timeout=None, wait_all_ranks=False):
    """A barrier whose timeout error names the ranks that did not arrive (all barriers do)."""
    return barrier(group)


__all__ = [
    "Backend", "CollectiveMismatch", "CollectiveTimeout", "DistBackendError", "DistError",
    "DistNetworkError", "DistStoreError", "GroupMember", "P2POp", "PrefixStore", "ProcessGroup",
    "RankFailure",
    "ReduceOp", "Store", "TCPStore", "Work", "all_gather", "all_gather_into_tensor",
    "all_gather_object", "all_reduce", "all_to_all", "all_to_all_single", "barrier",
    "batch_isend_irecv", "broadcast", "broadcast_object_list", "destroy_process_group", "dump_flight_recorder",
    "gather",
    "gather_object", "get_backend", "get_global_rank", "get_group_rank", "get_node_local_rank",
    "get_process_group_ranks", "get_rank", "get_world_size", "group", "init_process_group",
    "irecv", "is_available", "is_gloo_available", "is_initialized", "is_nccl_available",
    "is_torchelastic_launched",
    "isend", "monitored_barrier", "new_group", "recv", "reduce", "reduce_scatter",
    "reduce_scatter_tensor", "scatter", "scatter_object_list", "send",
]
