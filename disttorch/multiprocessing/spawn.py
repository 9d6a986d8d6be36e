"""spawn/start_processes with torch's contract: fn(i, *args) in each child, and the first failure
re-raised in the parent with the child's traceback while the other children are stopped."""
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import time
import traceback

_PR_SET_PDEATHSIG = 1


class ProcessException(Exception):
    __slots__ = ["error_index", "error_pid"]

    def __init__(self, msg, error_index, error_pid):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.error_pid = error_pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid)


class ProcessRaisedException(ProcessException):
    """A child raised; the message carries its formatted traceback."""


class ProcessExitedException(ProcessException):
    """A child exited non-zero or was killed by a signal without raising in Python."""

    __slots__ = ["exit_code"]

    def __init__(self, msg, error_index, error_pid, exit_code, signal_name=None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid, self.exit_code, self.signal_name)


def _die_with_parent():
    """Linux only: a child whose parent dies gets SIGINT, so no orphan keeps training."""
    prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT))


def _child_main(fn, index, args, error_file):
    _die_with_parent()
    try:
        fn(index, *args)
    except KeyboardInterrupt:
        pass  # the parent is stopping us
    except Exception:
        # Plain text, not a pickle: the parent only ever reads a string back.
        with open(error_file, "w", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
        sys.exit(1)


class ProcessContext:
    def __init__(self, processes, error_files):
        self.processes = processes
        self.error_files = error_files
        self.sentinels = {process.sentinel: index for index, process in enumerate(processes)}

    def pids(self):
        return [process.pid for process in self.processes]

    def join(self, timeout=None, grace_period=None):
        """Wait for the children. True when all finished cleanly, False if some still run after `timeout`.

        When one fails, the others get `grace_period` seconds (default 0) to finish, then SIGTERM, then
        SIGKILL after another grace period (default 30 s), and the failure is raised here.
        """
        if not self.sentinels:
            return True
        ready = multiprocessing.connection.wait(list(self.sentinels), timeout=timeout)
        failed = None
        for sentinel in ready:
            index = self.sentinels.pop(sentinel)
            self.processes[index].join()
            if self.processes[index].exitcode != 0:
                failed = index
                break
        if failed is None:
            if not self.sentinels:
                self._remove_error_files()
            return not self.sentinels
        self._stop_the_rest(grace_period)
        raise self._failure(failed)

    def _stop_the_rest(self, grace_period):
        if grace_period is not None:
            self._wait_all(grace_period)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        self._wait_all(30 if grace_period is None else grace_period)
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join()
        self.sentinels.clear()

    def _wait_all(self, seconds):
        pending = [p.sentinel for p in self.processes if p.is_alive()]
        if pending:
            # wait() returns as soon as one is ready, so keep waiting until all are or time is up.
            deadline = time.monotonic() + seconds
            while pending and time.monotonic() < deadline:
                multiprocessing.connection.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
                pending = [p.sentinel for p in self.processes if p.is_alive()]

    def _failure(self, index):
        process = self.processes[index]
        try:
            with open(self.error_files[index], encoding="utf-8") as handle:
                child_traceback = handle.read()
        except OSError:
            child_traceback = ""
        self._remove_error_files()
        if child_traceback:
            return ProcessRaisedException(
                f"\n\n-- Process {index:d} terminated with the following error:\n{child_traceback}",
                index, process.pid)
        code = process.exitcode
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"<Unknown signal {-code}>"
            return ProcessExitedException(f"process {index:d} terminated with signal {name}", index, process.pid,
                                          code, name)
        return ProcessExitedException(f"process {index:d} terminated with exit code {code:d}", index,
                                      process.pid, code)

    def _remove_error_files(self):
        for path in self.error_files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class SpawnContext(ProcessContext):
    """The type torch's spawn(join=False) returns."""


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Start `nprocs` processes running fn(i, *args); join them (re-raising a failure) unless join=False."""
    context = multiprocessing.get_context(start_method)
    processes, error_files = [], []
    for index in range(nprocs):
        fd, error_file = tempfile.mkstemp(prefix="disttorch-spawn-", suffix=".err")
        os.close(fd)
        os.unlink(error_file)  # only a failing child creates it
        process = context.Process(target=_child_main, args=(fn, index, args, error_file), daemon=daemon)
        process.start()
        processes.append(process)
        error_files.append(error_file)
    spawned = SpawnContext(processes, error_files)
    if not join:
        return spawned
    while not spawned.join():
        pass
    return None


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """torch.multiprocessing.spawn: `fn` must be importable by the children (defined at module level)."""
    if start_method != "spawn":
        import warnings
        warnings.warn(f"This method only supports start_method=spawn (got: {start_method}).\n"
                      "To use a different start_method use:\n\t\t torch.multiprocessing.start_processes(...)",
                      FutureWarning, stacklevel=2)
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")
