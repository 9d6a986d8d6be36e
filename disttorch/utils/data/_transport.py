"""How batches travel from DataLoader workers to the main process.

Small arrays are pickled through the result queue. Large ones (images, stacked batches) are written once
into a file in /dev/shm; the main process maps that file, unlinks it at once, and wraps the mapping as the
array, so the bytes are copied once instead of through pickle, pipe and unpickle. Every file a loader's
workers create starts with the loader's prefix, so whatever was never delivered (a stale epoch, a worker
killed mid-send) is removed at shutdown by prefix.
"""
import collections.abc
import glob
import itertools
import mmap
import os
import secrets

import numpy as np

from disttorch.core.tensor import Tensor

SHARED_MEMORY_DIR = "/dev/shm"
MIN_SHARED_BYTES = 1 << 18


class Payload:
    """One array in transit: inline (`array`) or in a shared-memory file (`path`)."""

    __slots__ = ("array", "path", "dtype", "shape", "as_tensor")

    def __init__(self, array, path, dtype, shape, as_tensor):
        self.array, self.path, self.dtype, self.shape, self.as_tensor = array, path, dtype, shape, as_tensor

    def __reduce__(self):
        return (Payload, (self.array, self.path, self.dtype, self.shape, self.as_tensor))


def new_prefix():
    """A file-name prefix unique to one loader iterator, or None where /dev/shm is unavailable."""
    if not os.path.isdir(SHARED_MEMORY_DIR) or not os.access(SHARED_MEMORY_DIR, os.W_OK):
        return None
    return os.path.join(SHARED_MEMORY_DIR, f"disttorch-loader-{os.getpid()}-{secrets.token_hex(6)}")


class Sender:
    """Worker side: turns tensors/arrays in a batch into Payloads.

    `allocate` hands default_collate shared-memory output arrays; a batch that arrives in one of them
    is sent by file name without another copy.
    """

    def __init__(self, prefix, worker_id):
        self.prefix = None if prefix is None else f"{prefix}-w{worker_id}"
        self.counter = itertools.count()
        self.allocated = {}  # id(array) -> (array, path) for shared arrays not yet sent

    def allocate(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self.prefix is None or nbytes < MIN_SHARED_BYTES:
            return None
        path = self._new_file(nbytes)
        array = _map_file(path, nbytes, dtype, shape)
        self.allocated[id(array)] = (array, path)
        return array

    def pack(self, data):
        try:
            return _map_structure(data, self._pack_leaf)
        finally:
            self.drop_unsent()

    def drop_unsent(self):
        """Remove shared arrays that did not end up in a payload (collate_fn replaced them, or failed)."""
        for _, path in self.allocated.values():
            os.unlink(path)
        self.allocated.clear()

    def _pack_leaf(self, value):
        if isinstance(value, Tensor):
            array = value._data if isinstance(value._data, np.ndarray) else value._data.get()
            return self._payload(array, as_tensor=True)
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            return self._payload(value, as_tensor=False)
        return value

    def _payload(self, array, as_tensor):
        already_shared = self.allocated.pop(id(array), None)
        if already_shared is not None and already_shared[0] is array:
            return Payload(None, already_shared[1], array.dtype.str, array.shape, as_tensor)
        if self.prefix is None or array.nbytes < MIN_SHARED_BYTES:
            return Payload(array, None, None, None, as_tensor)
        path = self._new_file(array.nbytes)
        np.copyto(_map_file(path, array.nbytes, array.dtype, array.shape), array)
        return Payload(None, path, array.dtype.str, array.shape, as_tensor)

    def _new_file(self, nbytes):
        path = f"{self.prefix}-{next(self.counter)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
        return path


def _map_file(path, nbytes, dtype, shape):
    fd = os.open(path, os.O_RDWR)
    try:
        mapping = mmap.mmap(fd, nbytes)
    finally:
        os.close(fd)
    return np.frombuffer(mapping, dtype=dtype).reshape(shape)


def _attach(payload):
    if payload.path is None:
        array = payload.array
    else:
        dtype = np.dtype(payload.dtype)
        try:
            array = _map_file(payload.path, int(np.prod(payload.shape)) * dtype.itemsize, dtype, payload.shape)
        finally:
            # the mapping keeps the memory alive; unlinking now means nothing is left behind later
            os.unlink(payload.path)
    return Tensor._wrap(array) if payload.as_tensor else array


def unpack(data):
    """Main side: rebuild tensors and arrays from Payloads."""
    return _map_structure(data, lambda value: _attach(value) if isinstance(value, Payload) else value)


def discard(data):
    """Main side: free the shared memory of a batch that will not be delivered."""
    def unlink(value):
        if isinstance(value, Payload) and value.path is not None:
            try:
                os.unlink(value.path)
            except FileNotFoundError:
                pass
        return value
    _map_structure(data, unlink)


def remove_leftovers(prefix):
    if prefix is None:
        return
    for path in glob.glob(glob.escape(prefix) + "-*"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _map_structure(value, leaf_fn):
    """Apply leaf_fn to every leaf of nested lists/tuples/namedtuples/dicts, keeping container types."""
    if isinstance(value, (list, tuple)):
        items = [_map_structure(item, leaf_fn) for item in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items)
        return items if type(value) is list else _rebuild(value, items)
    if isinstance(value, collections.abc.Mapping):
        return _rebuild(value, {key: _map_structure(item, leaf_fn) for key, item in value.items()})
    return leaf_fn(value)


def _rebuild(original, contents):
    try:
        return type(original)(contents)
    except TypeError:
        return contents
