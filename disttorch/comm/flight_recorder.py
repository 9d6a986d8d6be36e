"""The flight recorder: every rank's last N collectives, written out as JSON when one fails.

Modelled on PyTorch's NCCL flight recorder (TORCH_NCCL_TRACE_BUFFER_SIZE). Each collective a
ProcessGroup runs takes one slot of a fixed ring of ``DISTTORCH_TRACE_BUFFER_SIZE`` slots (default
2000; 0 turns recording off): op, group, sequence number, input sizes and dtypes, wall-clock times
and its state (scheduled, started, completed, failed), plus the error and the ranks it blamed when
it failed. Point-to-point send and recv take slots too (numbered apart, with the peer and the tag),
so a rank stuck in a recv says whom it waits for. Recording stores references to values the
collective already holds (shape tuples, dtype objects); names, strings and JSON are only made when
the record is written.

When a collective fails on a timeout, a dead peer, a mismatch or a peer's abort, the rank writes
``disttorch-trace-rank<R>.json`` into ``DISTTORCH_TRACE_DUMP_DIR`` (default: the temp
folder), prints one line on stderr and names the file in the error. With DISTTORCH_TRACE_DUMP_DIR
set (disttorch-launch sets it to a folder of its own), a rank also writes its record when it exits
and when SIGTERM stops it, so the launcher can show where every rank was when a job failed.
"""
import atexit
import itertools
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time

import numpy as np

from disttorch._atomic_write import atomic_write

DEFAULT_BUFFER_SIZE = 2000
FORMAT_VERSION = 2
SCHEDULED, STARTED, COMPLETED, FAILED = "scheduled", "started", "completed", "failed"
P2P_OPS = ("send", "recv")

# One slot is a list, so a state change is one in-place store; these name its positions.
(_ID, _GROUP, _GROUP_RANKS, _SEQ, _OP, _SIZES, _DTYPES, _REDUCE_OP, _STATE, _CREATED, _STARTED,
 _ENDED, _ERROR, _BLAMED, _PEER, _TAG) = range(16)


def buffer_size_from_env(environ=os.environ):
    text = environ.get("DISTTORCH_TRACE_BUFFER_SIZE", str(DEFAULT_BUFFER_SIZE))
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size < 0:
        raise ValueError(f"DISTTORCH_TRACE_BUFFER_SIZE={text!r} is not valid: it must be an integer "
                         ">= 0 (the number of collectives each rank remembers; 0 turns the flight "
                         "recorder off)")
    return size


class FlightRecorder:
    """A ring of the last ``capacity`` collectives of this process (all its process groups)."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._slots = [None] * capacity
        # next() on a count is one C call, so threads recording at once never share an id.
        self._ids = itertools.count()
        self.rank = None
        self.world_size = None

    def record(self, group_id, group_ranks, seq, op, sizes, dtypes, reduce_op, peer=None, tag=None):
        """Take the next slot for a collective just scheduled; returns it (None when disabled).

        Point-to-point sends and receives are recorded too, numbered apart from the group's
        collectives, with the peer's global rank (None: a receive from any rank) and the tag.
        """
        if not self.capacity:
            return None
        record_id = next(self._ids)
        entry = [record_id, group_id, group_ranks, seq, op, sizes, dtypes, reduce_op, SCHEDULED,
                 time.time_ns(), None, None, None, None, peer, tag]
        self._slots[record_id % self.capacity] = entry
        return entry

    def entries(self):
        """The recorded collectives as JSON-ready dicts, oldest first."""
        # Copies first: other threads go on recording, and a slot may be reused meanwhile.
        taken = [list(entry) for entry in list(self._slots) if entry is not None]
        taken.sort(key=lambda entry: entry[_ID])
        return [_as_dict(entry) for entry in taken]

    def recorded(self):
        """How many collectives were recorded in all (older ones fell out of the ring)."""
        latest = max((entry[_ID] for entry in list(self._slots) if entry is not None), default=-1)
        return latest + 1

    def snapshot(self, reason):
        return {
            "version": FORMAT_VERSION,
            "rank": self.rank,
            "world_size": self.world_size,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "reason": reason,
            "dumped_at_ns": time.time_ns(),
            "buffer_size": self.capacity,
            "recorded": self.recorded(),
            "entries": self.entries(),
        }


def started(entry):
    if entry is not None and entry[_STATE] == SCHEDULED:
        entry[_STARTED] = time.time_ns()
        entry[_STATE] = STARTED


def completed(entry):
    if entry is not None:
        entry[_ENDED] = time.time_ns()
        entry[_STATE] = COMPLETED


def failed(entry, error):
    if entry is not None:
        entry[_ENDED] = time.time_ns()
        # Its text only: the error's traceback would keep the failed collective's arrays alive.
        entry[_ERROR] = f"{type(error).__name__}: {error}"
        entry[_BLAMED] = blamed_ranks(error)
        entry[_STATE] = FAILED


def blamed_ranks(error):
    """The peers an error names as the cause: a failed rank, or those missing at a timeout."""
    rank = getattr(error, "rank", None)
    if isinstance(rank, int) and rank >= 0:
        return [rank]
    return list(getattr(error, "missing_ranks", ()))


def _as_dict(entry):
    return {
        "record_id": entry[_ID],
        "group_id": entry[_GROUP],
        "group_ranks": list(entry[_GROUP_RANKS]),
        "seq": entry[_SEQ],
        "op": entry[_OP],
        "input_sizes": [list(shape) for shape in entry[_SIZES]],
        "input_dtypes": [np.dtype(dtype).name for dtype in entry[_DTYPES]],
        "reduce_op": entry[_REDUCE_OP],
        "state": entry[_STATE],
        "time_created_ns": entry[_CREATED],
        "time_started_ns": entry[_STARTED],
        "time_ended_ns": entry[_ENDED],
        "error": entry[_ERROR],
        "blamed_ranks": entry[_BLAMED],
        "peer": entry[_PEER],
        "tag": entry[_TAG],
    }


_recorder = None
_recorder_lock = threading.Lock()


def recorder():
    """This process's recorder, sized from DISTTORCH_TRACE_BUFFER_SIZE when first needed."""
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = FlightRecorder(buffer_size_from_env())
    return _recorder


def dump_dir():
    return os.environ.get("DISTTORCH_TRACE_DUMP_DIR") or tempfile.gettempdir()


def default_path(rank):
    # One file per rank, as torch's TORCH_NCCL_DEBUG_INFO_TEMP_FILE: a later job's record replaces an
    # earlier one's instead of piling up. Before init_process_group only the pid names the writer.
    name = f"rank{rank}" if rank is not None else f"pid{os.getpid()}"
    return os.path.join(dump_dir(), f"disttorch-trace-{name}.json")


def dump(reason, path=None):
    """Write this process's record as JSON (atomically) to ``path``; returns the path."""
    current = recorder()
    path = path or default_path(current.rank)
    payload = _as_json(current.snapshot(reason)).encode()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda handle: handle.write(payload))
    return path


def _as_json(snapshot):
    """One collective per line: readable with less or grep, and a few times faster to make than
    indented JSON (a full ring at exit must not hold up the process)."""
    entries = [json.dumps(entry) for entry in snapshot.pop("entries")]
    head = json.dumps(snapshot)[:-1]
    return f'{head}, "entries": [\n' + ",\n".join(entries) + "\n]}\n"


def dump_on_failure(error):
    """A collective failed: write the record, say so on stderr, and name the file in ``error``.

    Returns the path, or None when recording is off or the file could not be written (the
    collective's own error matters more than its record).
    """
    current = recorder()
    if not current.capacity:
        return None
    try:
        path = dump(f"{type(error).__name__} in a collective")
    except (OSError, RuntimeError) as why:
        print(f"disttorch: rank {current.rank} could not write its flight record: {why}",
              file=sys.stderr, flush=True)
        return None
    print(f"disttorch: rank {current.rank} wrote its flight record to {path}: "
          f"{where(current.entries(), time.time_ns())}", file=sys.stderr, flush=True)
    if len(error.args) == 1 and isinstance(error.args[0], str):
        error.args = (f"{error.args[0]} [flight record of rank {current.rank}: {path}]",)
    return path


def where(entries, now_ns):
    """Where a rank stands, from its record's entries (dicts, oldest first): the collective it waits
    in or failed in, then the last one it completed, e.g. ``waiting in all_reduce #41 for 30.0 s;
    last completed all_reduce #40``. ``now_ns`` is when the record was taken."""
    done = [entry for entry in entries if entry["state"] == COMPLETED]
    last_done = done[-1] if done else None
    pending = [entry for entry in entries if entry["state"] != COMPLETED
               and (last_done is None or entry["record_id"] > last_done["record_id"])]
    parts = [_pending(pending[0], now_ns)] if pending else []
    parts.append(f"last completed {_name(last_done)}" if last_done else "no collective completed")
    if not pending:
        parts.append("nothing pending")
    return "; ".join(parts)


def _pending(entry, now_ns):
    began = entry["time_started_ns"] or entry["time_created_ns"]
    if entry["state"] == FAILED:
        seconds = ((entry["time_ended_ns"] or now_ns) - began) / 1e9
        error = (entry["error"] or "").split(":", 1)[0]
        blamed = entry["blamed_ranks"] or []
        blame = f", blaming rank {', '.join(map(str, blamed))}" if blamed else ""
        return f"failed in {_name(entry)} after {seconds:.1f} s ({error}{blame})"
    if entry["state"] == STARTED:
        return f"waiting in {_name(entry)} for {(now_ns - began) / 1e9:.1f} s"
    return f"{_name(entry)} queued, not started"


def _name(entry):
    group = "" if entry["group_id"] == 0 else f" of group {entry['group_id']}"
    if entry["op"] in P2P_OPS:
        peer = entry.get("peer")
        toward = "to" if entry["op"] == "send" else "from"
        return (f"{entry['op']} #{entry['seq']}{group} {toward} "
                f"{'any rank' if peer is None else f'rank {peer}'} (tag {entry.get('tag')})")
    return f"{entry['op']} #{entry['seq']}{group}"


_owner_pid = None


def arm_exit_dumps():
    """With DISTTORCH_TRACE_DUMP_DIR set, write the record when this process exits or gets
    SIGTERM (the launcher's stop), so a rank that was not inside a failing collective still
    tells where it was. A SIGTERM handler the program installed itself is left alone."""
    if not os.environ.get("DISTTORCH_TRACE_DUMP_DIR") or not recorder().capacity:
        return
    global _owner_pid
    if _owner_pid == os.getpid():
        return
    _owner_pid = os.getpid()
    atexit.register(_dump_at_exit)
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _dump_then_terminate)


def _dump_at_exit():
    _dump_quietly("exit")


def _dump_then_terminate(signum, frame):
    _dump_quietly("SIGTERM")
    # Die of SIGTERM as before, so whoever waits on this process sees the same exit status.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _dump_quietly(reason):
    # A forked child (a DataLoader worker) inherits the hooks and a copy of a record not its own.
    if os.getpid() != _owner_pid:
        return
    try:
        dump(reason)
    except (OSError, RuntimeError):
        pass  # the process is ending anyway; a missing record shows up as such in the summary
