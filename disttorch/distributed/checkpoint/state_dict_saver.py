"""checkpoint.save: every rank writes its own file; rank 0 commits the metadata last."""
import os
import secrets

import numpy as np

from ... import distributed as dist
from ... import serialization
from ...core.tensor import Tensor
from .._shard import ShardedTensor
from . import filesystem
from ._flatten import flatten, path_name


def save(state_dict, *, checkpoint_id=None, storage_writer=None, planner=None,
         process_group=None, no_dist=False):
    """Save ``state_dict`` (nested dicts of Tensors, ShardedTensors and plain values) to the folder
    ``checkpoint_id`` (or ``storage_writer.path``). Collective unless ``no_dist``: every rank
    calls it with its own shards. Returns the metadata written."""
    root = os.fspath(checkpoint_id if checkpoint_id is not None else storage_writer.path)
    distributed = not no_dist and dist.is_initialized()
    group = process_group if process_group is not None else (dist.group.WORLD if distributed else None)
    rank = dist.get_rank(group) if distributed else 0
    world_size = dist.get_world_size(group) if distributed else 1
    token = [secrets.token_hex(8) if rank == 0 else None]
    if distributed:
        dist.broadcast_object_list(token, src=dist.get_global_rank(group, 0), group=group)
    data_dir = filesystem.data_dir_name(token[0])

    tensors, entries = {}, {}
    for path, value in flatten(state_dict):
        name = path_name(path)
        if isinstance(value, ShardedTensor):
            local = value.local_tensor()
            tensors[name] = local
            start = value.local_shards()[0].metadata.shard_offsets[0] if value.size() else 0
            entries[name] = {"path": list(path), "kind": "sharded", "size": list(value.size()),
                             "dtype": np.dtype(local._data.dtype).str,
                             "chunks": [[rank, start, start + (local.shape[0] if value.size() else 0)]]}
        elif isinstance(value, Tensor):
            if rank == 0:
                tensors[name] = value
            entries[name] = {"path": list(path), "kind": "tensor", "size": list(value.shape)}
        else:
            entries[name] = {"path": list(path), "kind": "object", "value": value}

    failure = None
    try:
        os.makedirs(os.path.join(root, data_dir), exist_ok=True)
        serialization.save(tensors, filesystem.rank_file(root, data_dir, rank))
    except Exception as error:  # every rank must learn of it before anyone commits
        failure = f"rank {rank}: {error!r}"
    reports = [None] * world_size
    mine = {"failure": failure, "chunks": {name: entry["chunks"] for name, entry in entries.items()
                                            if entry["kind"] == "sharded"}}
    if distributed:
        dist.all_gather_object(reports, mine, group=group)
    else:
        reports = [mine]
    failures = [report["failure"] for report in reports if report["failure"]]
    if failures:
        raise RuntimeError(f"checkpoint.save to {root} failed, the previous checkpoint there is "
                           f"kept: {'; '.join(failures)}")
    for name, entry in entries.items():
        if entry["kind"] == "sharded":
            entry["chunks"] = [chunk for report in reports for chunk in report["chunks"][name]]
    metadata = {"format": filesystem.FORMAT, "version": 1, "data_dir": data_dir,
                "world_size": world_size, "entries": entries}
    if rank == 0:
        filesystem.commit(root, metadata)
    if distributed:
        dist.barrier(group=group)
    return metadata
