"""Shared-memory data path for all_reduce, all_gather and reduce_scatter among ranks on one host.

Every rank of a process group owns one file in /dev/shm, mapped by all its
peers; ZeroMQ only carries the signals (under the collective's own header, so
mismatch, dead-peer and timeout detection work as on the socket path). A file
is unlinked by its owner as soon as every peer confirmed mapping it (one extra
signal round whenever some rank announced a new file), or at exit, so a crash
leaves nothing behind.

Arrays stream through the files one window at a time, so a file never holds
more than two windows whatever the array's size: memory and /dev/shm stay
bounded by the window (DISTTORCH_SHM_WINDOW_BYTES, default 8 MiB), and every
result is written straight into the caller's array. Each file has two slots:
window k (counted over the group's whole life) uses slot k % 2. Its owner
writes that slot again at window k+2, after every peer's signal for window
k+1, which each peer sends only once it is done reading window k.

Knobs: DISTTORCH_SHM=0 turns the path off; DISTTORCH_SHM_MIN_BYTES (default
64 KiB) is the smallest array that takes it. Ranks agree because every rank
sees the same sizes; a rank that cannot allocate its file says so in the first
signal and the whole group sends arrays of that size or larger over the
sockets from then on. destroy_process_group unmaps every file (close()).
"""
import mmap
import os
import secrets
import weakref

import numpy as np

from .collectives import finish_reduction, fold_in_rank_order, segments
from .errors import DistBackendError
from .host import SHM_DIR

MIN_BYTES = int(os.environ.get("DISTTORCH_SHM_MIN_BYTES", 64 << 10))
# Large enough that a window's signal round costs little beside copying it, small enough to stay
# in the caches between staging and folding and to keep each process's share of RSS small.
WINDOW_BYTES = max(64, int(os.environ.get("DISTTORCH_SHM_WINDOW_BYTES", 8 << 20)))
_SMALLEST_SLOT = 1 << 16
_UNCHANGED, _UNAVAILABLE = b"", b"-"


def available(transport, members):
    """Whether the group of global ranks ``members`` may use shared memory."""
    return (os.environ.get("DISTTORCH_SHM", "1") != "0" and os.path.isdir(SHM_DIR)
            and len(members) > 1
            and all(peer == transport.rank or peer in transport.shm_peers for peer in members))


def _slot_bytes(nbytes):
    """Slots grow in powers of two up to the window, so growing arrays remap only a few times."""
    size = min(_SMALLEST_SLOT, WINDOW_BYTES)
    while size < nbytes:
        size *= 2
    return max(nbytes, min(size, WINDOW_BYTES))


def _windows(count, per_window):
    """[start, stop) ranges of at most ``per_window`` elements; an empty array still has one,
    so its collective still trades signals (and meets a mismatching peer)."""
    return [(low, min(low + per_window, count)) for low in range(0, count, per_window)] or [(0, 0)]


class _Mapping:
    """One rank's file: two slots of ``slot_bytes`` each."""

    def __init__(self, path, slot_bytes=None):
        create = slot_bytes is not None
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
        try:
            if create:
                # fallocate, unlike ftruncate, fails now on a full /dev/shm instead of
                # raising SIGBUS at the first write later.
                os.posix_fallocate(fd, 0, 2 * slot_bytes)
            length = os.fstat(fd).st_size
            self.memory = mmap.mmap(fd, length)
        finally:
            os.close(fd)
        self.slot_bytes = length // 2

    def slot(self, parity, dtype, count):
        return np.frombuffer(self.memory, dtype, count, offset=parity * self.slot_bytes)

    def close(self):
        try:
            self.memory.close()
        except BufferError:
            pass  # a view is still alive (an interrupted collective): unmapped once it goes


class SharedSegments:
    """This rank's file and its maps of its peers' files, for one process group."""

    def __init__(self, size, rank):
        self.size = size
        self.rank = rank
        # Windows this large failed to get a file on some rank: their arrays use the sockets.
        self._limit_bytes = float("inf")
        self._own = None
        self._peers = [None] * size
        self._parity = 0
        self._created = []
        self._path_stem = os.path.join(SHM_DIR, f"disttorch-{os.getpid()}-{secrets.token_hex(6)}")
        self._versions = 0
        # A file still waiting for its mappers when this process ends goes here.
        weakref.finalize(self, _unlink_all, self._created, os.getpid())

    def usable_for(self, moved_bytes, staged_bytes):
        """Whether a collective moving ``moved_bytes`` per rank, staging ``staged_bytes``
        in each file, takes shared memory (every rank decides alike)."""
        return MIN_BYTES <= moved_bytes and min(staged_bytes, WINDOW_BYTES) < self._limit_bytes

    def close(self):
        """Unmap every file (what /dev/shm holds for them goes with the last mapping)."""
        for mapping in (self._own, *self._peers):
            if mapping is not None:
                mapping.close()
        self._own = None
        self._peers = [None] * self.size
        self._unlink_created()

    def all_reduce(self, ch, buf, op, fallback):
        """All-reduce ``buf`` in place through the files; ``fallback(ch)`` runs the socket path.

        chunk: each rank copies a window of its array into its file and signals.
        Two ranks then each fold the whole window straight into ``buf``. More
        ranks split it: reduce-scatter (rank r folds slice r of the window from
        every file and publishes it), all-gather (each rank copies the other
        slices from their owners' files). Every element is folded in rank order
        from the same values, so all ranks hold bit-identical results.
        """
        def stage(low, high, slot):
            slot[...] = buf[low:high]

        def consume(low, high, slots, header):
            window = buf[low:high]
            if self.size == 2:
                # Our own values come from the array, not our slot: folding in place reads
                # one stream fewer of shared memory, whose small pages cost TLB misses.
                fold_in_rank_order([window if peer == self.rank else slot
                                    for peer, slot in enumerate(slots)], op, window)
                finish_reduction(op, window, self.size)
            else:
                self._reduce_scatter_all_gather(ch, header, window, op, slots)

        per_window = max(1, WINDOW_BYTES // buf.itemsize)
        self._stream(ch, buf.dtype, _windows(buf.size, per_window), stage, consume, fallback)

    def all_gather(self, ch, out, mine, fallback):
        """Fill block r of ``out`` with rank r's ``mine``: per window, stage, one signal round,
        copy out."""
        blocks = out.reshape(self.size, -1)

        def stage(low, high, slot):
            slot[...] = mine[low:high]

        def consume(low, high, slots, header):
            for peer in range(self.size):
                blocks[peer, low:high] = mine[low:high] if peer == self.rank else slots[peer]

        per_window = max(1, WINDOW_BYTES // mine.itemsize)
        self._stream(ch, mine.dtype, _windows(mine.size, per_window), stage, consume, fallback)

    def reduce_scatter(self, ch, out, source, op, fallback):
        """Rank r folds block r of every rank's ``source`` into ``out``: per window, each rank
        stages the same stretch of every block (the one it keeps excepted), one signal round.

        Each block is folded in rank order, as on the sockets, so the result does not depend on
        the path taken.
        """
        blocks = source.reshape(self.size, -1)

        def stage(low, high, slot):
            parts = slot.reshape(self.size, -1)
            for peer in ch.others():
                parts[peer] = blocks[peer, low:high]

        def consume(low, high, slots, header):
            width = high - low
            contributions = [blocks[self.rank, low:high] if peer == self.rank else
                             slots[peer][self.rank * width:(self.rank + 1) * width]
                             for peer in range(self.size)]
            fold_in_rank_order(contributions, op, out[low:high])
            finish_reduction(op, out[low:high], self.size)

        per_window = max(1, WINDOW_BYTES // (source.itemsize * self.size))
        self._stream(ch, source.dtype, _windows(out.size, per_window), stage, consume, fallback,
                     staged_per_element=self.size)

    def _stream(self, ch, dtype, windows, stage, consume, fallback, staged_per_element=1):
        """Move the windows [low, high) through the files in order.

        ``stage(low, high, slot)`` fills this rank's slot (high - low elements, times
        ``staged_per_element``); once every rank signalled, ``consume(low, high, slots, header)``
        reads everyone's, ``slots[peer]`` being rank peer's. When some rank has no file of the
        size needed, ``fallback(ch)`` does the whole collective over the sockets instead.
        """
        header = ch.variant_header("shm")
        itemsize = np.dtype(dtype).itemsize
        try:
            for index, (low, high) in enumerate(windows):
                count = (high - low) * staged_per_element
                signal = self._grow(count * itemsize) if index == 0 else _UNCHANGED
                if signal != _UNAVAILABLE:
                    stage(low, high, self._own.slot(self._parity, dtype, count))
                if not self._trade_signals(ch, header, signal, count * itemsize):
                    fallback(ch)
                    return
                slots = [self._own if peer == self.rank else self._peers[peer]
                         for peer in range(self.size)]
                consume(low, high, [mapping.slot(self._parity, dtype, count) for mapping in slots],
                        header)
                self._parity ^= 1
        except BaseException:
            self._unlink_created()
            raise

    def _grow(self, nbytes):
        """Make sure our file holds ``nbytes`` per slot; returns the signal to send."""
        if self._own is not None and self._own.slot_bytes >= nbytes:
            return _UNCHANGED
        self._versions += 1
        path = f"{self._path_stem}-v{self._versions}"
        try:
            mapping = _Mapping(path, _slot_bytes(nbytes))
            self._created.append(path)
        except OSError:
            _unlink(path)
            return _UNAVAILABLE
        if self._own is not None:
            self._own.close()
        self._own = mapping
        return path.encode()

    def _trade_signals(self, ch, header, signal, nbytes):
        """Send ``signal`` and map what the peers announced: True when every rank staged its window
        (``nbytes`` in its slot).

        When some rank announced a new file, a second round confirms that every
        peer mapped every new file; only then may its owner unlink it (an owner
        that finished early and exited must not take a file its peers still need).
        """
        for peer in ch.others():
            ch.send(peer, signal, header=header)
        peer_signals = {peer: bytes(ch.recv(peer, header=header)) for peer in ch.others()}
        if signal == _UNAVAILABLE or _UNAVAILABLE in peer_signals.values():
            self._limit_bytes = min(self._limit_bytes, nbytes)
            # Nobody maps a file grown just now, and the peers still map our old
            # one: start afresh so the next collective announces a new file.
            self._unlink_created()
            if self._own is not None:
                self._own.close()
            self._own = None
            return False
        for peer, peer_signal in peer_signals.items():
            if peer_signal != _UNCHANGED:
                self._map_peer(ch, peer, peer_signal)
        if any(each != _UNCHANGED for each in (signal, *peer_signals.values())):
            for peer in ch.others():
                ch.send(peer, None, header=header)
            for peer in ch.others():
                ch.recv(peer, header=header)
            self._unlink_created()
        return True

    def _map_peer(self, ch, peer, signal):
        path = signal.decode()
        try:
            mapping = _Mapping(path)
        except OSError as error:
            # A failing owner removes its file; its abort is the error to report.
            ch.raise_if_aborted()
            raise DistBackendError(
                f"rank {self.rank} of the group cannot map rank {peer}'s shared memory file "
                f"{path}: {error}. If the ranks do not share /dev/shm, set DISTTORCH_SHM=0"
            ) from error
        if self._peers[peer] is not None:
            self._peers[peer].close()
        self._peers[peer] = mapping

    def _unlink_created(self):
        _unlink_all(self._created)

    def _reduce_scatter_all_gather(self, ch, header, window, op, slots):
        """Reduce one window of more than two ranks' arrays into ``window`` (part of the
        caller's array), each rank folding one slice of it."""
        bounds = segments(window.size, self.size)
        low, high = bounds[self.rank]
        mine, published = window[low:high], slots[self.rank][low:high]
        contributions = [mine if peer == self.rank else slot[low:high]
                         for peer, slot in enumerate(slots)]
        # reduce-scatter: our slice, folded in rank order, published in our slot
        if self.rank < 2:
            # our slice is an input of the first fold, so writing it in place is safe
            fold_in_rank_order(contributions, op, mine)
            finish_reduction(op, mine, self.size)
            published[...] = mine
        else:
            fold_in_rank_order(contributions, op, published)
            finish_reduction(op, published, self.size)
            mine[...] = published
        for peer in ch.others():
            ch.send(peer, None, header=header)
        # all-gather: every owner's slice, once its signal says it is final
        for peer in ch.others():
            ch.recv(peer, header=header)
            low, high = bounds[peer]
            window[low:high] = slots[peer][low:high]


def _unlink_all(paths, owner_pid=None):
    """Unlink ``paths`` (emptying the list), unless this is a forked copy of the owner."""
    if owner_pid is not None and owner_pid != os.getpid():
        return
    while paths:
        _unlink(paths.pop())


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
