"""DataLoader: batches from a dataset, in the main process or in worker processes with prefetching."""
import itertools
import multiprocessing
import os
import queue
import sys
from multiprocessing.reduction import ForkingPickler

from ._collate import default_collate, default_convert
from ._random import draw_seed
from . import _transport
from ._worker import (STATUS_CHECK_INTERVAL, ExceptionWrapper, IterableEnd, IterableFetcher, MapFetcher,
                      ResumeIteration, WorkerSetup, get_worker_info, worker_loop)
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler


class _InfiniteConstantSampler(Sampler):
    """Placeholder indices for an IterableDataset: only how many samples a batch wants matters."""

    def __iter__(self):
        while True:
            yield None


def _check_loader_options(num_workers, timeout, prefetch_factor, persistent_workers):
    if num_workers < 0:
        raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                         "multiprocessing.")
    if timeout < 0:
        raise ValueError("timeout option should be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise ValueError("prefetch_factor option could only be specified in multiprocessing.let num_workers "
                         "> 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
    if prefetch_factor is not None and prefetch_factor < 0:
        raise ValueError("prefetch_factor option should be non-negative")
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")


def _check_iterable_options(shuffle, sampler, batch_sampler):
    if shuffle not in {False, None}:
        raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle option, but got "
                         f"shuffle={shuffle}")
    if sampler is not None:
        raise ValueError("DataLoader with IterableDataset: expected unspecified sampler option, but got "
                         f"sampler={sampler}")
    if batch_sampler is not None:
        raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler option, but "
                         f"got batch_sampler={batch_sampler}")


_FROZEN_AFTER_INIT = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader:
    """Iterates over batches of `dataset`; PyTorch's arguments and validation rules."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None,
                 persistent_workers=False, pin_memory_device="", in_order=True):
        _check_loader_options(num_workers, timeout, prefetch_factor, persistent_workers)
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        # pinned host memory only matters for asynchronous host-to-GPU copies, which numpy arrays lack
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order
        self._is_iterable = isinstance(dataset, IterableDataset)
        if self._is_iterable:
            _check_iterable_options(shuffle, sampler, batch_sampler)
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with "
                             "drop_last")
        if sampler is None:
            if self._is_iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self._iterator = None
        self._initialized = True

    def __setattr__(self, name, value):
        if getattr(self, "_initialized", False) and name in _FROZEN_AFTER_INIT:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __iter__(self):
        if not self.persistent_workers:
            return self._get_iterator()
        if self._iterator is None or self._iterator._shutdown:
            self._iterator = self._get_iterator()
        else:
            self._iterator._reset()
        return self._iterator

    def _get_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        return _MultiProcessIter(self)

    def __len__(self):
        return _length(self._is_iterable, self.dataset, self._index_sampler, self.batch_size, self.drop_last)


def _length(is_iterable, dataset, index_sampler, batch_size, drop_last):
    if not is_iterable:
        return len(index_sampler)
    length = len(dataset)
    if batch_size is None:
        return length
    return length // batch_size if drop_last else -(-length // batch_size)


class _Arrived:
    """A worker's result with the shared-memory descriptors that came with it."""

    __slots__ = ("data", "fds")

    def __init__(self, data, fds):
        self.data, self.fds = data, fds

    def release(self):
        _transport.close_all(self.fds)
        self.fds = []


class _BaseIter:
    """Holds copies of the loader's settings, not the loader: a persistent loader keeps its iterator, and a
    cycle between the two would delay worker shutdown until the cycle collector runs."""

    def __init__(self, loader):
        self._dataset = loader.dataset
        self._is_iterable = loader._is_iterable
        self._index_sampler = loader._index_sampler
        self._auto_collation = loader._auto_collation
        self._collate_fn = loader.collate_fn
        self._batch_size = loader.batch_size
        self._drop_last = loader.drop_last
        self._fetcher_class = IterableFetcher if loader._is_iterable else MapFetcher
        self._shutdown = False
        self._sampler_iter = iter(self._index_sampler)

    def __iter__(self):
        return self

    def __len__(self):
        return _length(self._is_iterable, self._dataset, self._index_sampler, self._batch_size, self._drop_last)

    def _make_fetcher(self):
        return self._fetcher_class(self._dataset, self._auto_collation, self._collate_fn, self._drop_last)


class _SingleProcessIter(_BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._fetcher = self._make_fetcher()

    def __next__(self):
        indices = next(self._sampler_iter)
        return self._fetcher.fetch(indices)


class _MultiProcessIter(_BaseIter):
    """Workers each own an index queue; results come back on one queue and are re-ordered by task index.

    At most prefetch_factor * num_workers tasks are outstanding. Tasks carry the epoch's generation so
    that a persistent loader restarted mid-epoch ignores stale results.
    """

    def __init__(self, loader):
        super().__init__(loader)
        self._num_workers = loader.num_workers
        self._max_outstanding = loader.prefetch_factor * loader.num_workers
        self._persistent = loader.persistent_workers
        self._timeout = loader.timeout
        self._generation = 0
        self._tasks = {}  # task index -> [worker_id], then [worker_id, _Arrived] if it came out of order
        self._start_workers(loader)
        try:
            self._reset(first_epoch=True)
        except BaseException:
            # A sampler that raises in iter(): stop the workers now. Left to __del__, the shutdown would
            # run while the interpreter exits, where the process can hang.
            self._shutdown_workers()
            raise

    def _start_workers(self, loader):
        context = loader.multiprocessing_context or multiprocessing.get_context(
            "fork" if sys.platform.startswith("linux") else "spawn")
        if isinstance(context, str):
            context = multiprocessing.get_context(context)
        setup = WorkerSetup(self._fetcher_class, self._dataset, self._auto_collation, self._collate_fn,
                            self._drop_last, draw_seed(loader.generator), loader.worker_init_fn,
                            self._num_workers)
        use_shared_memory = _transport.shared_memory_supported(context)
        self._done_event = context.Event()
        self._result_queue = context.Queue()
        self._index_queues, self._workers, self._channels = [], [], []
        for worker_id in range(self._num_workers):
            index_queue = context.Queue()
            index_queue.cancel_join_thread()
            main_end, worker_end = _transport.open_channel() if use_shared_memory else (None, None)
            worker = context.Process(
                target=worker_loop, daemon=True,
                args=(setup, worker_id, index_queue, self._result_queue, self._done_event, os.getpid(),
                      worker_end))
            worker.start()
            if worker_end is not None:
                worker_end.close()
            self._index_queues.append(index_queue)
            self._workers.append(worker)
            self._channels.append(main_end)

    def _reset(self, first_epoch=False):
        for task in self._tasks.values():
            if len(task) == 2:
                task[1].release()  # arrived early for an epoch that was abandoned
        self._sampler_iter = iter(self._index_sampler)
        self._send_index = 0
        self._receive_index = 0
        self._tasks = {}
        self._outstanding = 0
        self._worker_active = [True] * self._num_workers
        self._worker_cycle = itertools.cycle(range(self._num_workers))
        if not first_epoch:
            self._generation += 1
            for index_queue in self._index_queues:
                index_queue.put(ResumeIteration(self._generation))
        for _ in range(self._max_outstanding):
            self._dispatch_next_task()

    def _dispatch_next_task(self):
        if self._outstanding >= self._max_outstanding or not any(self._worker_active):
            return
        try:
            indices = next(self._sampler_iter)
        except StopIteration:
            return
        worker_id = next(self._worker_cycle)
        while not self._worker_active[worker_id]:
            worker_id = next(self._worker_cycle)
        self._index_queues[worker_id].put((self._generation, self._send_index, indices))
        self._tasks[self._send_index] = [worker_id]
        self._outstanding += 1
        self._send_index += 1

    def __next__(self):
        if self._shutdown:
            raise StopIteration
        while True:
            if not self._skip_tasks_of_finished_workers():
                if not self._persistent:
                    self._shutdown_workers()
                raise StopIteration
            task = self._tasks[self._receive_index]
            if len(task) == 2:
                del self._tasks[self._receive_index]
                self._receive_index += 1
                return self._deliver(task[1])
            task_index, arrived = self._receive()
            self._outstanding -= 1
            if isinstance(arrived.data, IterableEnd):
                del self._tasks[task_index]
                self._retire_worker(arrived.data.worker_id)
                self._dispatch_next_task()
                continue
            if task_index != self._receive_index:
                self._tasks[task_index].append(arrived)
                continue
            del self._tasks[task_index]
            self._receive_index += 1
            return self._deliver(arrived)

    def _skip_tasks_of_finished_workers(self):
        """Advance past tasks that a worker with an exhausted IterableDataset will never answer."""
        while self._receive_index < self._send_index:
            task = self._tasks.get(self._receive_index)
            if task is not None and (len(task) == 2 or self._worker_active[task[0]]):
                return True
            if task is not None:
                del self._tasks[self._receive_index]
                self._outstanding -= 1
            self._receive_index += 1
        return False

    def _retire_worker(self, worker_id):
        self._worker_active[worker_id] = False
        if not self._persistent:
            self._index_queues[worker_id].put(None)

    def _deliver(self, arrived):
        self._dispatch_next_task()
        if isinstance(arrived.data, ExceptionWrapper):
            if not self._persistent:
                self._shutdown_workers()
            arrived.data.reraise()
        return _transport.unpack(arrived.data, arrived.fds)

    def _receive(self):
        """Next (task_index, data) of the current generation; raises on timeout or a dead worker."""
        waited = 0.0
        while True:
            wait = STATUS_CHECK_INTERVAL
            if self._timeout > 0:
                wait = min(wait, self._timeout - waited)
            try:
                message = self._result_queue.get(timeout=wait)
            except queue.Empty:
                waited += wait
                self._check_workers_alive()
                if self._timeout > 0 and waited >= self._timeout:
                    self._shutdown_workers()
                    raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds") from None
                continue
            generation, task_index, worker_id, data = ForkingPickler.loads(message)
            channel = self._channels[worker_id]
            arrived = _Arrived(data, _transport.receive_fds(data, channel) if channel is not None else [])
            if generation == self._generation:
                return task_index, arrived
            arrived.release()

    def _check_workers_alive(self):
        dead = [str(worker.pid) for worker_id, worker in enumerate(self._workers)
                if self._worker_active[worker_id] and not worker.is_alive()]
        if dead:
            self._shutdown_workers()
            raise RuntimeError(f"DataLoader worker (pid(s) {', '.join(dead)}) exited unexpectedly. Check "
                               "its memory use (it may have been killed by the OOM killer) or run with "
                               "num_workers=0 to see the error in the main process.")

    def _shutdown_workers(self):
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._done_event.set()
            # Each put starts the queue's feeder thread, which never starts while the interpreter exits;
            # the workers see the event anyway.
            if not sys.is_finalizing():
                for index_queue in self._index_queues:
                    index_queue.put(None)
            for worker in self._workers:
                worker.join(timeout=STATUS_CHECK_INTERVAL)
        finally:
            for worker in self._workers:
                if worker.is_alive():
                    worker.terminate()
                    worker.join()
            for index_queue in self._index_queues:
                index_queue.close()
            self._result_queue.cancel_join_thread()
            self._result_queue.close()
            for task in self._tasks.values():
                if len(task) == 2:
                    task[1].release()
            for channel in self._channels:
                if channel is not None:
                    channel.close()

    def __del__(self):
        if getattr(self, "_workers", None) is not None:
            self._shutdown_workers()


__all__ = ["DataLoader", "get_worker_info"]
