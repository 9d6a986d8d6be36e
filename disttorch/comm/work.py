"""Work handles for asynchronous collectives, and the thread that runs them."""
import datetime
import queue
import threading
import time
from collections import deque

from .errors import CollectiveTimeout


class Work:
    """Handle of a collective started with ``async_op=True`` (torch.distributed.Work).

    ``wait()`` blocks until the collective finished and re-raises its error;
    ``is_completed()`` polls without blocking.
    """

    def __init__(self, description):
        self._description = description
        self._done = threading.Event()
        self._error = None
        self._outputs = []
        # perf_counter() when the collective began and ended running (DDP's bucket timelines).
        self.started_at = self.finished_at = None
        # Set for a deferred collective: runs it (and any deferred before it) in the waiting thread.
        self._run_deferred = None

    def _finish(self, error=None):
        self._error = error
        self.finished_at = time.perf_counter()
        self._done.set()

    def is_completed(self):
        return self._done.is_set()

    def _run_if_deferred(self):
        if self._run_deferred is not None and not self._done.is_set():
            self._run_deferred()

    def is_success(self):
        return self._done.is_set() and self._error is None

    def exception(self):
        return self._error

    def wait(self, timeout=None):
        if isinstance(timeout, datetime.timedelta):
            timeout = timeout.total_seconds()
        self._run_if_deferred()
        if not self._done.wait(timeout):
            raise CollectiveTimeout(
                f"Work.wait: {self._description} did not finish within {timeout}s")
        if self._error is not None:
            raise self._error
        return True

    synchronize = wait

    def result(self):
        """The collective's output tensors (after wait()), like torch's Work.result()."""
        self.wait()
        return self._outputs

    def get_future(self):
        """A disttorch.futures.Future that completes with result() when waited on."""
        from disttorch.futures import Future
        return Future.from_work(self, self._outputs)


class Executor:
    """Runs collectives one at a time, in submission order.

    A blocking collective with nothing queued runs right in the caller's thread
    (no thread hand-off on the latency path); anything else goes to one
    background thread, which is what lets ``async_op`` overlap with compute.
    A deferred job (one whose data already left, see ProcessGroup._run) waits
    for someone to wait on it, and then runs in that thread; the background
    thread and the deferred list are never both in use, so order holds.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread = None
        self._deferred = deque()

    def run(self, job, description, async_op, deferred=False):
        if deferred and self._pending == 0:
            work = Work(description)
            work._run_deferred = lambda: self._run_deferred_until(work)
            self._deferred.append((job, work))
            return work
        self._run_deferred_until(None)
        if not async_op and self._pending == 0:
            with self._lock:
                job()
            return None
        work = Work(description)
        with self._pending_lock:
            self._pending += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="disttorch-comm", daemon=True)
            self._thread.start()
        self._queue.put((job, work))
        if async_op:
            return work
        work.wait()
        return None

    def idle(self):
        """Whether the background thread has nothing to run (deferred jobs do not count)."""
        return self._pending == 0

    def run_now(self, job, description):
        """Run ``job`` to completion in this thread; returns its finished Work."""
        work = Work(description)
        work.started_at = time.perf_counter()
        self.run(job, description, False)
        work._finish()
        return work

    def _run_deferred_until(self, last):
        """Run deferred jobs in order, up to ``last`` (None: all of them)."""
        if not self._deferred:
            # Without this check every submission would wait for the thread's current job (the lock).
            return
        with self._lock:
            while self._deferred:
                job, work = self._deferred.popleft()
                error = None
                try:
                    work.started_at = time.perf_counter()
                    job()
                except BaseException as failure:  # handed to whoever waits on the Work
                    error = failure
                work._finish(error)
                if work is last:
                    return

    def call(self, function):
        """Run a short socket operation (a probe) between queued collectives."""
        with self._lock:
            return function()

    def _loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, work = item
            error = None
            try:
                with self._lock:
                    work.started_at = time.perf_counter()
                    job()
            except BaseException as failure:  # handed to whoever waits on the Work
                error = failure
            with self._pending_lock:
                self._pending -= 1
            work._finish(error)

    def drain(self):
        """Finish deferred and queued collectives, then stop the background thread."""
        self._run_deferred_until(None)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
