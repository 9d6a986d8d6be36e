"""Where each rank was when the job failed, read from the flight records the workers wrote.

Every worker gets DISTTORCH_TRACE_DUMP_DIR (a folder of this attempt's, unless the user set one), and
disttorch writes each rank's last collectives there as JSON when a collective fails, when the worker
exits and when SIGTERM stops it (disttorch/comm/flight_recorder.py). After a failed attempt the
launcher turns them into one line per rank, e.g. ``rank 0: waiting in all_reduce #41 for 30.0 s``.
"""

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from disttorch.comm.flight_recorder import where

DUMP_DIR_VARIABLE = "DISTTORCH_TRACE_DUMP_DIR"
_PREFIX = "disttorch-trace-"


class TraceFolder:
    """The folder one attempt's workers write their records into: the user's DISTTORCH_TRACE_DUMP_DIR,
    left in place, or a temporary one removed with remove()."""

    def __init__(self, environ: os._Environ | dict):
        given = environ.get(DUMP_DIR_VARIABLE)
        self.owned = not given
        # The first worker that writes a record creates the folder, so a launcher killed before its
        # clean-up leaves nothing behind unless a worker wrote there; the random name is nobody's to guess.
        self.path = Path(os.path.join(tempfile.gettempdir(), f"{_PREFIX}{secrets.token_hex(8)}") if self.owned
                         else given)

    def read(self, rank_of_pid: dict[int, int]) -> dict[int, dict]:
        """The latest record of each rank among the workers `rank_of_pid` names (older runs that wrote
        into a user's folder are skipped by their pids)."""
        records: dict[int, dict] = {}
        try:
            names = [name for name in os.listdir(self.path) if name.startswith(_PREFIX) and name.endswith(".json")]
        except OSError:
            return records
        for name in names:
            try:
                record = json.loads((self.path / name).read_text())
                rank = rank_of_pid.get(record["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # half a file cannot be here (written atomically); someone else's is skipped
            if rank is not None and record.get("dumped_at_ns", 0) >= records.get(rank, {}).get("dumped_at_ns", 0):
                records[rank] = record
        return records

    def remove(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def position(record: dict | None, ended: str) -> str:
    """One rank's place in the job: its pending or failed collective, the last one it completed, and how
    the process ended (`ended`, from the launcher)."""
    if record is None:
        return f"no flight record (it {ended} before writing one)"
    entries = record.get("entries") or []
    if not entries:
        off = " (DISTTORCH_TRACE_BUFFER_SIZE=0)" if record.get("buffer_size") == 0 else ""
        return f"no collective recorded{off}; then it {ended}"
    return f"{where(entries, record['dumped_at_ns'])}; then it {ended}"
