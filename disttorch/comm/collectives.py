"""Collective algorithms on flat, contiguous numpy arrays.

Each function receives a ``Channel`` (one collective's view of the transport:
group size, group rank, send/recv to group ranks under this collective's
header) and plain ndarrays. Nothing here knows about tensors, devices or
threads; process_group.py adds those. When every rank of the group shares
this host, all_reduce and all_gather of larger arrays move their data through
shared memory instead (shm.py) and only signal over the channel; so does
reduce_scatter, up to SHM_REDUCE_SCATTER_MAX_BYTES.

Large arrays move in pieces of at most ``PIECE_BYTES`` so that receiving,
reducing and forwarding overlap. Buffers handed to ZeroMQ without a copy are
tracked and never written again until ZeroMQ released them; partial sums
travel inside the received frames themselves, so forwarding never copies.
"""
import os

import numpy as np

PIECE_BYTES = min(int(os.environ.get("DISTTORCH_PIECE_BYTES", 1 << 20)), 16 << 20)
# At or below this size, sending every contribution straight to every peer (one
# hop) beats the ring's 2(n-1) hops.
DIRECT_BYTES = int(os.environ.get("DISTTORCH_DIRECT_BYTES", 256 << 10))
# Copying buffers into ZeroMQ beats tracking their release up to a few hundred
# KiB: the release notice travels through pyzmq's garbage-collector thread.
ZERO_COPY_MIN_BYTES = 512 << 10

# Larger reduce_scatter inputs take the sockets' ring, which measured about as fast: through
# shared memory each window carries only WINDOW/N elements of every block per signal round.
SHM_REDUCE_SCATTER_MAX_BYTES = int(os.environ.get("DISTTORCH_SHM_REDUCE_SCATTER_MAX_BYTES",
                                                  4 << 20))

REDUCE_UFUNCS = {
    "sum": np.add, "avg": np.add, "product": np.multiply, "min": np.minimum,
    "max": np.maximum, "band": np.bitwise_and, "bor": np.bitwise_or, "bxor": np.bitwise_xor,
}


def check_reduce_op(op, dtype):
    if op == "avg" and dtype.kind == "b":
        raise TypeError("ReduceOp.AVG is not defined for bool tensors; use SUM, MIN or MAX")
    if op == "avg" and dtype.kind in "iu":
        # A silent floor division would hand back a wrong mean; torch's backends refuse too.
        raise TypeError(f"ReduceOp.AVG is not supported for integer tensors ({dtype}); "
                        "convert to a floating-point dtype, or reduce with SUM and divide")
    if op in ("band", "bor", "bxor") and dtype.kind not in "biu":
        raise TypeError(f"ReduceOp.{op.upper()} needs an integer or bool tensor, got {dtype}")


def finish_reduction(op, values, world_size):
    """AVG is a SUM followed by one division, done once by whoever holds the final value."""
    if op == "avg":
        np.divide(values, world_size, out=values)


def segments(count, parts):
    """Near-equal [start, stop) ranges covering ``count`` elements."""
    bounds = [index * count // parts for index in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def pieces(start, stop, itemsize):
    step = max(1, PIECE_BYTES // max(1, itemsize))
    return [(low, min(low + step, stop)) for low in range(start, stop, step)]


def spans(array):
    """The pieces one whole array travels in; an empty array still sends one message."""
    return pieces(0, array.size, array.itemsize) or [(0, 0)]


def _view(payload, dtype):
    return np.frombuffer(payload, dtype=dtype)


def send_array(ch, dst, array, trackers=None, header=None):
    """Send ``array`` to group rank ``dst`` piece by piece.

    Returns one entry per piece: a tracker for pieces sent zero-copy (the caller
    must not write them before it is done), None for copied ones. Trackers are
    also appended to ``trackers`` when given.
    """
    sent = []
    for low, high in spans(array):
        piece = array[low:high]
        zero_copy = piece.nbytes >= ZERO_COPY_MIN_BYTES
        sent.append(ch.send(dst, piece, track=zero_copy, header=header))
    if trackers is not None:
        trackers.extend(sent)
    return sent


def recv_array(ch, src, out, header=None):
    """Receive what ``send_array`` sent into the flat array ``out``."""
    for low, high in spans(out):
        out[low:high] = _view(ch.recv(src, header), out.dtype)


# --------------------------------------------------------------------- all_reduce
def all_reduce(ch, buf, op):
    if ch.size == 1:
        finish_reduction(op, buf, 1)
    elif ch.shm is not None and ch.shm.usable_for(buf.nbytes, buf.nbytes):
        ch.shm.all_reduce(ch, buf, op, lambda channel: _all_reduce_sockets(channel, buf, op))
    else:
        _all_reduce_sockets(ch, buf, op)


def _all_reduce_sockets(ch, buf, op):
    if _direct_suits(ch, buf):
        _all_reduce_direct(ch, buf, op)
    else:
        _all_reduce_ring(ch, buf, op)


def _direct_suits(ch, buf):
    return ch.size == 2 or buf.nbytes <= DIRECT_BYTES or buf.size < ch.size


def start_all_reduce(ch, buf, op):
    """Send this rank's whole contribution now and return ``finish(ch)``, which receives and folds;
    None when ``all_reduce`` would take another path (shared memory, the ring, a group of one).

    Used for collectives issued while backward still runs: the pieces are copied into ZeroMQ, whose
    I/O threads put them on the wire without ever taking the GIL, so the link stays busy however
    long the training thread keeps Python to itself; only the folding needs Python later, and
    copied pieces let it write into ``buf`` without waiting for the sends to complete.
    """
    if ch.size == 1 or not _direct_suits(ch, buf) or (
            ch.shm is not None and ch.shm.usable_for(buf.nbytes, buf.nbytes)):
        return None
    for peer in ch.others():
        for low, high in spans(buf):
            ch.send(peer, buf[low:high])
    return lambda channel: _fold_direct(channel, buf, op, [None] * len(spans(buf)))


def fold_in_rank_order(contributions, op, out):
    """Reduce in rank order on every rank so all ranks get bit-identical results."""
    ufunc = REDUCE_UFUNCS[op]
    ufunc(contributions[0], contributions[1], out=out)
    for contribution in contributions[2:]:
        ufunc(out, contribution, out=out)


def _all_reduce_direct(ch, buf, op):
    """Everyone sends everything to everyone, piece by piece, and folds as pieces arrive.

    With two ranks this moves as many bytes as the ring in a single hop, so it
    is used at every size; with more ranks only for small arrays.
    """
    sent = [send_array(ch, peer, buf) for peer in ch.others()]
    _fold_direct(ch, buf, op, [[trackers[index] for trackers in sent] for index in range(len(spans(buf)))])


def _fold_direct(ch, buf, op, trackers_of_piece):
    """Receive every peer's pieces and fold them into ``buf``, each piece once its own sends are done."""
    for index, (low, high) in enumerate(spans(buf)):
        mine = buf[low:high]
        contributions = []
        for peer in range(ch.size):
            if peer != ch.rank:
                contributions.append(_view(ch.recv(peer), buf.dtype))
            else:
                # Ranks >= 2 overwrite their piece before folding their own values in.
                contributions.append(mine.copy() if peer >= 2 else mine)
        if trackers_of_piece[index]:
            ch.wait_sent(trackers_of_piece[index])
        fold_in_rank_order(contributions, op, mine)
        finish_reduction(op, mine, ch.size)


def _ring_pieces(count, size, itemsize):
    return [pieces(start, stop, itemsize) for start, stop in segments(count, size)]


def _ring_reduce_scatter(ch, source, op, offset, on_final):
    """Ring reduce-scatter over the segments of ``source`` (never written here).

    At step s rank r sends segment r-s+offset and receives r-s-1+offset from its
    left neighbour, adding its own values to the received partial sum in place.
    The last step completes segment r+1+offset; for each of its pieces
    ``on_final(low, high, partial, frame)`` gets the partial sum of every other
    rank and does the final reduction wherever the result belongs.
    Returns the trackers of the zero-copy sends taken from ``source``.
    """
    size, rank = ch.size, ch.rank
    right, left = (rank + 1) % size, (rank - 1) % size
    ring = _ring_pieces(source.size, size, source.itemsize)
    ufunc = REDUCE_UFUNCS[op]
    # chunk: our own segment starts travelling right away
    trackers = [ch.send(right, source[low:high], track=True)
                for low, high in ring[(rank + offset) % size]]
    # reduce-scatter: the partial sum travels inside the frame it arrived in
    for step in range(size - 1):
        final = step == size - 2
        for low, high in ring[(rank - step - 1 + offset) % size]:
            frame = ch.recv(left)
            partial = _view(frame, source.dtype)
            if final:
                on_final(low, high, partial, frame)
            else:
                ufunc(partial, source[low:high], out=partial)
                ch.send(right, frame)
    return trackers


def _reduce_into(op, partial, mine, out, size):
    REDUCE_UFUNCS[op](partial, mine, out=out)
    finish_reduction(op, out, size)


def _ring_all_gather(ch, out, ring, first_segment):
    """Ring all-gather: step s receives segment first_segment-s and passes it on."""
    size = ch.size
    right, left = (ch.rank + 1) % size, (ch.rank - 1) % size
    for step in range(size - 1):
        for low, high in ring[(first_segment - step) % size]:
            frame = ch.recv(left)
            out[low:high] = _view(frame, out.dtype)
            if step < size - 2:
                ch.send(right, frame)


def _all_reduce_ring(ch, buf, op):
    right = (ch.rank + 1) % ch.size
    owned_trackers = []

    def complete_and_pass_on(low, high, partial, frame):
        # Reducing straight into buf and sending it zero-copy saves a copy of the
        # segment; our own segment is never overwritten by the all-gather.
        _reduce_into(op, partial, buf[low:high], buf[low:high], ch.size)
        owned_trackers.append(ch.send(right, buf[low:high], track=True))

    trackers = _ring_reduce_scatter(ch, buf, op, 0, complete_and_pass_on)
    # all-gather: overwrites the segment sent first, so those sends must be done
    ch.wait_sent(trackers)
    _ring_all_gather(ch, buf, _ring_pieces(buf.size, ch.size, buf.itemsize), ch.rank)
    ch.wait_sent(owned_trackers)


# ------------------------------------------------------------------------ reduce
def reduce(ch, buf, op, dst):
    if ch.size == 1:
        finish_reduction(op, buf, 1)
    elif buf.nbytes <= DIRECT_BYTES or buf.size < ch.size:
        _reduce_direct(ch, buf, op, dst)
    else:
        _reduce_ring(ch, buf, op, dst)


def _reduce_direct(ch, buf, op, dst):
    if ch.rank != dst:
        trackers = []
        send_array(ch, dst, buf, trackers)
        ch.wait_sent(trackers)
        return
    contributions = []
    for peer in range(ch.size):
        if peer == dst:
            contributions.append(buf.copy())
        else:
            received = np.empty_like(buf)
            recv_array(ch, peer, received)
            contributions.append(received)
    fold_in_rank_order(contributions, op, buf)
    finish_reduction(op, buf, ch.size)


def _reduce_ring(ch, buf, op, dst):
    """Reduce-scatter so rank i owns segment i, then every owner sends it to ``dst``."""
    def deliver(low, high, partial, frame):
        if ch.rank == dst:
            _reduce_into(op, partial, buf[low:high], buf[low:high], ch.size)
        else:
            _reduce_into(op, partial, buf[low:high], partial, ch.size)
            ch.send(dst, frame)

    trackers = _ring_reduce_scatter(ch, buf, op, -1, deliver)
    ch.wait_sent(trackers)
    if ch.rank != dst:
        return
    ring = _ring_pieces(buf.size, ch.size, buf.itemsize)
    for owner in ch.others():
        for low, high in ring[owner]:
            buf[low:high] = _view(ch.recv(owner), buf.dtype)


# ------------------------------------------------------------------ reduce_scatter
def reduce_scatter(ch, out, source, op):
    """``source`` holds size * out.size elements; rank r gets the reduction of block r."""
    if ch.size == 1:
        out[...] = source
        finish_reduction(op, out, 1)
    elif (ch.shm is not None and source.nbytes <= SHM_REDUCE_SCATTER_MAX_BYTES
          and ch.shm.usable_for(source.nbytes, source.nbytes)):
        ch.shm.reduce_scatter(ch, out, source, op,
                              lambda channel: _reduce_scatter_sockets(channel, out, source, op))
    else:
        _reduce_scatter_sockets(ch, out, source, op)


def _reduce_scatter_sockets(ch, out, source, op):
    if source.nbytes <= DIRECT_BYTES:
        _reduce_scatter_direct(ch, out, source, op)
    else:
        _reduce_scatter_ring(ch, out, source, op)


def _reduce_scatter_direct(ch, out, source, op):
    blocks = source.reshape(ch.size, -1)
    trackers = []
    for peer in ch.others():
        send_array(ch, peer, blocks[peer], trackers)
    contributions = []
    for peer in range(ch.size):
        if peer == ch.rank:
            contributions.append(blocks[peer])
        else:
            received = np.empty_like(out)
            recv_array(ch, peer, received)
            contributions.append(received)
    ch.wait_sent(trackers)
    fold_in_rank_order(contributions, op, out)
    finish_reduction(op, out, ch.size)


def _reduce_scatter_ring(ch, out, source, op):
    block_start = ch.rank * out.size

    def keep(low, high, partial, frame):
        _reduce_into(op, partial, source[low:high], out[low - block_start:high - block_start],
                     ch.size)

    # Equal blocks make the ring's segments coincide with the output blocks.
    trackers = _ring_reduce_scatter(ch, source, op, -1, keep)
    ch.wait_sent(trackers)


# ---------------------------------------------------------------------- broadcast
def broadcast(ch, buf, src):
    if ch.size == 1:
        return
    if buf.nbytes <= DIRECT_BYTES or ch.size == 2:
        _broadcast_direct(ch, buf, src)
    else:
        _broadcast_chain(ch, buf, src)


def _broadcast_direct(ch, buf, src):
    if ch.rank == src:
        trackers = []
        for peer in ch.others():
            send_array(ch, peer, buf, trackers)
        ch.wait_sent(trackers)
    else:
        recv_array(ch, src, buf)


def _broadcast_chain(ch, buf, src):
    """Pipelined chain src -> src+1 -> ...: every link carries the data once."""
    size = ch.size
    right, left = (ch.rank + 1) % size, (ch.rank - 1) % size
    is_last = right == src
    if ch.rank == src:
        trackers = [ch.send(right, buf[low:high], track=True)
                    for low, high in pieces(0, buf.size, buf.itemsize)]
        ch.wait_sent(trackers)
        return
    for low, high in pieces(0, buf.size, buf.itemsize):
        frame = ch.recv(left)
        buf[low:high] = _view(frame, buf.dtype)
        if not is_last:
            ch.send(right, frame)


# --------------------------------------------------------------------- all_gather
def all_gather(ch, out, mine):
    """``out`` has size * mine.size elements; block r receives rank r's ``mine``."""
    if ch.size > 1 and ch.shm is not None and ch.shm.usable_for(out.nbytes, mine.nbytes):
        ch.shm.all_gather(ch, out, mine, lambda channel: _all_gather_sockets(channel, out, mine))
    else:
        _all_gather_sockets(ch, out, mine)


def _all_gather_sockets(ch, out, mine):
    blocks = out.reshape(ch.size, -1)
    blocks[ch.rank] = mine
    if ch.size == 1:
        return
    if out.nbytes <= DIRECT_BYTES:
        trackers = []
        for peer in ch.others():
            send_array(ch, peer, mine, trackers)
        for peer in ch.others():
            recv_array(ch, peer, blocks[peer])
        ch.wait_sent(trackers)
        return
    ring = [pieces(start, start + mine.size, mine.itemsize)
            for start in range(0, out.size, max(1, mine.size))][:ch.size]
    right = (ch.rank + 1) % ch.size
    trackers = [ch.send(right, out[low:high], track=True) for low, high in ring[ch.rank]]
    _ring_all_gather(ch, out, ring, ch.rank - 1)
    ch.wait_sent(trackers)


# --------------------------------------------------------- gather, scatter, all_to_all
def gather(ch, blocks, mine, dst):
    """``blocks`` (dst only) is a list of size flat arrays receiving each rank's ``mine``."""
    if ch.rank != dst:
        trackers = []
        send_array(ch, dst, mine, trackers)
        ch.wait_sent(trackers)
        return
    blocks[dst][...] = mine
    for peer in ch.others():
        recv_array(ch, peer, blocks[peer])


def scatter(ch, out, blocks, src):
    """Rank r receives ``blocks[r]`` (a list given on ``src`` only) into ``out``."""
    if ch.rank != src:
        recv_array(ch, src, out)
        return
    trackers = []
    for peer in ch.others():
        send_array(ch, peer, blocks[peer], trackers)
    out[...] = blocks[src]
    ch.wait_sent(trackers)


def all_to_all(ch, outs, ins):
    """Rank r sends ``ins[j]`` to rank j and receives rank j's ``ins[r]`` into ``outs[j]``."""
    trackers = []
    for peer in ch.others():
        send_array(ch, peer, ins[peer], trackers, ch.header_for(ins[peer].size))
    outs[ch.rank][...] = ins[ch.rank]
    for peer in ch.others():
        recv_array(ch, peer, outs[peer], ch.header_for(outs[peer].size))
    ch.wait_sent(trackers)


def barrier(ch):
    for peer in ch.others():
        ch.send(peer, b"")
    for peer in ch.others():
        ch.recv(peer)
