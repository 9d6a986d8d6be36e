"""How batches travel from DataLoader workers to the main process.

Small arrays are pickled through the result queue. Large ones (images, stacked batches) live in anonymous
shared memory (memfd): default_collate stacks the batch straight into it in the worker, the worker passes
the file descriptors over a Unix socket (SCM_RIGHTS) and the main process maps them as the batch's arrays.
The bytes are written once and never copied through pickle and a pipe. The memory has no name, so the
kernel frees it when the last mapping or descriptor goes away, even if a process is killed mid-transfer.
"""
import collections.abc
import mmap
import os
import socket

import numpy as np

from disttorch.core.tensor import Tensor

MIN_SHARED_BYTES = 1 << 18
# Linux accepts at most 253 descriptors in one message (SCM_MAX_FD).
_FDS_PER_MESSAGE = 200


class Payload:
    """One array in transit: inline (`array`) or as the `fd_index`-th descriptor sent with the message."""

    __slots__ = ("array", "fd_index", "dtype", "shape", "as_tensor")

    def __init__(self, array, fd_index, dtype, shape, as_tensor):
        self.array, self.fd_index, self.dtype, self.shape = array, fd_index, dtype, shape
        self.as_tensor = as_tensor

    def __reduce__(self):
        return (Payload, (self.array, self.fd_index, self.dtype, self.shape, self.as_tensor))


def shared_memory_supported(context):
    return (hasattr(os, "memfd_create") and hasattr(socket, "send_fds")
            and context.get_start_method() == "fork")


def open_channel():
    """(main_end, worker_end): a packet socket pair that keeps each descriptor batch separate."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Sender:
    """Worker side. `allocate` hands default_collate shared output arrays; `pack` turns the tensors and
    arrays of a batch into Payloads plus the descriptors to send along."""

    def __init__(self, channel):
        self.channel = channel
        self.allocated = {}  # id(array) -> (array, fd) for shared arrays not yet packed

    def allocate(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self.channel is None or nbytes < MIN_SHARED_BYTES:
            return None
        fd = _new_memory(nbytes)
        array = _map(fd, nbytes, dtype, shape)
        self.allocated[id(array)] = (array, fd)
        return array

    def pack(self, data):
        fds = []
        try:
            packed = _map_structure(data, lambda value: self._pack_leaf(value, fds))
        except BaseException:
            close_all(fds)
            raise
        finally:
            self.drop_unsent()
        return packed, fds

    def drop_unsent(self):
        """Release shared arrays that did not end up in a payload (collate_fn replaced them, or failed)."""
        close_all(fd for _, fd in self.allocated.values())
        self.allocated.clear()

    def send(self, fds):
        """Send the descriptors (before the message they belong to is queued), then drop our copies."""
        try:
            for start in range(0, len(fds), _FDS_PER_MESSAGE):
                socket.send_fds(self.channel, [b"f"], fds[start:start + _FDS_PER_MESSAGE])
        finally:
            close_all(fds)

    def _pack_leaf(self, value, fds):
        if isinstance(value, Tensor):
            array = value._data if isinstance(value._data, np.ndarray) else value._data.get()
            return self._payload(array, True, fds)
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            return self._payload(value, False, fds)
        return value

    def _payload(self, array, as_tensor, fds):
        shared = self.allocated.pop(id(array), None)
        if shared is not None and shared[0] is array:
            fd = shared[1]
        elif self.channel is None or array.nbytes < MIN_SHARED_BYTES:
            return Payload(array, None, None, None, as_tensor)
        else:
            fd = _new_memory(array.nbytes)
            np.copyto(_map(fd, array.nbytes, array.dtype, array.shape), array)
        fds.append(fd)
        return Payload(None, len(fds) - 1, array.dtype.str, array.shape, as_tensor)


def _new_memory(nbytes):
    fd = os.memfd_create("disttorch-batch", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, nbytes)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _map(fd, nbytes, dtype, shape):
    return np.frombuffer(mmap.mmap(fd, nbytes), dtype=dtype).reshape(shape)


def close_all(fds):
    for fd in fds:
        os.close(fd)


def _count_shared(data):
    count = 0

    def visit(value):
        nonlocal count
        if isinstance(value, Payload) and value.fd_index is not None:
            count += 1
        return value
    _map_structure(data, visit)
    return count


def receive_fds(data, channel):
    """Main side: the descriptors a worker sent ahead of `data`; call once per message, in arrival order."""
    count = _count_shared(data)
    fds = []
    while len(fds) < count:
        _, received, _, _ = socket.recv_fds(channel, 1, _FDS_PER_MESSAGE)
        if not received:
            close_all(fds)
            raise RuntimeError("DataLoader worker closed its shared-memory channel in the middle of a batch")
        fds.extend(received)
    return fds


def unpack(data, fds):
    """Main side: rebuild tensors and arrays from Payloads, mapping the descriptors that came with them."""
    def attach(value):
        if not isinstance(value, Payload):
            return value
        if value.fd_index is None:
            array = value.array
        else:
            dtype = np.dtype(value.dtype)
            array = _map(fds[value.fd_index], int(np.prod(value.shape)) * dtype.itemsize, dtype, value.shape)
        return Tensor._wrap(array) if value.as_tensor else array
    try:
        return _map_structure(data, attach)
    finally:
        close_all(fds)  # the mappings keep the memory alive


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
