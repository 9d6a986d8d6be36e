"""DistributedDataParallel on uneven inputs: its Join hook, and the error it raises without Join.

A rank that joined early shadows, per iteration of the others, what DDP's forward and backward
communicate: the buffer broadcast, then the gradient buckets, filled with zeros. The averages it
helps compute still divide by the whole world size, as PyTorch's default
(``divide_by_initial_world_size=True``) does, and it receives them in ``.grad`` like any rank, so
a ZeroRedundancyOptimizer joined after it can step its shard.
"""
import time

import numpy as np

from ... import distributed as dist
from ...comm import DistError, RankFailure
from ...core.backend import get_array_module
from ...core.tensor import Tensor
from ...distributed.algorithms.join import JoinHook

# How long a rank whose DDP collective failed waits for its peers to say they are still in DDP.
_ROLL_CALL_S = 3.0


class DDPJoinHook(JoinHook):
    def __init__(self, ddp, divide_by_initial_world_size=True):
        if not divide_by_initial_world_size:
            raise NotImplementedError(
                "DDP's join hook divides by the initial world size; "
                "divide_by_initial_world_size=False is not supported by disttorch")
        self.ddp = ddp

    def main_hook(self):
        ddp = self.ddp
        ddp._sync_buffers_for_forward()
        reducer = ddp.reducer
        for p in reducer.params:
            if p.grad is None:
                p.grad = Tensor._wrap(get_array_module(p._data).zeros_like(p._data))
            else:
                p.grad._data[...] = 0
        # With unused-parameter detection, "reached nothing" marks every parameter ready.
        reducer.prepare_for_backward(set() if ddp.find_unused_parameters else None, True)
        if not ddp.find_unused_parameters:
            for p in reducer.params:
                reducer._on_grad_ready(p)

    def post_hook(self, is_last_joiner):
        """The ranks that joined last hold the final model: every rank copies it from the highest."""
        ddp = self.ddp
        source = Tensor._wrap(np.array([dist.get_rank() if is_last_joiner else -1], dtype=np.int64))
        dist.all_reduce(source, op=dist.ReduceOp.MAX, group=ddp.process_group)
        ddp._sync_params_from(int(source.item()))


def uneven_inputs_error(ddp, error):
    """Turn a failed DDP collective into an error naming the ranks that left DDP, when some did.

    Every rank that failed inside DDP writes its iteration to the store; ranks that do not
    within a few seconds stopped running DDP, most likely because they ran out of batches.
    Returns ``error`` itself when every rank is still in DDP (the failure has another cause).
    """
    ranks = dist.get_process_group_ranks(ddp.process_group or dist.group.WORLD)
    stopped = _ranks_missing_from_roll_call(ddp, ranks)
    if stopped is None and isinstance(error, RankFailure):
        stopped = [error.rank]
    if not stopped:
        return error
    names = ", ".join(map(str, stopped))
    return RuntimeError(
        f"DistributedDataParallel on rank {dist.get_rank()}, iteration {ddp._iterations}: rank "
        f"{names} stopped taking part in gradient synchronisation, most likely because it ran out "
        "of input batches before the other ranks (uneven inputs). Wrap the training loop in "
        "`with torch.distributed.algorithms.Join([model, optimizer]):` so that ranks which finish "
        "early shadow the others' collectives, or give every rank the same number of batches "
        f"(DistributedSampler(..., drop_last=True)). The collective failed with: {error}")


def _ranks_missing_from_roll_call(ddp, ranks):
    """The ranks that did not report within _ROLL_CALL_S; None when the store is unreachable.

    Rank 0 hosts the store and may close it right after its own roll call, so it waits twice as
    long; a rank that loses the store midway answers from what it had seen by then.
    """
    from ... import comm
    store = comm.world().store
    prefix = f"disttorch/ddp/{ddp._instance}/failed_in_ddp/"
    me = dist.get_rank()
    previous_timeout = store.timeout
    store.set_timeout(_ROLL_CALL_S)
    present = None
    try:
        store.set(prefix + str(me), str(ddp._iterations))
        deadline = time.monotonic() + _ROLL_CALL_S * (2 if me == 0 else 1)
        while True:
            present = [rank for rank in ranks if store.check([prefix + str(rank)])]
            if len(present) == len(ranks) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    except DistError:
        if present is None:
            return None
    finally:
        store.set_timeout(previous_timeout)
    return [rank for rank in ranks if rank not in present]
