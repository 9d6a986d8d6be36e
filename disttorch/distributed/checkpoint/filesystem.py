"""The on-disk layout of a distributed checkpoint, written with disttorch's safe format.

    <checkpoint_id>/.metadata              which data folder is current, and where every key lives
    <checkpoint_id>/<data folder>/__R_0.distcp   what rank R saved: its chunk of each sharded
                                           tensor, and (rank 0 only) the replicated tensors

A save writes a fresh data folder, then replaces .metadata atomically (disttorch.save writes a
temporary file and renames it), then deletes older data folders. Until that rename the previous
.metadata and its folder are untouched, so a crash at any point leaves a loadable checkpoint.
"""
import os
import shutil

from ... import serialization

METADATA = ".metadata"
FORMAT = "disttorch-distributed-checkpoint"
_DATA_PREFIX = "data-"


class FileSystemWriter:
    """Where ``save`` writes: a folder (created if missing)."""

    def __init__(self, path, single_file_per_rank=True, sync_files=True, thread_count=1,
                 per_thread_copy_ahead=10_000_000, cache_staged_state_dict=False, overwrite=True):
        self.path = os.fspath(path)


class FileSystemReader:
    """Where ``load`` reads: a folder written by ``save``."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def read_metadata(self):
        path = os.path.join(self.path, METADATA)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.path} holds no distributed checkpoint ({METADATA} is "
                                    "missing); save one with disttorch.distributed.checkpoint.save")
        metadata = serialization.load(path)
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise RuntimeError(f"{path} is not a disttorch distributed checkpoint's metadata")
        return metadata


def rank_file(root, data_dir, rank):
    return os.path.join(root, data_dir, f"__{rank}_0.distcp")


def data_dir_name(token):
    return f"{_DATA_PREFIX}{token}"


def commit(root, metadata):
    """Make ``metadata`` (and its data folder) the checkpoint, atomically; drop older folders."""
    serialization.save(metadata, os.path.join(root, METADATA))
    for name in os.listdir(root):
        if name.startswith(_DATA_PREFIX) and name != metadata["data_dir"]:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
