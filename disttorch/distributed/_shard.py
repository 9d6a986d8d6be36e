"""ShardedTensor: a tensor split along dim 0 across the ranks of a group; each rank holds one chunk.

FSDP's SHARDED_STATE_DICT hands out one per parameter, chunked as ``torch.chunk`` would
(``ceil(rows / world_size)`` rows per rank, the last chunks shorter or empty), and
disttorch.distributed.checkpoint saves and loads them, resharding between world sizes.
"""
from dataclasses import dataclass

from ..core.tensor import Size

__all__ = ["Shard", "ShardMetadata", "ShardedTensor", "chunk_bounds"]


def chunk_bounds(rows, world_size, rank):
    """[start, stop) of ``rank``'s rows when ``rows`` are chunked like torch.chunk."""
    per_rank = -(-rows // world_size) if rows else 0
    start = min(rows, rank * per_rank)
    return start, min(rows, start + per_rank)


@dataclass
class ShardMetadata:
    shard_offsets: list
    shard_sizes: list
    placement: str


@dataclass
class Shard:
    tensor: object
    metadata: ShardMetadata


class ShardedTensor:
    """This rank's chunk (``local_tensor()``) of a tensor of shape ``size()``."""

    def __init__(self, local_tensor, global_size, row_offset, rank):
        self._local = local_tensor
        self._size = Size(global_size)
        self._row_offset = row_offset
        self._rank = rank

    def size(self):
        return self._size

    @property
    def shape(self):
        return self._size

    @property
    def dtype(self):
        return self._local.dtype

    def local_tensor(self):
        return self._local

    def local_shards(self):
        offsets = [self._row_offset] + [0] * (len(self._size) - 1)
        return [Shard(self._local, ShardMetadata(offsets, list(self._local.shape),
                                                 f"rank:{self._rank}/cpu"))]

    def __repr__(self):
        return (f"ShardedTensor(size={tuple(self._size)}, rows {self._row_offset}.."
                f"{self._row_offset + (self._local.shape[0] if self._size else 0)} on rank "
                f"{self._rank})")
