"""torch.futures: a value that arrives later, with then() chaining (used by DDP comm hooks).

Futures here are lazy: a future made from a collective's Work, and every future chained on it with
then(), complete when first waited for, in the waiting thread. That keeps callbacks (which touch
tensors) out of the communication thread.
"""
import threading

__all__ = ["Future", "collect_all", "wait_all"]


class Future:
    def __init__(self):
        self._done = threading.Event()
        self._value = None
        self._error = None
        self._wait_fn = None
        self._callbacks = []

    @classmethod
    def from_work(cls, work, value):
        """A future that completes when `work` (a collective's handle) does, yielding `value`."""
        fut = cls()

        def wait():
            work.wait()
            fut.set_result(value)
        fut._wait_fn = wait
        return fut

    def done(self):
        return self._done.is_set()

    def set_result(self, value):
        self._value = value
        self._complete()

    def set_exception(self, error):
        self._error = error
        self._complete()

    def _complete(self):
        self._done.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def wait(self):
        self._resolve()
        if self._error is not None:
            raise self._error
        return self._value

    def _resolve(self):
        """Block until complete, running the pending wait (and chained callbacks) if there is one."""
        if self._wait_fn is not None and not self._done.is_set():
            wait_fn, self._wait_fn = self._wait_fn, None
            try:
                wait_fn()
            except Exception as err:  # the collective's error surfaces from every waiter
                self.set_exception(err)
        self._done.wait()

    def value(self):
        return self.wait()

    def add_done_callback(self, callback):
        """Run callback(self) once this future completes (at once if it already has)."""
        if self.done():
            callback(self)
        else:
            self._callbacks.append(callback)

    def then(self, callback):
        """A future of callback(self); the callback runs when the result is first waited for."""
        chained = Future()

        def wait():
            try:
                self.wait()
                chained.set_result(callback(self))
            except Exception as err:  # the error surfaces at chained.wait(), as in PyTorch
                chained.set_exception(err)
        chained._wait_fn = wait
        return chained


def collect_all(futures):
    """A future of the list of `futures`, complete once each of them is."""
    collected = Future()

    def wait():
        for fut in futures:
            fut._resolve()  # a failed future keeps its error for whoever reads its value
        collected.set_result(list(futures))
    collected._wait_fn = wait
    return collected


def wait_all(futures):
    """The values of `futures`, in order (raises the first error met)."""
    return [fut.wait() for fut in futures]
