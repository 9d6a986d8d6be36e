"""torch.nn.parallel: DistributedDataParallel, DataParallel, SyncBatchNorm and DDP communication hooks."""
from . import comm_hooks
from .data_parallel import DataParallel, gather, parallel_apply, replicate, scatter
from .distributed import DistributedDataParallel
from .sync_batchnorm import SyncBatchNorm

__all__ = ["DataParallel", "DistributedDataParallel", "SyncBatchNorm", "comm_hooks", "gather", "parallel_apply",
           "replicate", "scatter"]
