"""Shared-memory data path for all_reduce, all_gather and reduce_scatter among ranks on one host.

Every rank of a process group owns one file in /dev/shm, mapped by all its
peers; ZeroMQ only carries the signals (under the collective's own header, so
mismatch, dead-peer and timeout detection work as on the socket path). A file
is unlinked by its owner as soon as every peer confirmed mapping it (one extra
signal round whenever some rank announced a new file), or at exit, so a crash
leaves nothing behind.

Each file is double-buffered: collective k uses half k % 2. Its owner writes
that half again at collective k+2, after every peer's signal for k+1, which
each peer sends only once it is done reading for collective k.

Knobs: DISTTORCH_SHM=0 turns the path off; DISTTORCH_SHM_MIN_BYTES (default
64 KiB) is the smallest array that takes it. Ranks agree because every rank
sees the same sizes; a rank that cannot allocate its file says so in the first
signal and the whole group sends arrays of that size or larger over the
sockets from then on.
"""
import mmap
import os
import secrets
import weakref

import numpy as np

from .collectives import finish_reduction, fold_in_rank_order
from .errors import DistBackendError
from .host import SHM_DIR

MIN_BYTES = int(os.environ.get("DISTTORCH_SHM_MIN_BYTES", 64 << 10))
_SMALLEST_HALF = 1 << 16
_UNCHANGED, _UNAVAILABLE = b"", b"-"


def available(transport, members):
    """Whether the group of global ranks ``members`` may use shared memory."""
    return (os.environ.get("DISTTORCH_SHM", "1") != "0" and os.path.isdir(SHM_DIR)
            and len(members) > 1
            and all(peer == transport.rank or peer in transport.shm_peers for peer in members))


def _half_bytes(nbytes):
    """Halves grow in powers of two so a run of growing arrays remaps only a few times."""
    size = _SMALLEST_HALF
    while size < nbytes:
        size *= 2
    return size


class _Mapping:
    """One rank's file: two halves of ``half_bytes`` each."""

    def __init__(self, path, half_bytes=None):
        create = half_bytes is not None
        fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
        try:
            if create:
                # fallocate, unlike ftruncate, fails now on a full /dev/shm instead of
                # raising SIGBUS at the first write later.
                os.posix_fallocate(fd, 0, 2 * half_bytes)
            length = os.fstat(fd).st_size
            self.memory = mmap.mmap(fd, length)
        finally:
            os.close(fd)
        self.half_bytes = length // 2

    def half(self, parity, dtype, count):
        return np.frombuffer(self.memory, dtype, count, offset=parity * self.half_bytes)


class SharedSegments:
    """This rank's file and its maps of its peers' files, for one process group."""

    def __init__(self, size, rank):
        self.size = size
        self.rank = rank
        # Arrays this large failed to get a file on some rank: they use the sockets.
        self._limit_bytes = float("inf")
        self._own = None
        self._peers = [None] * size
        self._parity = 0
        self._created = []
        self._path_stem = os.path.join(SHM_DIR, f"disttorch-{os.getpid()}-{secrets.token_hex(6)}")
        self._versions = 0
        self._staged = None
        # A file still waiting for its mappers when this process ends goes here.
        weakref.finalize(self, _unlink_all, self._created, os.getpid())

    def usable_for(self, moved_bytes, staged_bytes):
        """Whether a collective moving ``moved_bytes`` per rank, staging ``staged_bytes``
        in each file, takes shared memory (every rank decides alike)."""
        return MIN_BYTES <= moved_bytes and staged_bytes < self._limit_bytes

    def _grow(self, nbytes):
        """Make sure our file holds ``nbytes`` per half; returns the signal to send."""
        if self._own is not None and self._own.half_bytes >= nbytes:
            return _UNCHANGED
        self._versions += 1
        path = f"{self._path_stem}-v{self._versions}"
        try:
            self._own = _Mapping(path, _half_bytes(nbytes))
            self._created.append(path)
        except OSError:
            _unlink(path)
            return _UNAVAILABLE
        return path.encode()

    def _map_peer(self, ch, peer, signal):
        path = signal.decode()
        try:
            self._peers[peer] = _Mapping(path)
        except OSError as error:
            # A failing owner removes its file; its abort is the error to report.
            ch.raise_if_aborted()
            raise DistBackendError(
                f"rank {self.rank} of the group cannot map rank {peer}'s shared memory file "
                f"{path}: {error}. If the ranks do not share /dev/shm, set DISTTORCH_SHM=0"
            ) from error

    def _unlink_created(self):
        _unlink_all(self._created)

    def _exchange_signals(self, ch, header, buf):
        """Stage ``buf`` in our file and trade signals: True when every rank staged its array.

        When some rank announced a new file, a second round confirms that every
        peer mapped every new file; only then may its owner unlink it (an owner
        that finished early and exited must not take a file its peers still need).
        """
        signal = self._grow(buf.nbytes)
        if signal != _UNAVAILABLE:
            self._staged = self._own.half(self._parity, buf.dtype, buf.size)
            self._staged[...] = buf
        for peer in ch.others():
            ch.send(peer, signal, header=header)
        peer_signals = {peer: bytes(ch.recv(peer, header=header)) for peer in ch.others()}
        if signal == _UNAVAILABLE or _UNAVAILABLE in peer_signals.values():
            self._limit_bytes = buf.nbytes
            # Nobody maps a file grown just now, and the peers still map our old
            # one: start afresh so the next collective announces a new file.
            self._unlink_created()
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

    def all_reduce(self, ch, buf, op, fallback):
        """All-reduce ``buf`` in place through the files; ``fallback(ch)`` runs the socket path.

        chunk: each rank copies its array into its file and signals. Two ranks
        then each fold the whole array (one signal round). More ranks split it:
        reduce-scatter (rank r folds slice r from every file and publishes it),
        all-gather (each rank copies the other slices from their owners' files).
        Every element is folded in rank order from the same values, so all ranks
        hold bit-identical results.
        """
        header = ch.variant_header("shm")
        try:
            parity = self._parity
            if not self._exchange_signals(ch, header, buf):
                fallback(ch)
                return
            self._parity ^= 1
            views = [self._peers[peer].half(parity, buf.dtype, buf.size)
                     if peer != self.rank else buf for peer in range(self.size)]
            if self.size == 2:
                fold_in_rank_order(views, op, buf)
                finish_reduction(op, buf, self.size)
                return
            self._reduce_scatter_all_gather(ch, header, buf, op, views)
        except BaseException:
            self._unlink_created()
            raise

    def all_gather(self, ch, out, mine, fallback):
        """Fill block r of ``out`` with rank r's ``mine``: stage, one signal round, copy out."""
        header = ch.variant_header("shm")
        try:
            parity = self._parity
            if not self._exchange_signals(ch, header, mine):
                fallback(ch)
                return
            self._parity ^= 1
            blocks = out.reshape(self.size, -1)
            for peer in range(self.size):
                blocks[peer] = mine if peer == self.rank else self._peers[peer].half(
                    parity, mine.dtype, mine.size)
        except BaseException:
            self._unlink_created()
            raise

    def reduce_scatter(self, ch, out, source, op, fallback):
        """Rank r folds block r of every rank's staged ``source`` into ``out``: one signal round.

        Each block is folded in rank order, as on the sockets, so the result does not depend on
        the path taken.
        """
        header = ch.variant_header("shm")
        try:
            parity = self._parity
            if not self._exchange_signals(ch, header, source):
                fallback(ch)
                return
            self._parity ^= 1
            low, high = self.rank * out.size, (self.rank + 1) * out.size
            blocks = [source[low:high] if peer == self.rank else
                      self._peers[peer].half(parity, source.dtype, source.size)[low:high]
                      for peer in range(self.size)]
            fold_in_rank_order(blocks, op, out)
            finish_reduction(op, out, self.size)
        except BaseException:
            self._unlink_created()
            raise

    def _reduce_scatter_all_gather(self, ch, header, buf, op, views):
        bounds = [index * buf.size // self.size for index in range(self.size + 1)]
        low, high = bounds[self.rank], bounds[self.rank + 1]
        # reduce-scatter: our slice, folded in rank order, published in our file
        staged = self._staged[low:high]
        contributions = [view[low:high] for view in views]
        if self.rank < 2:
            # buf's slice is an input of the first fold, so writing it in place is safe
            fold_in_rank_order(contributions, op, buf[low:high])
            finish_reduction(op, buf[low:high], self.size)
            staged[...] = buf[low:high]
        else:
            fold_in_rank_order(contributions, op, staged)
            finish_reduction(op, staged, self.size)
            buf[low:high] = staged
        for peer in ch.others():
            ch.send(peer, None, header=header)
        # all-gather: every owner's slice, once its signal says it is final
        for peer in ch.others():
            ch.recv(peer, header=header)
            buf[bounds[peer]:bounds[peer + 1]] = views[peer][bounds[peer]:bounds[peer + 1]]


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
