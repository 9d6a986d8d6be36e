"""disttorch.futures.Future: then() chains, callbacks, errors, collect_all."""
import threading

import pytest

from disttorch.futures import Future, collect_all, wait_all


class FakeWork:
    """Stands in for a collective's handle: completes when the test says so."""

    def __init__(self):
        self.finished = threading.Event()

    def wait(self):
        self.finished.wait(5)
        return True


def test_then_chains_run_in_order_when_waited():
    work = FakeWork()
    fut = Future.from_work(work, 3).then(lambda f: f.value() * 2).then(lambda f: f.value() + 1)
    assert not fut.done()
    work.finished.set()
    assert fut.wait() == 7 and fut.done()


def test_errors_surface_at_wait_of_the_chained_future():
    def broken(_):
        raise ValueError("bad bucket")
    fut = Future()
    chained = fut.then(broken)
    fut.set_result(1)
    with pytest.raises(ValueError, match="bad bucket"):
        chained.wait()


def test_done_callbacks_and_collect_all():
    seen = []
    a, b = Future(), Future()
    a.add_done_callback(lambda f: seen.append(f.value()))
    a.set_result("x")
    b.set_result("y")
    b.add_done_callback(lambda f: seen.append(f.value()))
    assert seen == ["x", "y"]
    assert [f.value() for f in collect_all([a, b]).wait()] == ["x", "y"]
    assert wait_all([a, b]) == ["x", "y"]
