"""Point-to-point send/recv (blocking and immediate) between global ranks."""
from disttorch.comm import Work

from ._util import _group, _group_rank, _is_member, _mark_written


def send(tensor, dst=None, group=None, tag=0):
    """Send ``tensor`` to global rank ``dst``; returns once the data is on its way."""
    if not _is_member(group):
        return
    pg = _group(group)
    pg.send(tensor._data, _group_rank(pg, dst, "dst"), tag)


def recv(tensor, src=None, group=None, tag=0):
    """Receive into ``tensor`` from global rank ``src`` (any rank if None); returns the sender."""
    if not _is_member(group):
        return -1
    pg = _group(group)
    source = None if src is None else _group_rank(pg, src, "src")
    _mark_written(tensor)
    return pg.ranks[pg.recv(tensor._data, source, tag)]


class _DoneWork(Work):
    def __init__(self, description):
        super().__init__(description)
        self._finish()


class _RecvWork(Work):
    """irecv's handle: the receive happens in wait(), or in is_completed() once data arrived."""

    def __init__(self, tensor, src, group, tag):
        super().__init__(f"irecv from rank {src} (tag {tag})")
        self._args = (tensor, src, group, tag)
        self.source_rank = None

    def is_completed(self):
        if not self._done.is_set() and _peer_has_sent(*self._args[1:]):
            self.wait()
        return self._done.is_set()

    def wait(self, timeout=None):
        if not self._done.is_set():
            self.source_rank = recv(*self._args)
            self._finish()
        return True


def _peer_has_sent(src, group, tag):
    pg = _group(group)
    return pg.has_message(None if src is None else _group_rank(pg, src, "src"), tag)


def isend(tensor, dst=None, group=None, tag=0):
    send(tensor, dst, group, tag)
    return _DoneWork(f"isend to rank {dst}")


def irecv(tensor, src=None, group=None, tag=0):
    if not _is_member(group):
        return None
    return _RecvWork(tensor, src, group, tag)


class P2POp:
    """One isend or irecv for batch_isend_irecv."""

    def __init__(self, op, tensor, peer=None, group=None, tag=0, group_peer=None):
        if op not in (isend, irecv):
            raise ValueError("P2POp's op must be disttorch.distributed.isend or irecv")
        self.op = op
        self.tensor = tensor
        self.peer = peer
        self.group = group
        self.tag = tag


def batch_isend_irecv(p2p_op_list):
    """Start every send first (sends never block), then hand back one Work per op."""
    works = {}
    for index, p2p in enumerate(p2p_op_list):
        if p2p.op is isend:
            works[index] = isend(p2p.tensor, p2p.peer, p2p.group, p2p.tag)
    for index, p2p in enumerate(p2p_op_list):
        if p2p.op is irecv:
            works[index] = irecv(p2p.tensor, p2p.peer, p2p.group, p2p.tag)
    return [works[index] for index in range(len(p2p_op_list))]
