"""torch.multiprocessing: Python's multiprocessing, plus torch's `spawn`/`start_processes`.

disttorch tensors pickle as plain arrays, so a tensor put on a Queue arrives as a copy; PyTorch would
move it to shared memory instead. Training data that must be shared belongs in a DataLoader, which
already passes batches through shared memory.
"""
import multiprocessing as _mp
from multiprocessing import (  # noqa: F401
    Array, Barrier, Condition, Event, JoinableQueue, Lock, Manager, Pipe, Pool, Process, Queue, RLock,
    Semaphore, SimpleQueue, Value, active_children, cpu_count, current_process, freeze_support,
    get_all_start_methods, get_context, get_start_method, parent_process, set_start_method,
)

from .spawn import (  # noqa: F401
    ProcessContext, ProcessException, ProcessExitedException, ProcessRaisedException, spawn, start_processes,
)

_SHARING_STRATEGIES = {"file_descriptor", "file_system"}
_sharing = ["file_descriptor"]


def set_sharing_strategy(new_strategy):
    """Recorded only: disttorch does not pass tensors through shared memory on a Queue (see above)."""
    if new_strategy not in _SHARING_STRATEGIES:
        raise ValueError(f"invalid sharing strategy {new_strategy!r}: expected one of {sorted(_SHARING_STRATEGIES)}")
    _sharing[0] = new_strategy


def get_sharing_strategy():
    return _sharing[0]


def get_all_sharing_strategies():
    return set(_SHARING_STRATEGIES)


__all__ = [name for name in dir(_mp) if not name.startswith("_")] + [
    "spawn", "start_processes", "ProcessContext", "ProcessException", "ProcessExitedException",
    "ProcessRaisedException", "set_sharing_strategy", "get_sharing_strategy", "get_all_sharing_strategies"]
