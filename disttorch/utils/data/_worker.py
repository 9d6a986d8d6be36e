"""What runs inside a DataLoader worker process, and the messages it exchanges with the main process.

Each worker reads (generation, task_index, indices) from its own index queue, fetches and collates the
batch, and puts (generation, task_index, payload) on the shared result queue; _transport decides how the
arrays in the payload travel.
"""
import os
import pickle
import queue
import random
import sys
import traceback
from multiprocessing.reduction import ForkingPickler

import numpy as np

from disttorch.core.tensor import Tensor

from ._collate import set_stack_output_allocator
from ._transport import Sender, close_all

# How often a blocked worker or main process wakes up to check that its peer is still alive.
STATUS_CHECK_INTERVAL = 1.0


class WorkerInfo:
    """Available in a worker through get_worker_info(): id, num_workers, seed, dataset."""

    _frozen = False

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)
        self._frozen = True

    def __setattr__(self, name, value):
        if self._frozen:
            raise RuntimeError(f"Cannot assign attributes to {type(self).__name__} objects")
        super().__setattr__(name, value)

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed})"


_worker_info = None


def get_worker_info():
    """The WorkerInfo of this DataLoader worker process, or None in the main process."""
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, carried across the process boundary with its traceback text."""

    def __init__(self, where):
        exc_type, exc_value, exc_traceback = sys.exc_info()
        # an exception class the main process cannot unpickle (say, defined inside a function) comes back
        # as a RuntimeError that still carries the original traceback text
        self.exc_type = exc_type if _is_picklable(exc_type) else RuntimeError
        self.where = where
        self.traceback_text = "".join(traceback.format_exception(exc_type, exc_value, exc_traceback))

    def reraise(self):
        message = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.traceback_text}"
        if self.exc_type is KeyError:
            # KeyError would repr() the message, turning the traceback into one escaped line
            message = KeyErrorMessage(message)
        if issubclass(self.exc_type, StopIteration):
            # re-raised inside __next__, a StopIteration would silently end the epoch
            raise RuntimeError(message)
        try:
            exception = self.exc_type(message)
        except Exception:
            raise RuntimeError(message) from None
        raise exception


def _is_picklable(value):
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


class KeyErrorMessage(str):
    def __repr__(self):
        return self


class IterableEnd:
    """Sent by a worker whose copy of an IterableDataset is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class ResumeIteration:
    """Tells a persistent worker that a new epoch (generation) starts: rebuild the dataset iterator."""

    def __init__(self, generation):
        self.generation = generation


class MapFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.fast_tensor_batches = auto_collation and _can_index_tensors_in_bulk(dataset, collate_fn)

    def fetch(self, indices):
        if not self.auto_collation:
            return self.collate_fn(self.dataset[indices])
        if self.fast_tensor_batches:
            return _index_tensors_in_bulk(self.dataset.tensors, indices)
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)


def _can_index_tensors_in_bulk(dataset, collate_fn):
    """A TensorDataset under default_collate: stacking rows equals one fancy-indexing gather per tensor."""
    from .dataset import TensorDataset
    from ._collate import default_collate
    return (type(dataset) is TensorDataset and collate_fn is default_collate
            and not any(tensor.requires_grad for tensor in dataset.tensors))


def _index_tensors_in_bulk(tensors, indices):
    from ._collate import gather_rows
    return [Tensor._wrap(gather_rows(tensor._data, indices)) for tensor in tensors]


class IterableFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.iterator = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.ended = False

    def fetch(self, indices):
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.iterator))
        samples = []
        for _ in indices:
            try:
                samples.append(next(self.iterator))
            except StopIteration:
                self.ended = True
                break
        if not samples or (self.drop_last and len(samples) < len(indices)):
            raise StopIteration
        return self.collate_fn(samples)


def seed_worker(seed):
    import disttorch
    random.seed(seed)
    disttorch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)


class WorkerSetup:
    """What every worker of one loader iterator needs, sent once when the worker starts."""

    def __init__(self, fetcher_class, dataset, auto_collation, collate_fn, drop_last, base_seed,
                 worker_init_fn, num_workers):
        self.fetcher_class = fetcher_class
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.base_seed = base_seed
        self.worker_init_fn = worker_init_fn
        self.num_workers = num_workers

    def make_fetcher(self):
        return self.fetcher_class(self.dataset, self.auto_collation, self.collate_fn, self.drop_last)


def worker_loop(setup, worker_id, index_queue, result_queue, done_event, parent_pid, channel):
    global _worker_info
    try:
        seed = setup.base_seed + worker_id
        seed_worker(seed)
        _worker_info = WorkerInfo(id=worker_id, num_workers=setup.num_workers, seed=seed, dataset=setup.dataset)
        fetcher, pending_error = None, None
        try:
            if setup.worker_init_fn is not None:
                setup.worker_init_fn(worker_id)
            fetcher = setup.make_fetcher()
        except Exception:
            pending_error = ExceptionWrapper(f"in DataLoader worker process {worker_id}")
        sender = Sender(channel)
        set_stack_output_allocator(sender.allocate)
        _serve(setup, worker_id, fetcher, pending_error, index_queue, result_queue, done_event, parent_pid, sender)
    except KeyboardInterrupt:
        pass
    if done_event.is_set() or os.getppid() != parent_pid:
        # nobody will read the results still buffered: exit without waiting to flush them
        result_queue.cancel_join_thread()
        result_queue.close()


def _serve(setup, worker_id, fetcher, pending_error, index_queue, result_queue, done_event, parent_pid, sender):
    where = f"in DataLoader worker process {worker_id}"
    iteration_ended = False
    while os.getppid() == parent_pid:
        try:
            message = index_queue.get(timeout=STATUS_CHECK_INTERVAL)
        except queue.Empty:
            continue
        if message is None:
            return
        if isinstance(message, ResumeIteration):
            iteration_ended = False
            fetcher = setup.make_fetcher()
            continue
        if done_event.is_set() or iteration_ended:
            continue
        generation, task_index, indices = message
        data, fds = pending_error, []
        if pending_error is not None:
            pending_error = None
        else:
            try:
                data, fds = sender.pack(fetcher.fetch(indices))
            except StopIteration:
                if setup.fetcher_class is not IterableFetcher:
                    data = ExceptionWrapper(where)
                else:
                    data, iteration_ended = IterableEnd(worker_id), True
            except Exception:
                data = ExceptionWrapper(where)
            sender.drop_unsent()
        _send(result_queue, sender, (generation, task_index, worker_id, data), fds, worker_id)
        del data


def _send(result_queue, sender, result, fds, worker_id):
    """Pickle here rather than in the queue's feeder thread, where a failure would be lost silently and the
    main process would wait forever for this batch."""
    try:
        message = ForkingPickler.dumps(result)
    except Exception:
        close_all(fds)
        fds = []
        error = ExceptionWrapper(f"while DataLoader worker process {worker_id} sent a batch (everything a "
                                 "dataset and collate_fn return must be picklable with num_workers > 0)")
        message = ForkingPickler.dumps(result[:3] + (error,))
    if fds:
        sender.send(fds)
    result_queue.put(bytes(message))
