"""Optimizer base: parameter groups, per-parameter state, PyTorch-layout state_dict, zero_grad, closures.

Subclasses implement `_update(param, grad, group)` on raw ndarrays; the base loops over parameters that
have a gradient and bumps each parameter's version counter, so autograd notices the in-place write.

A subclass may also implement `_foreach_update(params, flat_grad, group)`: one step of the whole group as a
few passes over flat arrays (the gradients gathered end to end, the state kept as slices of one buffer per
state name), with the same elementwise arithmetic as `_update`, so both paths give identical numbers. As in
PyTorch, `foreach=None` takes it for CUDA parameters only, where it saves dozens of kernel launches per
parameter; on numpy the loop over cache-resident parameters is as fast or faster (AdamW over a 0.8M-parameter
GPT: ~6 ms looped, ~7.5 ms foreach, since gathering the gradients and scattering the update cost about what
the saved calls do). `foreach=True` asks for it anywhere, `foreach=False` never.
"""
import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from ..core import dtype as dt
from ..core.backend import array_device_index, get_array_module, is_cuda_array, to_device_array
from ..core.grad_mode import enable_grad
from ..core.tensor import Tensor


class _RequiredParameter:
    """Marks a hyperparameter that has no default and must be given per group."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _zeros_state(param):
    """A zero-filled state tensor shaped, typed and placed like `param`."""
    return Tensor._wrap(get_array_module(param._data).zeros_like(param._data))


def _scalar_step_tensor(value=0.0):
    """A 0-dim step counter like PyTorch's: float32, or float64 when that is the default dtype."""
    np_dtype = np.float64 if dt.get_default_dtype() == dt.float64 else np.float32
    return Tensor._wrap(np.array(value, dtype=np_dtype))


def _check_non_negative(name, value):
    if not 0.0 <= value:
        raise ValueError(f"Invalid {name} value: {value}")


def _check_lr(lr):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")


def _check_eps(eps):
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")


def _check_differentiable(differentiable):
    if differentiable:
        raise NotImplementedError(
            "differentiable=True is not supported: disttorch optimizers update parameters in place outside "
            "autograd. Use differentiable=False (the default).")


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, but got "
                f"a single Tensor of shape {tuple(params.shape)}; pass [tensor] or model.parameters() instead")
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ---- parameter groups -----------------------------------------------------------------------
    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of tensors "
                "in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)
        self._split_named_params(param_group)

        for param in param_group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)

        ids = [id(p) for p in param_group["params"]]
        if len(ids) != len(set(ids)):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this will cause an "
                "error; see github.com/pytorch/pytorch/issues/40967 for more information", stacklevel=3)
        existing = {id(p) for group in self.param_groups for p in group["params"]}
        if not existing.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    @staticmethod
    def _split_named_params(param_group):
        """Accept (name, tensor) pairs like model.named_parameters(); names go to 'param_names'."""
        params = param_group["params"]
        named = [isinstance(p, tuple) for p in params]
        if not any(named):
            return
        if not all(named):
            raise ValueError("all optimizer params should be with/without names. Some param names are missing")
        param_group["param_names"] = [name for name, _ in params]
        param_group["params"] = [p for _, p in params]

    # ---- stepping -------------------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = self._foreach_params(group)
            if params is not None:
                self._foreach_update(params, self._gather([p.grad._data for p in params], slot="grads"), group)
                for param in params:
                    param._vc[0] += 1
                continue
            for param in group["params"]:
                if param.grad is None:
                    continue
                self._update(param, param.grad._data, group)
                param._vc[0] += 1
        return loss

    _foreach_update = None

    def _foreach_params(self, group):
        """The group's parameters that have a gradient, when the foreach path serves them all; else None."""
        foreach = group.get("foreach")
        if self._foreach_update is None or foreach is False:
            return None
        params = [p for p in group["params"] if p.grad is not None]
        if len(params) < 2:
            return None
        first = params[0]._data
        if foreach is None and not is_cuda_array(first):
            return None
        kind, device, dtype = type(first), array_device_index(first), first.dtype
        for p in params:
            data, grad = p._data, p.grad._data
            if (type(data) is not kind or data.dtype != dtype or grad.dtype != dtype or type(grad) is not kind
                    or array_device_index(data) != device or array_device_index(grad) != device):
                return None
        return params

    def _gather(self, arrays, slot):
        """The arrays laid end to end in one reusable flat buffer."""
        xp = get_array_module(arrays[0])
        total = sum(a.size for a in arrays)
        flat = self._scratch_like(xp.empty(0, dtype=arrays[0].dtype), slot=slot, size=total)
        xp.concatenate([a.reshape(-1) for a in arrays], out=flat)
        return flat

    def _scatter_subtract(self, params, flat_update):
        """param -= its slice of flat_update, for each parameter in gather order."""
        begin = 0
        for p in params:
            data = p._data
            end = begin + data.size
            data -= flat_update[begin:end].reshape(data.shape)
            begin = end

    def _flat_state(self, params, names):
        """name -> one flat array whose consecutive slices are the parameters' state[name] arrays.

        The state tensors are re-pointed at those slices the first time (and again whenever something, like
        load_state_dict, replaced them), so per-parameter state and state_dict keep working unchanged.
        """
        cache = self.__dict__.setdefault("_flat_state_cache", {})
        key = (tuple(map(id, params)), names)
        entry = cache.get(key)
        if entry is not None and all(self.state[p][name]._data is view
                                     for name, views in entry[1].items() for p, view in zip(params, views)):
            return entry[0]
        xp = get_array_module(params[0]._data)
        flats, views = {}, {}
        for name in names:
            arrays = [self.state[p][name]._data for p in params]
            flats[name] = xp.concatenate([a.reshape(-1) for a in arrays])
            views[name] = []
            begin = 0
            for p, array in zip(params, arrays):
                view = flats[name][begin:begin + array.size].reshape(array.shape)
                self.state[p][name]._data = view
                views[name].append(view)
                begin += array.size
        cache[key] = (flats, views)
        return flats

    def _update(self, param, grad, group):
        raise NotImplementedError(f"{type(self).__name__} must implement step() or _update()")

    def _fresh_state(self, param, zero_buffers, **scalars):
        """`param`'s first state, keyed in PyTorch's order: the step counter, then `scalars` as 0-dim
        tensors in the counter's dtype (so they round as PyTorch's do), then the named buffers, zeros
        shaped, typed and placed like `param`."""
        state = self.state[param]
        state["step"] = _scalar_step_tensor()
        for name, value in scalars.items():
            state[name] = _scalar_step_tensor(value)
        for name in zero_buffers:
            state[name] = _zeros_state(param)
        return state

    def _scratch_like(self, array, slot=0, size=None):
        """A reusable temporary shaped like `array` (or flat, of `size` elements): one flat buffer per slot,
        sized by the largest request, so a step allocates nothing per parameter."""
        xp = get_array_module(array)
        buffers = self.__dict__.setdefault("_scratch_buffers", {})
        key = (slot, xp.__name__, array_device_index(array), array.dtype.str)
        wanted = array.size if size is None else size
        flat = buffers.get(key)
        if flat is None or flat.size < wanted:
            flat = buffers[key] = xp.empty(wanted, dtype=array.dtype)
        return flat[:wanted] if size is not None else flat[:wanted].reshape(array.shape)

    def _effective_grad(self, data, grad, maximize, weight_decay):
        """The gradient negated when maximizing, plus L2 weight decay; the raw gradient when neither applies."""
        if not maximize and weight_decay == 0:
            return grad
        xp = get_array_module(data)
        out = self._scratch_like(data, slot=1)
        if weight_decay != 0:
            xp.multiply(data, weight_decay, out=out)
            (xp.subtract if maximize else xp.add)(out, grad, out=out)
        else:
            xp.negative(grad, out=out)
        return out

    # ---- state_dict -----------------------------------------------------------------------------
    def state_dict(self):
        index_of = {}
        next_index = 0
        packed_groups = []
        for group in self.param_groups:
            for i, p in enumerate(group["params"], next_index):
                index_of.setdefault(id(p), i)
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            next_index += len(packed["params"])
            packed_groups.append(packed)
        packed_state = {
            (index_of[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()
        }
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict):
        saved_groups = deepcopy(state_dict["param_groups"])
        groups = self.param_groups
        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups: "
                f"the optimizer has {len(groups)}, the state dict has {len(saved_groups)}")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of optimizer's group: "
                f"optimizer group sizes {[len(g['params']) for g in groups]}, "
                f"state dict group sizes {[len(s['params']) for s in saved_groups]}")
        param_of_id = dict(zip(chain.from_iterable(s["params"] for s in saved_groups),
                               chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key in param_of_id:
                param = param_of_id[key]
                state[param] = {k: _cast_state_value(param, v, k) for k, v in value.items()}
            else:
                state[key] = value
        new_groups = []
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            new_groups.append(saved)
        self.__setstate__({"state": state, "param_groups": new_groups})

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        # Checkpoints from older versions may lack newer hyperparameters or hold 'step' as a number.
        for group in self.param_groups:
            for name, default in self.defaults.items():
                if default is not required:
                    group.setdefault(name, default)
        for param_state in self.state.values():
            step = param_state.get("step") if isinstance(param_state, dict) else None
            if step is not None and not isinstance(step, Tensor):
                param_state["step"] = _scalar_step_tensor(float(step))

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        lines.append(")")
        return "\n".join(lines)


def _cast_state_value(param, value, key):
    """Copy a loaded state value onto the parameter's device and dtype.

    Step counters stay where they are (on the CPU, read once per step), as in PyTorch.
    """
    if isinstance(value, Tensor):
        if key == "step":
            return Tensor._wrap(value._data.copy())
        array = to_device_array(value._data, param.device)
        if param._data.dtype.kind == "f":
            array = array.astype(param._data.dtype, copy=array is value._data)
        elif array is value._data:
            array = array.copy()
        return Tensor._wrap(array)
    if isinstance(value, dict):
        return {k: _cast_state_value(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_state_value(param, v, None) for v in value)
    return value
