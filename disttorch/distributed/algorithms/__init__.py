"""torch.distributed.algorithms: DDP communication hooks live in ddp_comm_hooks."""
