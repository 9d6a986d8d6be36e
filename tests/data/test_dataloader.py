import gc
import mmap
import multiprocessing
import os
import time

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import (DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info)

pytestmark = pytest.mark.timeout(60)


class Squares(Dataset):
    def __init__(self, n, slow_index=None):
        self.n = n
        self.slow_index = slow_index

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index == self.slow_index:
            time.sleep(0.3)  # makes this batch arrive after later ones, so re-ordering is exercised
        return {"x": np.full(3, index, np.float32), "y": index * index}


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        if index == 5:
            raise ValueError(f"bad sample {index}")
        return index


class KeyFailing(Failing):
    def __getitem__(self, index):
        return {}["missing"]


class Stream(IterableDataset):
    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.start, self.end))
        return iter(range(self.start + info.id, self.end, info.num_workers))

    def __len__(self):
        return self.end - self.start


class WorkerReport(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        info = get_worker_info()
        return np.array([info.id, info.num_workers, os.getpid(), int(disttorch.randint(0, 10 ** 9, (1,)).item()),
                         int(os.environ.get("DISTTORCH_TEST_INIT", "-1"))])


class Sleepy(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        time.sleep(5)
        return index


class Dying(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        os._exit(3)


def _set_init_marker(worker_id):
    os.environ["DISTTORCH_TEST_INIT"] = str(100 + worker_id)


def _no_children_left():
    deadline = time.time() + 5
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


def _flatten(batches):
    return [(b["x"].numpy().tolist(), b["y"].tolist()) for b in batches]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_match_torch(num_workers):
    torch = pytest.importorskip("torch")
    ours = list(DataLoader(Squares(11), batch_size=4, num_workers=num_workers))
    theirs = list(torch.utils.data.DataLoader(Squares(11), batch_size=4))
    assert _flatten(ours) == _flatten(theirs)
    assert ours[0]["y"].dtype == disttorch.int64 and ours[0]["x"].dtype == disttorch.float32
    assert _no_children_left()


def test_workers_keep_order_when_batches_arrive_out_of_order():
    loader = DataLoader(Squares(24, slow_index=0), batch_size=2, num_workers=3, prefetch_factor=2)
    assert [b["y"].tolist() for b in loader] == [[i * i, (i + 1) ** 2] for i in range(0, 24, 2)]
    assert _no_children_left()


def test_tensor_dataset_with_workers_and_drop_last():
    x = disttorch.arange(40).reshape(20, 2).float()
    y = disttorch.arange(20)
    loader = DataLoader(TensorDataset(x, y), batch_size=6, drop_last=True, num_workers=2)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    assert batches[2][1].tolist() == [12, 13, 14, 15, 16, 17]
    assert batches[0][0].shape == (6, 2)


def test_shuffle_is_reproducible_with_generator():
    dataset = TensorDataset(disttorch.arange(50))
    orders = []
    for _ in range(2):
        loader = DataLoader(dataset, batch_size=10, shuffle=True, generator=disttorch.Generator().manual_seed(7))
        orders.append(np.concatenate([batch[0].numpy() for batch in loader]).tolist())
    assert orders[0] == orders[1] and sorted(orders[0]) == list(range(50)) and orders[0] != list(range(50))


def test_worker_exception_is_reraised_with_traceback():
    loader = DataLoader(Failing(), batch_size=2, num_workers=2)
    with pytest.raises(ValueError) as error:
        list(loader)
    message = str(error.value)
    assert "Caught ValueError in DataLoader worker process" in message
    assert "bad sample 5" in message and "Traceback" in message and "__getitem__" in message
    assert _no_children_left()


def test_worker_key_error_keeps_readable_message():
    with pytest.raises(KeyError) as error:
        list(DataLoader(KeyFailing(), num_workers=1))
    assert "Traceback" in str(error.value) and "\\n" not in str(error.value)
    assert _no_children_left()


def test_worker_info_seeds_and_init_fn():
    loader = DataLoader(WorkerReport(), batch_size=None, num_workers=2, worker_init_fn=_set_init_marker,
                        generator=disttorch.Generator().manual_seed(0))
    rows = [row.numpy().tolist() for row in loader]
    assert sorted(row[0] for row in rows) == [0, 0, 1, 1]
    assert all(row[1] == 2 for row in rows)
    assert len({row[2] for row in rows}) == 2 and os.getpid() not in {row[2] for row in rows}
    assert sorted({row[4] for row in rows}) == [100, 101]
    first_draws = {row[0]: row[3] for row in rows[:2]}
    assert first_draws[0] != first_draws[1]  # each worker seeds its RNG with base_seed + worker_id
    again = DataLoader(WorkerReport(), batch_size=None, num_workers=2, worker_init_fn=_set_init_marker,
                       generator=disttorch.Generator().manual_seed(0))
    assert [row.numpy().tolist()[3] for row in again] == [row[3] for row in rows]
    assert get_worker_info() is None


@pytest.mark.parametrize("num_workers", [0, 2])
def test_iterable_dataset(num_workers):
    loader = DataLoader(Stream(0, 10), batch_size=3, num_workers=num_workers)
    values = sorted(v for batch in loader for v in batch.tolist())
    assert values == list(range(10))
    unbatched = DataLoader(Stream(0, 5), batch_size=None, num_workers=num_workers)
    assert sorted(int(v) for v in unbatched) == list(range(5))
    assert _no_children_left()


def test_iterable_dataset_drop_last_and_len():
    loader = DataLoader(Stream(0, 10), batch_size=4, drop_last=True)
    assert [batch.tolist() for batch in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(loader) == 2
    assert len(DataLoader(Stream(0, 10), batch_size=4)) == 3


def test_persistent_workers_reuse_processes_and_restart_mid_epoch():
    loader = DataLoader(Squares(12), batch_size=2, num_workers=2, persistent_workers=True)
    iterator = iter(loader)
    next(iterator)
    pids = sorted(worker.pid for worker in iterator._workers)
    second_epoch = [b["y"].tolist() for b in loader]  # restarts although the first epoch was not finished
    assert second_epoch == [[i * i, (i + 1) ** 2] for i in range(0, 12, 2)]
    assert [b["y"].tolist() for b in loader] == second_epoch
    assert sorted(worker.pid for worker in loader._iterator._workers) == pids
    iterable_loader = DataLoader(Stream(0, 6), batch_size=2, num_workers=2, persistent_workers=True)
    for _ in range(2):
        assert sorted(v for batch in iterable_loader for v in batch.tolist()) == list(range(6))
    del loader, iterator, iterable_loader
    assert _no_children_left()


def test_breaking_out_and_deleting_the_iterator_stops_workers():
    iterator = iter(DataLoader(Squares(100), batch_size=2, num_workers=2))
    next(iterator)
    workers = list(iterator._workers)
    del iterator
    assert not any(worker.is_alive() for worker in workers)


def test_timeout_raises():
    loader = DataLoader(Sleepy(), num_workers=1, timeout=0.5)
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.5 seconds"):
        next(iter(loader))
    assert _no_children_left()


def test_dead_worker_is_reported():
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        list(DataLoader(Dying(), num_workers=1))
    assert _no_children_left()


def test_batch_sampler_and_custom_collate():
    loader = DataLoader(Squares(6), batch_sampler=[[5, 0], [2]], collate_fn=lambda batch: [s["y"] for s in batch])
    assert list(loader) == [[25, 0], [4]]
    assert len(loader) == 2


def test_pin_memory_is_accepted_on_cpu():
    batches = list(DataLoader(Squares(4), batch_size=2, pin_memory=True))
    assert len(batches) == 2


OPTION_ERRORS = [
    dict(num_workers=-1),
    dict(timeout=-1),
    dict(prefetch_factor=2),
    dict(num_workers=1, prefetch_factor=-1),
    dict(persistent_workers=True),
    dict(sampler=[0, 1], shuffle=True),
    dict(batch_sampler=[[0]], batch_size=2),
    dict(batch_sampler=[[0]], drop_last=True),
    dict(batch_sampler=[[0]], sampler=[0]),
    dict(batch_size=None, drop_last=True),
]


@pytest.mark.parametrize("options", OPTION_ERRORS, ids=lambda options: ",".join(options))
def test_option_errors_match_torch(options):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as theirs:
        torch.utils.data.DataLoader(list(range(4)), **options)
    with pytest.raises(ValueError) as ours:
        DataLoader(list(range(4)), **options)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("options", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])])
def test_iterable_dataset_option_errors_match_torch(options):
    torch = pytest.importorskip("torch")

    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(ValueError) as theirs:
        torch.utils.data.DataLoader(TorchStream(), **options)
    with pytest.raises(ValueError) as ours:
        DataLoader(Stream(0, 3), **options)
    assert str(ours.value).split(", but got")[0] == str(theirs.value).split(", but got")[0]


class Large(Dataset):
    """Samples big enough that batches travel through shared memory files."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        return np.full((64, 64, 16), index, np.float32), index


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def _fds_return_to(expected):
    """Open descriptors drop back to `expected` once collectable objects are gone (polls up to 5 s)."""
    deadline = time.time() + 5
    while True:
        gc.collect()
        if _open_fds() == expected or time.time() > deadline:
            return _open_fds() == expected
        time.sleep(0.05)


def _maps_shared_memory(array):
    while isinstance(array, np.ndarray):
        array = array.base
    return isinstance(array, memoryview) and isinstance(array.obj, mmap.mmap)


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd (Linux)")
def test_large_batches_travel_through_shared_memory_without_leaks():
    # Earlier tests' loaders may still be closing; count from a settled baseline.
    assert _no_children_left()
    gc.collect()
    fds_before = _open_fds()
    loader = DataLoader(Large(), batch_size=4, num_workers=2)
    for step, (images, labels) in enumerate(loader):
        assert images.shape == (4, 64, 64, 16) and images.dtype == disttorch.float32
        assert _maps_shared_memory(images.numpy())
        np.testing.assert_array_equal(images.numpy()[:, 0, 0, 0], np.arange(4 * step, 4 * step + 4))
        assert labels.tolist() == list(range(4 * step, 4 * step + 4))
    as_numpy = DataLoader(Large(), batch_size=4, num_workers=2,
                          collate_fn=lambda batch: np.stack([image for image, _ in batch]))
    assert all(isinstance(batch, np.ndarray) and batch.shape == (4, 64, 64, 16) for batch in as_numpy)
    iterator = iter(DataLoader(Large(), batch_size=2, num_workers=2, prefetch_factor=4))
    next(iterator)
    time.sleep(0.2)  # let the workers fill the prefetch queue with undelivered batches
    del iterator
    persistent = DataLoader(Large(), batch_size=2, num_workers=2, persistent_workers=True)
    next(iter(persistent))
    assert len(list(persistent)) == 8
    del persistent, images, labels, as_numpy
    assert _no_children_left()
    assert _fds_return_to(fds_before), f"{_open_fds() - fds_before} file descriptors leaked"


class Uneven(IterableDataset):
    """Worker w yields w * 7 samples, so workers run dry at very different times."""

    def __iter__(self):
        info = get_worker_info()
        return iter([info.id * 100 + i for i in range(info.id * 7)])


@pytest.mark.parametrize("persistent", [False, True])
def test_iterable_workers_that_end_early(persistent):
    loader = DataLoader(Uneven(), batch_size=2, num_workers=3, prefetch_factor=3, persistent_workers=persistent)
    expected = sorted(w * 100 + i for w in range(3) for i in range(w * 7))
    for _ in range(2):
        assert sorted(v for batch in loader for v in batch.tolist()) == expected
    del loader
    assert _no_children_left()


def _failing_init(worker_id):
    raise RuntimeError(f"init failed in worker {worker_id}")


def test_worker_init_fn_error_is_reraised():
    with pytest.raises(RuntimeError, match="(?s)Caught RuntimeError in DataLoader worker process.*init failed"):
        list(DataLoader(Squares(4), num_workers=1, worker_init_fn=_failing_init))
    assert _no_children_left()


def test_attributes_are_frozen_after_init():
    loader = DataLoader(Squares(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        loader.batch_size = 3
    loader.num_workers = 0  # not frozen in PyTorch either


def test_unpicklable_batch_and_local_exception_do_not_hang():
    class LocalError(Exception):
        pass

    class Unpicklable(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return lambda: index

    with pytest.raises(Exception, match="must be picklable"):  # the pickling error's own type
        list(DataLoader(Unpicklable(), batch_size=None, num_workers=1))

    class RaisesLocal(Unpicklable):
        def __getitem__(self, index):
            raise LocalError("only this process knows the class")

    with pytest.raises(RuntimeError, match="(?s)Caught RuntimeError.*LocalError: only this process"):
        list(DataLoader(RaisesLocal(), num_workers=1))
    assert _no_children_left()


_ORPHAN_SCRIPT = """
import sys, time
import numpy as np
from disttorch.utils.data import DataLoader

class Rows:
    def __len__(self):
        return 100000

    def __getitem__(self, index):
        return np.full(%d, index, np.float32)

iterator = iter(DataLoader(Rows(), batch_size=32, num_workers=2, prefetch_factor=4))
next(iterator)
print(" ".join(str(worker.pid) for worker in iterator._workers), flush=True)
time.sleep(120)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sample_floats", [256, 16384], ids=["inline", "shared-memory"])
def test_workers_exit_when_the_main_process_is_killed(sample_floats):
    import signal
    import subprocess
    import sys
    main = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT % sample_floats], stdout=subprocess.PIPE,
                            text=True)
    try:
        worker_pids = [int(pid) for pid in main.stdout.readline().split()]
        assert len(worker_pids) == 2
        time.sleep(0.5)  # let the workers fill the prefetch queue
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    deadline = time.time() + 20
    alive = worker_pids
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _process_exists(pid)]
    assert not alive, f"workers {alive} outlived their killed main process"


def _process_exists(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited already
    except FileNotFoundError:
        return False


_SAMPLER_RAISES_SCRIPT = """
from disttorch.utils.data import DataLoader, Sampler


class Broken(Sampler):
    def __init__(self):
        pass

    def __iter__(self):
        raise ValueError("the sampler broke")

    def __len__(self):
        return 8


for batch in DataLoader(list(range(8)), batch_size=2, num_workers=2, sampler=Broken()):
    pass
"""


@pytest.mark.timeout(90)
def test_a_sampler_that_raises_at_iter_lets_the_process_exit():
    import subprocess
    import sys
    # torch exits with status 1 and the traceback; a hang here used to last until the timeout.
    done = subprocess.run([sys.executable, "-c", _SAMPLER_RAISES_SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "ValueError: the sampler broke" in done.stderr
