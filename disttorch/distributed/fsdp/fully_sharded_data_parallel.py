"""FullyShardedDataParallel: parameters, gradients and optimizer state sharded across ranks.

Each FSDP unit (the wrapped module, plus every submodule the auto_wrap_policy picks, each its
own nested FSDP) keeps only its shard of one flat parameter (flat_param.py). A unit's forward
runs inside one autograd Function, _UnitForward:

* forward: all-gather the flat parameter, run the module on views of it, and, for
  SHARD_GRAD_OP and the root unit, keep that inner graph (and so the gathered parameters) until
  backward. FULL_SHARD units other than the root run the module without a graph and drop the
  gathered parameters at once.
* backward: FULL_SHARD units all-gather again and recompute their forward with a graph (numpy
  arrays cannot give their memory back while autograd still holds views of them, so a unit
  whose parameters are freed after forward must rebuild what backward needs); then backward
  runs through the inner graph, accumulating into one flat gradient buffer that is
  reduce-scattered (averaged over ranks) into the unit's shard gradient.

The optimizer works on the flat shards (``model.parameters()``), so its state is 1/N as well.
"""
import contextlib
import itertools
from collections import OrderedDict

import numpy as np

from ... import distributed as dist
from ...core import grad_mode
from ...core.autograd import Function
from ...core.random import get_rng_state, set_rng_state
from ...core.tensor import Tensor
from ...nn.modules.module import Module
from ...nn.parameter import Parameter
from .._shard import ShardedTensor, chunk_bounds
from .api import (FullStateDictConfig, LocalStateDictConfig, ShardedStateDictConfig,
                  ShardingStrategy, StateDictSettings, StateDictType)
from .flat_param import FlatParamHandle
from .wrap import _recursive_wrap

__all__ = ["FullyShardedDataParallel"]

FSDP_WRAPPED_MODULE = "_fsdp_wrapped_module"
FLAT_PARAM = "_flat_param"
_SUPPORTED = (ShardingStrategy.FULL_SHARD, ShardingStrategy.SHARD_GRAD_OP,
              ShardingStrategy.NO_SHARD)
_DEFAULT_CONFIGS = {StateDictType.FULL_STATE_DICT: FullStateDictConfig,
                    StateDictType.SHARDED_STATE_DICT: ShardedStateDictConfig,
                    StateDictType.LOCAL_STATE_DICT: LocalStateDictConfig}


class _UnitCall:
    """What _UnitForward needs besides tensors: the unit and how to rebuild its arguments."""

    def __init__(self, unit, args, kwargs):
        self.unit = unit
        self.recompute = unit._reshard_after_forward()
        self.args, self.kwargs = args, kwargs
        self.tensor_slots = [("a", i) for i, a in enumerate(args) if isinstance(a, Tensor)] + \
            [("k", k) for k, v in kwargs.items() if isinstance(v, Tensor)]

    def tensors(self):
        return [self.args[i] if where == "a" else self.kwargs[i] for where, i in self.tensor_slots]

    def run(self, tensors):
        args, kwargs = list(self.args), dict(self.kwargs)
        for (where, index), tensor in zip(self.tensor_slots, tensors):
            if where == "a":
                args[index] = tensor
            else:
                kwargs[index] = tensor
        output = self.unit._fsdp_wrapped_module(*args, **kwargs)
        if not isinstance(output, Tensor):
            raise NotImplementedError(
                f"FSDP units must return one Tensor when gradients are enabled; "
                f"{type(self.unit._fsdp_wrapped_module).__name__} returned "
                f"{type(output).__name__}. Wrap a module that returns a Tensor instead")
        return output


class _UnitForward(Function):
    @staticmethod
    def forward(ctx, flat_shard, call, *inputs):
        handle = call.unit._handle
        ctx.call = call
        needs = ctx.needs_input_grad[2:]
        full = handle.unshard()
        if call.recompute:
            ctx.inputs = inputs
            ctx.rng_state = get_rng_state()
            handle.bind(full, requires_grad=False)
            try:
                with grad_mode.no_grad():
                    return call.run([Tensor._wrap(a) for a in inputs])._data
            finally:
                handle.unbind()
        views = handle.bind(full, requires_grad=True)
        leaves = [Tensor._wrap(a, requires_grad=need) for a, need in zip(inputs, needs)]
        try:
            output = call.run(leaves)
        finally:
            handle.unbind()
        ctx.inner = (output, views, leaves)
        return output._data

    @staticmethod
    def backward(ctx, grad):
        call = ctx.call
        handle = call.unit._handle
        if call.recompute:
            full = handle.unshard()
            views = handle.bind(full, requires_grad=True)
            leaves = [Tensor._wrap(a, requires_grad=need)
                      for a, need in zip(ctx.inputs, ctx.needs_input_grad[2:])]
            current_rng = get_rng_state()
            set_rng_state(ctx.rng_state)
            try:
                with grad_mode.enable_grad():
                    output = call.run(leaves)
            finally:
                set_rng_state(current_rng)
                handle.unbind()
            ctx.inputs = None
            del full
        else:
            output, views, leaves = ctx.inner
            ctx.inner = None
        flat_grad = handle.attach_grad_buffer(views)
        if output.requires_grad:
            output.backward(Tensor._wrap(grad))
        del output
        shard_grad = handle.reduce_grad(flat_grad)
        input_grads = [None if leaf.grad is None else leaf.grad._data for leaf in leaves]
        for leaf in itertools.chain(views, leaves):
            # A leaf and its AccumulateGrad node point at each other: break that cycle, or the
            # gathered parameters would wait for the garbage collector.
            leaf._accum = None
            leaf.grad = None
        return (shard_grad, None, *input_grads)


class FullyShardedDataParallel(Module):
    """Shards ``module``'s parameters (and, through the optimizer, its state) across ranks.

    Arguments follow ``torch.distributed.fsdp.FullyShardedDataParallel``; disttorch acts on
    ``process_group``, ``sharding_strategy`` (FULL_SHARD, SHARD_GRAD_OP; NO_SHARD trains the
    same way as SHARD_GRAD_OP, with the same results and sharded memory),
    ``auto_wrap_policy``, ``ignored_modules``, ``sync_module_states`` and ``use_orig_params``
    (False only); the rest (device, prefetch and mixed-precision knobs) are accepted and unused.
    """

    def __init__(self, module, process_group=None, sharding_strategy=None, cpu_offload=None,
                 auto_wrap_policy=None, backward_prefetch=None, mixed_precision=None,
                 ignored_modules=None, param_init_fn=None, device_id=None,
                 sync_module_states=False, forward_prefetch=False, limit_all_gathers=True,
                 use_orig_params=False, ignored_states=None, device_mesh=None):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("Default process group has not been initialized, please make sure "
                               "to call init_process_group() before wrapping a module in "
                               "FullyShardedDataParallel.")
        strategy = sharding_strategy or ShardingStrategy.FULL_SHARD
        if strategy not in _SUPPORTED:
            raise NotImplementedError(f"sharding_strategy={strategy} is not supported by "
                                      f"disttorch; use one of {[s.name for s in _SUPPORTED]}")
        if use_orig_params:
            raise NotImplementedError("use_orig_params=True is not supported by disttorch: the "
                                      "optimizer sees each unit's flat parameter shard")
        self.process_group = process_group if process_group is not None else dist.group.WORLD
        self.sharding_strategy = strategy
        self.rank = dist.get_rank(self.process_group)
        self.world_size = dist.get_world_size(self.process_group)
        self._is_root = None
        self._state_dict_type = StateDictType.FULL_STATE_DICT
        self._state_dict_config = FullStateDictConfig()
        ignored = set(ignored_modules or ())
        if auto_wrap_policy is not None:
            child_kwargs = dict(process_group=process_group, sharding_strategy=strategy,
                                ignored_modules=ignored_modules,
                                sync_module_states=sync_module_states)
            _recursive_wrap(module, auto_wrap_policy,
                            lambda child: FullyShardedDataParallel(child, **child_kwargs),
                            only_wrap_children=True)
        self._fsdp_wrapped_module = module
        if sync_module_states:
            _broadcast_from_rank0(self.process_group, _own_tensors(module, ignored, buffers=True))
        entries = _own_parameter_entries(module, ignored)
        self._handle = FlatParamHandle(entries, self.process_group) if entries else None
        if self._handle is not None:
            module._parameters[FLAT_PARAM] = self._handle.flat_param

    @property
    def module(self):
        return self._fsdp_wrapped_module

    def _reshard_after_forward(self):
        return self.sharding_strategy == ShardingStrategy.FULL_SHARD and not self._is_root

    def _lazy_init(self):
        """The first FSDP forward to run is the root's: its parameters stay gathered from
        forward to backward (they are needed first in backward anyway)."""
        if self._is_root is not None:
            return
        self._is_root = True
        for unit in self.modules():
            if isinstance(unit, FullyShardedDataParallel) and unit is not self:
                unit._is_root = False

    def forward(self, *args, **kwargs):
        self._lazy_init()
        handle = self._handle
        if handle is None:
            return self._fsdp_wrapped_module(*args, **kwargs)
        if not (grad_mode.is_grad_enabled() and handle.flat_param.requires_grad):
            handle.bind(handle.unshard(), requires_grad=False)
            try:
                return self._fsdp_wrapped_module(*args, **kwargs)
            finally:
                handle.unbind()
        call = _UnitCall(self, args, kwargs)
        return _UnitForward.apply(handle.flat_param, call, *call.tensors())

    # ---- full parameters ------------------------------------------------------------------------
    def _units(self):
        return [unit for unit in self.modules()
                if isinstance(unit, FullyShardedDataParallel) and unit._handle is not None]

    @staticmethod
    @contextlib.contextmanager
    def summon_full_params(module, recurse=True, writeback=True, rank0_only=False,
                           offload_to_cpu=False, with_grads=False):
        """Inside the context the original parameters are back, whole, on every unit; with
        ``writeback`` each rank copies its slice of any change back into its shard."""
        units = [unit for unit in module.modules()
                 if isinstance(unit, FullyShardedDataParallel) and unit._handle is not None]
        if not recurse:
            units = units[:1]
        restored = []
        try:
            for unit in units:
                handle = unit._handle
                full = handle.unshard()
                inner = unit._fsdp_wrapped_module
                del inner._parameters[FLAT_PARAM]
                for (owner, name, *_), view in zip(handle.entries, handle.views(full)):
                    owner.__dict__.pop(name, None)
                    owner._parameters[name] = Parameter(
                        Tensor._wrap(view), requires_grad=handle.flat_param.requires_grad)
                restored.append((unit, full))
            yield
        finally:
            for unit, full in restored:
                handle = unit._handle
                for owner, name, *_ in handle.entries:
                    del owner._parameters[name]
                unit._fsdp_wrapped_module._parameters[FLAT_PARAM] = handle.flat_param
                handle.unbind()
                if writeback:
                    low, high = handle.shard_bounds
                    handle.flat_param._data[...] = full[low:high]
                    handle.flat_param._vc[0] += 1

    # ---- state_dict -----------------------------------------------------------------------------
    @staticmethod
    @contextlib.contextmanager
    def state_dict_type(module, state_dict_type, state_dict_config=None,
                        optim_state_dict_config=None):
        """Inside the context, ``state_dict`` / ``load_state_dict`` of every FSDP unit in
        ``module`` use ``state_dict_type``."""
        units = [m for m in module.modules() if isinstance(m, FullyShardedDataParallel)]
        previous = [(unit._state_dict_type, unit._state_dict_config) for unit in units]
        config = state_dict_config or _DEFAULT_CONFIGS[state_dict_type]()
        for unit in units:
            unit._state_dict_type, unit._state_dict_config = state_dict_type, config
        try:
            yield StateDictSettings(state_dict_type, config, optim_state_dict_config)
        finally:
            for unit, (kind, cfg) in zip(units, previous):
                unit._state_dict_type, unit._state_dict_config = kind, cfg

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
        self._lazy_init()
        if not self._is_outermost():
            return Module.state_dict(self, destination=destination, prefix=prefix,
                                     keep_vars=keep_vars)
        kind = self._state_dict_type
        if kind == StateDictType.LOCAL_STATE_DICT:
            return Module.state_dict(self, destination=destination, prefix=prefix,
                                     keep_vars=keep_vars)
        with self.summon_full_params(self, writeback=False):
            full = _clean_keys(self._fsdp_wrapped_module.state_dict(keep_vars=True))
        out = OrderedDict() if destination is None else destination
        if kind == StateDictType.FULL_STATE_DICT:
            if self._state_dict_config.rank0_only and self.rank != 0:
                return out
            for key, value in full.items():
                out[prefix + key] = Tensor._wrap(value._data.copy())
            return out
        for key, value in full.items():
            out[prefix + key] = self._chunk(value)
        return out

    def _chunk(self, tensor):
        if tensor.dim() == 0:
            return Tensor._wrap(tensor._data.copy())
        start, stop = chunk_bounds(tensor.shape[0], self.world_size, self.rank)
        return ShardedTensor(Tensor._wrap(tensor._data[start:stop].copy()), tuple(tensor.shape),
                             start, self.rank)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        self._lazy_init()
        kind = self._state_dict_type
        if not self._is_outermost() or kind == StateDictType.LOCAL_STATE_DICT:
            return Module.load_state_dict(self, state_dict, strict, assign)
        if kind == StateDictType.SHARDED_STATE_DICT:
            state_dict = OrderedDict((key, self._unchunk(value)) for key, value in state_dict.items())
        with self.summon_full_params(self, writeback=True):
            inner = self._fsdp_wrapped_module
            names = {_clean_key(key): key for key in inner.state_dict(keep_vars=True)}
            unknown = [key for key in state_dict if key not in names]
            renamed = OrderedDict((names.get(key, key), value) for key, value in state_dict.items())
            result = inner.load_state_dict(renamed, strict=strict)
        if strict and unknown:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                               f"Unexpected key(s) in state_dict: {unknown}")
        return result

    def _unchunk(self, value):
        """A ShardedTensor's whole tensor, all-gathered from every rank's chunk."""
        if not isinstance(value, ShardedTensor):
            return value
        local = value.local_tensor()
        rows = value.size()[0]
        per_rank = -(-rows // self.world_size)
        padded = np.zeros((per_rank * self.world_size,) + tuple(value.size()[1:]),
                          dtype=local._data.dtype)
        mine = np.zeros((per_rank,) + tuple(value.size()[1:]), dtype=local._data.dtype)
        mine[:local.shape[0]] = local._data
        dist.all_gather_into_tensor(Tensor._wrap(padded), Tensor._wrap(mine),
                                    group=self.process_group)
        return Tensor._wrap(padded[:rows])

    def _is_outermost(self):
        return self._is_root is not False

    def __repr__(self):
        return f"FullyShardedDataParallel(\n  {self._fsdp_wrapped_module!r}\n)"


def _clean_key(key):
    return key.replace(FSDP_WRAPPED_MODULE + ".", "")


def _clean_keys(state):
    return OrderedDict((_clean_key(key), value) for key, value in state.items())


def _own_modules(module, ignored):
    """``module`` and its submodules, stopping at nested FSDP units and ignored modules."""
    stack = [module]
    while stack:
        current = stack.pop()
        if current in ignored or isinstance(current, FullyShardedDataParallel):
            continue
        yield current
        stack.extend(reversed([c for c in current._modules.values() if c is not None]))


def _own_parameter_entries(module, ignored):
    seen = set()
    entries = []
    for owner in _own_modules(module, ignored):
        for name, p in owner._parameters.items():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                entries.append((owner, name))
    return entries


def _own_tensors(module, ignored, buffers):
    tensors = [owner._parameters[name] for owner, name in _own_parameter_entries(module, ignored)]
    if buffers:
        tensors += [b for owner in _own_modules(module, ignored)
                    for b in owner._buffers.values() if b is not None]
    return tensors


def _broadcast_from_rank0(group, tensors):
    root = dist.get_global_rank(group, 0)
    for tensor in tensors:
        dist.broadcast(tensor.detach(), src=root, group=group)


