"""Data parallelism: DistributedDataParallel (one process per replica) and DataParallel (threads)."""
from .data_parallel import DataParallel
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
