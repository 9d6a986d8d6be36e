"""checkpoint.load: fill a state_dict in place from a checkpoint saved at any world size.

Each ShardedTensor gets the rows its chunk covers, copied from whichever saved chunks overlap
them; a plain Tensor gets the whole value (sharded entries are assembled); other values are
replaced. Every rank reads the files it needs itself, so loading needs no collectives.
"""
import os

from ... import serialization
from ...core.tensor import Tensor
from .._shard import ShardedTensor
from . import filesystem
from ._flatten import assign, flatten, path_name


def load(state_dict, *, checkpoint_id=None, storage_reader=None, planner=None,
         process_group=None, no_dist=False):
    """Load into ``state_dict`` (as returned by a model's/optimizer's state_dict, possibly with
    ShardedTensors for another world size than the one that saved) from ``checkpoint_id``."""
    root = os.fspath(checkpoint_id if checkpoint_id is not None else storage_reader.path)
    metadata = filesystem.FileSystemReader(root).read_metadata()
    files = _RankFiles(root, metadata["data_dir"])
    entries = metadata["entries"]
    for path, target in list(flatten(state_dict)):
        name = path_name(path)
        if name not in entries:
            raise RuntimeError(f"checkpoint {root} has no entry {name!r}; it holds "
                               f"{sorted(entries)[:10]}{' ...' if len(entries) > 10 else ''}")
        entry = entries[name]
        if entry["kind"] == "object":
            assign(state_dict, path, entry["value"])
            continue
        if isinstance(target, ShardedTensor):
            local = target.local_tensor()
            start = target.local_shards()[0].metadata.shard_offsets[0] if target.size() else 0
            _check_size(name, entry, list(target.size()))
            _read_rows(files, name, entry, local._data, start)
        elif isinstance(target, Tensor):
            _check_size(name, entry, list(target.shape))
            _read_rows(files, name, entry, target._data, 0)
            target._vc[0] += 1
        else:
            raise RuntimeError(f"checkpoint.load fills tensors in place; {name!r} in the given "
                               f"state_dict is a {type(target).__name__}")


def _check_size(name, entry, size):
    if entry["size"] != size:
        raise RuntimeError(f"checkpoint entry {name!r} has shape {entry['size']} but the "
                           f"state_dict to load into has {size}")


def _read_rows(files, name, entry, out, start):
    """Copy global rows [start, start + len(out)) of ``name`` into ``out``."""
    if entry["kind"] == "tensor":
        saved = files.tensor(0, name)._data
        out[...] = saved[start:start + out.shape[0]] if out.ndim and saved.ndim else saved
        return
    stop = start + (out.shape[0] if out.ndim else 0)
    for rank, low, high in entry["chunks"]:
        overlap_low, overlap_high = max(low, start), min(high, stop)
        if overlap_low >= overlap_high:
            continue
        saved = files.tensor(rank, name)._data
        out[overlap_low - start:overlap_high - start] = saved[overlap_low - low:overlap_high - low]


class _RankFiles:
    """Each rank's file, read once, on first use."""

    def __init__(self, root, data_dir):
        self.root, self.data_dir = root, data_dir
        self.loaded = {}

    def tensor(self, rank, name):
        if rank not in self.loaded:
            self.loaded[rank] = serialization.load(filesystem.rank_file(self.root, self.data_dir,
                                                                        rank), map_location="cpu")
        return self.loaded[rank][name]
