"""ZeroMQ communication layer of disttorch, on raw numpy (or cupy) arrays.

The entry point for gradient bucketing (DDP) is::

    work = disttorch.comm.all_reduce(array, op=ReduceOp.SUM, group=None, async_op=True)
    ...                       # keep computing; do not touch ``array`` meanwhile
    work.wait(timeout=None)   # ``array`` now holds the reduction, in place

``array`` is any numpy array (contiguous ones are reduced in place with no
copy; cupy arrays are staged through host memory). Without ``async_op`` the
call blocks and returns None. Collectives run one at a time in call order on a
background thread, so several async all_reduces may be in flight; each
returned ``Work`` has ``wait(timeout)`` and ``is_completed()``.

``group`` is a ``ProcessGroup`` from ``new_group`` (None: every rank). Every
ProcessGroup method (all_reduce, reduce, broadcast, all_gather,
reduce_scatter, gather, scatter, all_to_all, barrier, send, recv) takes arrays
and group ranks; disttorch.distributed wraps them for Tensors.

Environment knobs (all optional):
  DISTTORCH_SECRET        per-job secret every connection must prove (set by the launcher)
  DISTTORCH_CURVE=1       encrypt data connections with CURVE (multi-host runs)
  DISTTORCH_HANDSHAKE_TIMEOUT  seconds a connection may take to prove the secret before a
                          rank or the store drops it (default 30)
  DISTTORCH_TRANSPORT=tcp use tcp:// even between processes on one host
  DISTTORCH_PIECE_BYTES   pipeline piece size (default 1 MiB, at most 16 MiB)
  DISTTORCH_DIRECT_BYTES  size up to which 3+ ranks skip the ring (default 256 KiB)
  DISTTORCH_SHM=0         keep all_reduce and all_gather data on the sockets even when every
                          rank of the group is on this host (by default it goes through
                          /dev/shm, see shm.py)
  DISTTORCH_SHM_MIN_BYTES smallest array (per rank's result) that takes shared memory
                          (default 64 KiB)
  DISTTORCH_SHM_WINDOW_BYTES  arrays stream through shared memory in windows of this size
                          (default 8 MiB); each rank's file holds two, whatever the array size
  DISTTORCH_SHM_REDUCE_SCATTER_MAX_BYTES  largest reduce_scatter input that takes shared
                          memory (default 4 MiB; larger ones take the sockets' ring)
  DISTTORCH_SOCKET_BUFFER kernel socket buffer request (default 4 MiB)
  DISTTORCH_MALLOC_TUNING=0  keep glibc's malloc defaults (see core/heap.py)
  DISTTORCH_TRACE_BUFFER_SIZE  collectives each rank's flight recorder keeps (default 2000, 0: off)
  DISTTORCH_TRACE_DUMP_DIR  where flight records are written (default: the temp folder); when
                          set, ranks also write theirs at exit and on SIGTERM (flight_recorder.py)
"""
import atexit
import os

from . import flight_recorder
from .errors import (CollectiveMismatch, CollectiveTimeout, DistBackendError, DistError,
                     DistNetworkError, DistStoreError, RankFailure)
from .process_group import ProcessGroup, ReduceOp, World, init_world
from .store import PrefixStore, TCPStore
from .work import Work

_world = None
_exit_hook_pids = set()


def init(init_method=None, rank=-1, world_size=-1, timeout=None, store=None, backend="zmq"):
    """Join the job (see disttorch.distributed.init_process_group for the arguments)."""
    global _world
    if _world is not None:
        raise RuntimeError("the default process group is already initialized; call "
                           "destroy_process_group() before initializing it again")
    _world = init_world(init_method, rank, world_size, timeout, store, backend)
    flight_recorder.arm_exit_dumps()
    if os.getpid() not in _exit_hook_pids:
        # Without destroy_process_group, data still queued in ZeroMQ at exit would be
        # dropped and the peers would see this rank die instead of finishing.
        atexit.register(_shutdown_at_exit, os.getpid())
        _exit_hook_pids.add(os.getpid())
    return _world


def _shutdown_at_exit(owner_pid):
    # A forked child (a DataLoader worker) inherits the sockets but must never touch them.
    if os.getpid() == owner_pid:
        shutdown()


def world():
    if _world is None:
        raise ValueError("Default process group has not been initialized, please make sure "
                         "to call init_process_group.")
    return _world


def is_initialized():
    return _world is not None


def shutdown():
    """Close every socket of this process's job membership (idempotent)."""
    global _world
    if _world is not None:
        current, _world = _world, None
        current.close()


def group_or_default(group):
    return world().default_group if group is None else group


def all_reduce(array, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce ``array`` in place across ``group``; returns a Work when ``async_op``."""
    return group_or_default(group).all_reduce(array, op, async_op)


def broadcast(array, src=0, group=None, async_op=False):
    """Copy group rank ``src``'s ``array`` into every rank's ``array``."""
    return group_or_default(group).broadcast(array, src, async_op)


def barrier(group=None, async_op=False):
    return group_or_default(group).barrier(async_op)


__all__ = [
    "CollectiveMismatch", "CollectiveTimeout", "DistBackendError", "DistError",
    "DistNetworkError", "DistStoreError", "PrefixStore", "ProcessGroup", "RankFailure", "ReduceOp",
    "TCPStore", "Work", "World", "all_reduce", "barrier", "broadcast", "group_or_default",
    "init", "init_world", "is_initialized", "shutdown", "world",
]
