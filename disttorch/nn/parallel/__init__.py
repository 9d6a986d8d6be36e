"""torch.nn.parallel: DistributedDataParallel, DataParallel, SyncBatchNorm and DDP communication hooks."""
from . import comm_hooks  # noqa: F401
from .data_parallel import DataParallel, gather, parallel_apply, replicate, scatter  # noqa: F401
from .distributed import DistributedDataParallel  # noqa: F401
from .sync_batchnorm import SyncBatchNorm  # noqa: F401

__all__ = ["DataParallel", "DistributedDataParallel", "SyncBatchNorm", "comm_hooks", "gather", "parallel_apply",
           "replicate", "scatter"]
