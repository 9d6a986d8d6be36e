"""torch.distributed.algorithms: Join for uneven inputs; DDP communication hooks in ddp_comm_hooks."""
from .join import Join, JoinHook, Joinable

__all__ = ["Join", "JoinHook", "Joinable"]
