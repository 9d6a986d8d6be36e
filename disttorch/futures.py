"""torch.futures.Future: a value that arrives later, with then() chaining (used by DDP comm hooks)."""
import threading


class Future:
    def __init__(self):
        self._done = threading.Event()
        self._value = None
        self._error = None
        self._wait_fn = None

    @classmethod
    def from_work(cls, work, value):
        """A future that completes when `work` (a collective's handle) does, yielding `value`."""
        fut = cls()
        fut._value = value

        def wait():
            work.wait()
            fut._done.set()
        fut._wait_fn = wait
        return fut

    def done(self):
        return self._done.is_set()

    def set_result(self, value):
        self._value = value
        self._done.set()

    def set_exception(self, error):
        self._error = error
        self._done.set()

    def wait(self):
        if self._wait_fn is not None and not self._done.is_set():
            self._wait_fn()
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def value(self):
        return self.wait()

    def then(self, callback):
        """A future of callback(self); the callback runs when the result is first waited for."""
        chained = Future()

        def wait():
            self.wait()
            try:
                chained._value = callback(self)
            except Exception as err:  # the error surfaces at chained.wait(), as in PyTorch
                chained._error = err
            chained._done.set()
        chained._wait_fn = wait
        return chained
