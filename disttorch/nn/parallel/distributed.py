"""DistributedDataParallel: one model replica per process, gradients averaged by bucketed all-reduce."""
import contextlib
import itertools

import numpy as np

from ... import distributed as dist
from ...core import grad_mode
from ...core.autograd import AccumulateGrad
from ...comm import DistError
from ...core.tensor import Tensor
from ...distributed.algorithms.join import Join, Joinable
from ..modules.module import Module
from .ddp_join import DDPJoinHook, uneven_inputs_error
from .reducer import Reducer

# Numbers DDP instances alike on every rank (they are built in the same order everywhere).
_instances = itertools.count()


def _walk_outputs(output):
    """Tensors inside a forward output (tensor, or nested tuple/list/dict of them)."""
    stack = [output]
    while stack:
        item = stack.pop()
        if isinstance(item, Tensor):
            yield item
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def _reachable_leaves(outputs):
    """ids of the leaf tensors that a backward from `outputs` would reach (iterative graph walk)."""
    seen, found = set(), set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, AccumulateGrad):
            found.add(id(node.variable))
            continue
        stack.extend(n for n in node._edges if n is not None)
    return found


class DistributedDataParallel(Module, Joinable):
    """Data parallelism across processes: every rank runs `module` on its own slice of the batch, and
    backward averages the gradients over ranks (bucketed, asynchronous all-reduces started while
    backward still runs), so each optimizer step sees the gradient of the whole batch.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=25, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        Joinable.__init__(self)
        if not dist.is_initialized():
            raise RuntimeError(
                "Default process group has not been initialized, please make sure to call "
                "init_process_group() before wrapping a module in DistributedDataParallel.")
        if not any(p.requires_grad for p in module.parameters()):
            raise RuntimeError(
                "DistributedDataParallel is not needed when a module doesn't have any parameter that "
                "requires a gradient.")
        self.module = module
        self.device_ids = device_ids
        self.output_device = output_device
        self.dim = dim
        self.broadcast_buffers = broadcast_buffers
        self.process_group = process_group
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self._instance = next(_instances)
        self._iterations = 0
        # Collectives take global ranks: group rank 0 of the process group is the source of truth.
        self._root = 0 if process_group is None else dist.get_global_rank(process_group, 0)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._check_same_parameters_everywhere(named)
        self._sync_from_rank0([p for _, p in module.named_parameters()] + [b for _, b in module.named_buffers()])
        self.reducer = Reducer([p for _, p in named], [n for n, _ in named], process_group,
                               int(bucket_cap_mb * 1024 * 1024), gradient_as_bucket_view)
        self.reducer.explain_comm_error = lambda error: uneven_inputs_error(self, error)

    # ---- construction-time checks ---------------------------------------------------------------
    def _check_same_parameters_everywhere(self, named):
        mine = [[n, list(p.shape), p.dtype.name] for n, p in named]
        world = dist.get_world_size(self.process_group)
        everyone = [None] * world
        dist.all_gather_object(everyone, mine, group=self.process_group)
        reference = everyone[0]
        for rank, theirs in enumerate(everyone[1:], 1):
            if theirs == reference:
                continue
            for i in range(max(len(reference), len(theirs))):
                a = reference[i] if i < len(reference) else None
                b = theirs[i] if i < len(theirs) else None
                if a != b:
                    raise RuntimeError(
                        "DistributedDataParallel expects the same model on every rank, but parameter "
                        f"{i} differs: rank 0 has {_describe(a)}, rank {rank} has {_describe(b)}. Build the "
                        "model identically on all ranks before wrapping it.")

    def _sync_from_rank0(self, tensors, src=None):
        """Broadcast parameters and buffers from rank 0 (or global rank ``src``), coalesced into
        one message per dtype."""
        by_dtype = {}
        for t in tensors:
            by_dtype.setdefault(t._data.dtype, []).append(t)
        for group in by_dtype.values():
            flat = Tensor._wrap(np.concatenate([t._data.reshape(-1) for t in group]))
            dist.broadcast(flat, src=self._root if src is None else src, group=self.process_group)
            offset = 0
            for t in group:
                n = t._data.size
                t._data[...] = flat._data[offset:offset + n].reshape(t._data.shape)
                offset += n

    # ---- training-time behaviour ------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        Join.notify_join_context(self)
        try:
            self._sync_buffers_for_forward()
            output = self.module(*inputs, **kwargs)
            if grad_mode.is_grad_enabled():
                self._iterations += 1
                reached = None
                if self.find_unused_parameters:
                    reached = _reachable_leaves(list(_walk_outputs(output)))
                self.reducer.prepare_for_backward(reached, self.require_backward_grad_sync)
        except DistError as error:
            explained = uneven_inputs_error(self, error)
            if explained is error:
                raise
            raise explained from error
        return output

    def _sync_buffers_for_forward(self):
        if self.broadcast_buffers and self.training and dist.get_world_size(self.process_group) > 1:
            buffers = [b for _, b in self.module.named_buffers()]
            if buffers:
                self._sync_from_rank0(buffers)

    def _sync_params_from(self, src):
        self._sync_from_rank0([p for _, p in self.module.named_parameters()], src)

    # ---- uneven inputs ----------------------------------------------------------------------------
    def join(self, divide_by_initial_world_size=True, enable=True, throw_on_early_termination=False):
        """Shorthand for ``Join([self], ...)`` (PyTorch's older DDP.join)."""
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, divide_by_initial_world_size=True, **kwargs):
        return DDPJoinHook(self, divide_by_initial_world_size)

    @property
    def join_device(self):
        return next(iter(self.module.parameters())).device

    @property
    def join_process_group(self):
        return self.process_group if self.process_group is not None else dist.group.WORLD

    @contextlib.contextmanager
    def no_sync(self):
        """Skip gradient synchronisation: gradients accumulate locally until the first synced backward."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def register_comm_hook(self, state, hook):
        self.reducer.register_comm_hook(state, hook)

    def _set_static_graph(self):
        self.static_graph = True


def _describe(entry):
    if entry is None:
        return "no such parameter"
    name, shape, dtype = entry
    return f"'{name}' of shape {shape} and dtype {dtype}"
