"""One FSDP unit's parameters as one flat array, padded and split evenly across the ranks.

Rank r keeps elements [r * shard, (r + 1) * shard) of the concatenation of the unit's parameters
(``flat_param``, the Parameter an optimizer sees). ``unshard`` all-gathers the whole flat array;
``bind`` points the original modules' attributes at views of it for one forward or backward;
``reduce_grad`` reduce-scatters the views' gradients (averaged over ranks) back into a shard.
"""
import weakref

import numpy as np

from ... import distributed as dist
from ...core.tensor import Tensor
from ...nn.parameter import Parameter

# Bytes of gathered (unsharded) flat arrays alive in this process now, and the most seen at once;
# finalizers keep them exact, so tests can measure what FSDP really holds.
UNSHARDED_BYTES = {"alive": 0, "peak": 0}


def _track(array):
    UNSHARDED_BYTES["alive"] += array.nbytes
    UNSHARDED_BYTES["peak"] = max(UNSHARDED_BYTES["peak"], UNSHARDED_BYTES["alive"])
    weakref.finalize(array, _untrack, array.nbytes)
    return array


def _untrack(nbytes):
    UNSHARDED_BYTES["alive"] -= nbytes


class FlatParamHandle:
    def __init__(self, entries, process_group):
        """``entries``: [(module, name)] of the parameters this unit owns, in registration order."""
        self.process_group = process_group
        self.world_size = dist.get_world_size(process_group)
        self.rank = dist.get_rank(process_group)
        params = [module._parameters[name] for module, name in entries]
        dtypes = {p._data.dtype for p in params}
        if len(dtypes) != 1:
            raise ValueError(f"FSDP flattens a unit's parameters into one array, so they must share "
                             f"a dtype; got {sorted(d.name for d in dtypes)}. Convert the module "
                             "(e.g. .double()) or wrap differently-typed parts as separate units")
        if len({p.requires_grad for p in params}) != 1:
            raise ValueError("FSDP with use_orig_params=False needs all parameters of a unit to "
                             "agree on requires_grad; wrap frozen parts as separate units")
        self.dtype = params[0]._data.dtype
        self.entries = []
        offset = 0
        for (module, name), p in zip(entries, params):
            self.entries.append((module, name, tuple(p.shape), offset, p.numel()))
            offset += p.numel()
        self.numel = offset
        self.shard_numel = -(-offset // self.world_size)
        self.padded_numel = self.shard_numel * self.world_size
        full = np.zeros(self.padded_numel, dtype=self.dtype)
        for (module, name, shape, start, count), p in zip(self.entries, params):
            full[start:start + count] = p._data.reshape(-1)
        low = self.rank * self.shard_numel
        self.flat_param = Parameter(Tensor._wrap(full[low:low + self.shard_numel].copy()),
                                    requires_grad=params[0].requires_grad)
        self.flat_param._fsdp_flattened = True
        for module, name, *_ in self.entries:
            del module._parameters[name]
        self.unbind()

    @property
    def shard_bounds(self):
        low = self.rank * self.shard_numel
        return low, low + self.shard_numel

    def unshard(self):
        """The whole flat array, gathered from every rank's shard."""
        full = _track(np.empty(self.padded_numel, dtype=self.dtype))
        if self.world_size == 1:
            full[...] = self.flat_param._data
        else:
            dist.all_gather_into_tensor(Tensor._wrap(full), self.flat_param.detach(),
                                        group=self.process_group)
        return full

    def views(self, full):
        return [full[start:start + count].reshape(shape)
                for _, _, shape, start, count in self.entries]

    def bind(self, full, requires_grad):
        """Point each original attribute at its view of ``full``; returns the view tensors."""
        tensors = []
        for (module, name, *_), view in zip(self.entries, self.views(full)):
            tensor = Tensor._wrap(view, requires_grad=requires_grad)
            module.__dict__[name] = tensor
            tensors.append(tensor)
        return tensors

    def unbind(self):
        """Drop the views (so the gathered array can be freed): empty placeholders remain."""
        for module, name, *_ in self.entries:
            module.__dict__[name] = Tensor._wrap(np.empty(0, dtype=self.dtype))

    def attach_grad_buffer(self, view_tensors):
        """Give the views ``.grad`` slices of one zeroed flat buffer, so backward accumulates
        straight into what reduce_grad sends."""
        flat_grad = np.zeros(self.padded_numel, dtype=self.dtype)
        for tensor, view in zip(view_tensors, self.views(flat_grad)):
            tensor.grad = Tensor._wrap(view)
        return flat_grad

    def reduce_grad(self, flat_grad):
        """This rank's shard of the gradient, averaged over the ranks."""
        if self.world_size == 1:
            low, high = self.shard_bounds
            return flat_grad[low:high].copy()
        shard = np.empty(self.shard_numel, dtype=self.dtype)
        dist.reduce_scatter_tensor(Tensor._wrap(shard), Tensor._wrap(flat_grad),
                                   op=dist.ReduceOp.AVG, group=self.process_group)
        return shard
