"""The workers of one node for one attempt: spawning, watching, and stopping them (torchrun's states)."""

import ctypes
import enum
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from disttorch.launcher.config import LaunchSpec, RoundPlan
from disttorch.launcher.env import worker_env
from disttorch.launcher.flight_records import TraceFolder, position
from disttorch.launcher.output import OutputPump, console_streams
from disttorch.launcher.streams import STDERR, STDOUT

_PR_SET_PDEATHSIG = 1
# Looked up once here: the child between fork and exec should do as little as possible.
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
PUMP_JOIN_SECONDS = 5.0


class WorkerState(str, enum.Enum):
    INIT = "INIT"
    HEALTHY = "HEALTHY"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass
class Failure:
    """A worker that ended badly on its own (not one the launcher stopped), or with exit code 0 before a
    job that then failed (a suspect: see coordination.decide); travels between nodes as JSON."""

    rank: int
    local_rank: int
    node_rank: int
    host: str
    pid: int
    exit_code: int  # negative: killed by that signal, like Popen.returncode
    stderr_tail: list[str]
    timestamp: float

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Failure":
        return cls(**data)


_SIGNAL_HINTS = {
    signal.SIGKILL: "likely out of memory",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error; shared memory may be too small",
    signal.SIGABRT: "aborted",
}


def describe_exit(exit_code: int) -> str:
    if exit_code >= 0:
        return f"exit code {exit_code}"
    try:
        sig = signal.Signals(-exit_code)
    except ValueError:
        return f"signal {-exit_code}"
    hint = _SIGNAL_HINTS.get(sig)
    return f"{sig.name} ({hint})" if hint else sig.name


def _die_with_parent(launcher_pid: int):
    def in_child():
        # The kernel signals on exit of the *thread* that forked, so only the main thread spawns workers.
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != launcher_pid:  # the launcher died before prctl took effect
            os._exit(1)

    return in_child


@dataclass
class Worker:
    local_rank: int
    rank: int
    process: subprocess.Popen | None = None
    state: WorkerState = WorkerState.INIT
    stopped_by_launcher: bool = False
    pumps: list[OutputPump] = field(default_factory=list)
    failure: Failure | None = None

    @property
    def stderr_tail(self) -> list[str]:
        return list(self.pumps[1].tail) if self.pumps else []  # pumps are (stdout, stderr)


class WorkerGroup:
    """All workers of this node for one attempt. Each worker leads its own process group, so stopping
    it also stops whatever it spawned (data loader processes, shells)."""

    def __init__(self, spec: LaunchSpec, plan: RoundPlan):
        self.spec = spec
        self.plan = plan
        self.host = socket.gethostname()
        self.workers = [Worker(local, plan.rank_offset + local) for local in range(spec.nproc)]
        self.traces = TraceFolder(os.environ)

    def start(self) -> None:
        launcher_pid = os.getpid()
        for worker in self.workers:
            outputs = self._outputs(worker)
            worker.process = subprocess.Popen(
                [sys.executable, "-u", *self.spec.command],
                env=worker_env(os.environ, self.spec, self.plan, worker.local_rank, str(self.traces.path)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent(launcher_pid),
            )
            worker.state = WorkerState.HEALTHY
            prefix = f"[{self.spec.rank_label(worker.rank)}] "
            pipes = (worker.process.stdout, worker.process.stderr)
            worker.pumps = [OutputPump(pipe, prefix, console, log)
                            for pipe, (console, log) in zip(pipes, outputs, strict=True)]
            for pump in worker.pumps:
                pump.start()

    def _outputs(self, worker: Worker):
        """(console or None, log file or None) for the worker's stdout, then its stderr."""
        outputs = []
        for console, name, stream in zip(console_streams(), ("stdout", "stderr"), (STDOUT, STDERR), strict=True):
            to_file, to_console = self.spec.output.destinations(worker.local_rank, stream)
            log = None
            if to_file:
                log = open(Path(self.spec.log_dir) / f"rank_{worker.rank}.{name}.log", "ab")
                if self.plan.restart_count:
                    log.write(f"===== restart {self.plan.restart_count} =====\n".encode())
            outputs.append((console if to_console else None, log))
        return outputs

    def poll(self) -> WorkerState:
        """Updates every worker and returns the group's state: FAILED as soon as one worker failed."""
        for worker in self.workers:
            if worker.state is WorkerState.HEALTHY and worker.process.poll() is not None:
                self._record_exit(worker)
        states = {worker.state for worker in self.workers}
        if WorkerState.FAILED in states:
            return WorkerState.FAILED
        if states == {WorkerState.SUCCEEDED}:
            self._join_pumps()
            return WorkerState.SUCCEEDED
        return WorkerState.HEALTHY

    def _record_exit(self, worker: Worker) -> None:
        """Called once the worker was reaped. Leftovers in its process group (data loader processes)
        die with it; the group id cannot be reused while any of them still exists."""
        _signal_group(worker.process.pid, signal.SIGKILL)
        code = worker.process.returncode
        if code == 0:
            worker.state = WorkerState.SUCCEEDED
        elif worker.stopped_by_launcher:
            worker.state = WorkerState.STOPPED
        else:
            worker.state = WorkerState.FAILED
        # Exit code 0 too, even after our SIGTERM: a rank that was leaving while others still needed it.
        if worker.state is WorkerState.FAILED or code == 0:
            worker.failure = Failure(
                rank=worker.rank,
                local_rank=worker.local_rank,
                node_rank=self.spec.node_rank,
                host=self.host,
                pid=worker.process.pid,
                exit_code=code,
                stderr_tail=[],
                timestamp=time.time(),
            )

    def first_failure(self) -> Failure:
        failures = [worker.failure for worker in self.workers if worker.state is WorkerState.FAILED]
        return min(failures, key=lambda failure: failure.timestamp)

    def failures(self) -> list[Failure]:
        """Failures (and workers that exited 0 on their own) in the order they were seen, each with the last
        lines its worker wrote to stderr. Call after stop(): it waits for their output to be read to the end."""
        self._join_pumps()
        failed = [worker for worker in self.workers if worker.failure is not None]
        for worker in failed:
            worker.failure.stderr_tail = worker.stderr_tail
        return sorted((worker.failure for worker in failed), key=lambda failure: failure.timestamp)

    def stop(self, grace_period: float, hurry=lambda: False) -> None:
        """SIGTERM to every running worker's process group, SIGKILL to what is left after the grace
        period (or at once when `hurry()` turns true), then reap everything. Safe to call again."""
        self.poll()  # a worker that failed on its own just now is a failure, not one we stopped
        running = [worker for worker in self.workers if worker.state is WorkerState.HEALTHY]
        for worker in running:
            worker.stopped_by_launcher = True
            _signal_group(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_period
        while any(worker.process.poll() is None for worker in running):
            if time.monotonic() >= deadline or hurry():
                break
            time.sleep(0.02)
        for worker in running:
            _signal_group(worker.process.pid, signal.SIGKILL)
            worker.process.wait()
            self._record_exit(worker)
        self._join_pumps()

    def _join_pumps(self) -> None:
        deadline = time.monotonic() + PUMP_JOIN_SECONDS
        for worker in self.workers:
            for pump in worker.pumps:
                # A grandchild outside the group could hold the pipe open; never wait on it forever.
                pump.join(max(0.0, deadline - time.monotonic()))

    def positions(self) -> list[list]:
        """[rank, where it was] for every worker, from the flight records they wrote; none when no worker
        wrote one (a job without collectives). Call after stop()."""
        started = [worker for worker in self.workers if worker.process is not None]
        records = self.traces.read({worker.process.pid: worker.rank for worker in started})
        if not records:
            return []
        return [[worker.rank, position(records.get(worker.rank), _how_it_ended(worker))] for worker in started]

    def remove_traces(self) -> None:
        self.traces.remove()

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self.workers if worker.process is not None]


def _how_it_ended(worker: Worker) -> str:
    if worker.stopped_by_launcher:
        return "was stopped by the launcher"
    code = worker.process.returncode
    if code is None:
        return "was still running"
    return f"exited ({describe_exit(code)})" if code >= 0 else f"was killed by {describe_exit(code)}"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
