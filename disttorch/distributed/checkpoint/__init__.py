"""torch.distributed.checkpoint: each rank saves its shards; load reshards to any world size."""
from .filesystem import FileSystemReader, FileSystemWriter
from .state_dict_loader import load
from .state_dict_saver import save

__all__ = ["FileSystemReader", "FileSystemWriter", "load", "save"]
