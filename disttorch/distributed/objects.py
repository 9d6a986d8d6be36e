"""Object collectives. Objects travel as msgpack, never pickle: no code runs on receipt.

Supported: None, bool, int, float, str, bytes, and lists, tuples and dicts of them.
"""
import msgpack
import numpy as np

from ._util import _group, _group_rank, _is_member

_TUPLE = 1


def _encode_extra(obj):
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    raise TypeError(
        f"object collectives send objects with msgpack, never pickle; {type(obj).__name__} is "
        "not supported. Send None, bool, int, float, str, bytes, or lists/tuples/dicts of them")


def _decode_extra(code, data):
    if code == _TUPLE:
        return tuple(_unpack(data))
    return msgpack.ExtType(code, data)


def _pack(obj):
    return msgpack.packb(obj, default=_encode_extra, use_bin_type=True, strict_types=True)


def _unpack(data):
    return msgpack.unpackb(data, ext_hook=_decode_extra, raw=False, strict_map_key=False)


def _as_bytes_array(payload, length):
    array = np.zeros(length, dtype=np.uint8)
    array[:len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    return array


def broadcast_object_list(object_list, src=0, group=None, device=None):
    """Replace ``object_list``'s items on every rank with global rank ``src``'s."""
    if not _is_member(group):
        return
    pg = _group(group)
    root = _group_rank(pg, src, "src")
    payloads = [_pack(obj) for obj in object_list] if pg.rank == root else []
    lengths = np.array([len(payload) for payload in payloads] or [0] * len(object_list),
                       dtype=np.int64)
    pg.broadcast(lengths, root)
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8).copy() if pg.rank == root \
        else np.empty(int(lengths.sum()), dtype=np.uint8)
    pg.broadcast(data, root)
    if pg.rank != root:
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for index in range(len(object_list)):
            object_list[index] = _unpack(data[offsets[index]:offsets[index + 1]].tobytes())


def _gather_payloads(pg, payload):
    """All ranks' payloads, padded to the longest: (rows, lengths)."""
    lengths = np.empty(pg.size, dtype=np.int64)
    pg.all_gather(lengths, np.array([len(payload)], dtype=np.int64))
    rows = np.empty((pg.size, int(lengths.max())), dtype=np.uint8)
    pg.all_gather(rows, _as_bytes_array(payload, rows.shape[1]))
    return rows, lengths


def all_gather_object(object_list, obj, group=None):
    """``object_list[i]`` becomes rank i's ``obj`` on every rank."""
    if not _is_member(group):
        return
    pg = _group(group)
    rows, lengths = _gather_payloads(pg, _pack(obj))
    for index in range(pg.size):
        object_list[index] = _unpack(rows[index, :lengths[index]].tobytes())


def gather_object(obj, object_gather_list=None, dst=0, group=None):
    """Like all_gather_object, but only global rank ``dst`` gets the list."""
    if not _is_member(group):
        return
    pg = _group(group)
    root = _group_rank(pg, dst, "dst")
    rows, lengths = _gather_payloads(pg, _pack(obj))
    if pg.rank == root:
        for index in range(pg.size):
            object_gather_list[index] = _unpack(rows[index, :lengths[index]].tobytes())


def scatter_object_list(scatter_object_output_list, scatter_object_input_list=None, src=0,
                        group=None):
    """Rank i's ``scatter_object_output_list[0]`` becomes ``src``'s input item i."""
    if not _is_member(group):
        return
    pg = _group(group)
    root = _group_rank(pg, src, "src")
    items = list(scatter_object_input_list) if pg.rank == root else [None] * pg.size
    broadcast_object_list(items, src, group)
    scatter_object_output_list[0] = items[pg.rank]
