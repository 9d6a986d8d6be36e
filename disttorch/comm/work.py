"""Work handles for asynchronous collectives, and the thread that runs them."""
import datetime
import queue
import threading
import time

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

    def _finish(self, error=None):
        self._error = error
        self.finished_at = time.perf_counter()
        self._done.set()

    def is_completed(self):
        return self._done.is_set()

    def is_success(self):
        return self._done.is_set() and self._error is None

    def exception(self):
        return self._error

    def wait(self, timeout=None):
        if isinstance(timeout, datetime.timedelta):
            timeout = timeout.total_seconds()
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
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread = None

    def run(self, job, description, async_op):
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
        """Wait for queued collectives, then stop the background thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
