"""Stochastic gradient descent with momentum, dampening, Nesterov, weight decay and maximize."""
from ..core.backend import get_array_module
from ..core.tensor import Tensor
from .optimizer import Optimizer, _check_differentiable, _check_lr, _check_non_negative


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        _check_lr(lr)
        _check_non_negative("momentum", momentum)
        _check_non_negative("weight_decay", weight_decay)
        _check_differentiable(differentiable)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults)

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        direction = self._effective_grad(data, grad, group["maximize"], group["weight_decay"])
        if group["momentum"] != 0:
            direction = self._apply_momentum(param, direction, group)
        step = xp.multiply(direction, group["lr"], out=self._scratch_like(data))
        data -= step

    def _foreach_update(self, params, flat_grad, group):
        weight_decay = group["weight_decay"]
        flat_data = self._gather([p._data for p in params], slot="params") if weight_decay != 0 else flat_grad
        direction = self._effective_grad(flat_data, flat_grad, group["maximize"], weight_decay)
        if group["momentum"] != 0:
            seeded = [self.state[p].get("momentum_buffer") is not None for p in params]
            if not all(seeded):
                if any(seeded):
                    for param in params:
                        self._update(param, param.grad._data, group)
                    return
                self._seed_momentum(params, direction)
                flat_buffer = self._flat_state(params, ("momentum_buffer",))["momentum_buffer"]
            else:
                flat_buffer = self._flat_state(params, ("momentum_buffer",))["momentum_buffer"]
                _add_momentum(flat_buffer, direction, group, self._scratch_like(flat_buffer))
            direction = self._momentum_direction(flat_buffer, direction, group)
        xp = get_array_module(flat_grad)
        self._scatter_subtract(params, xp.multiply(direction, group["lr"], out=self._scratch_like(flat_grad)))

    def _seed_momentum(self, params, flat_direction):
        """The first step seeds each buffer with the raw direction: no dampening yet."""
        xp = get_array_module(flat_direction)
        begin = 0
        for p in params:
            end = begin + p._data.size
            self.state[p]["momentum_buffer"] = Tensor._wrap(
                xp.array(flat_direction[begin:end].reshape(p._data.shape), dtype=p._data.dtype))
            begin = end

    def _apply_momentum(self, param, direction, group):
        state = self.state[param]
        buffer = state.get("momentum_buffer")
        xp = get_array_module(param._data)
        if buffer is None:
            # The first step seeds the buffer with the raw direction: no dampening yet.
            buffer = state["momentum_buffer"] = Tensor._wrap(xp.array(direction, dtype=param._data.dtype))
            buffer = buffer._data
        else:
            buffer = buffer._data
            _add_momentum(buffer, direction, group, self._scratch_like(buffer))
        return self._momentum_direction(buffer, direction, group)

    def _momentum_direction(self, buffer, direction, group):
        if group["nesterov"]:
            # direction is either the raw grad (read-only) or scratch slot 1 (ours to overwrite).
            xp = get_array_module(buffer)
            out = self._scratch_like(buffer, slot=1)
            return xp.add(direction, xp.multiply(buffer, group["momentum"], out=self._scratch_like(buffer)), out=out)
        return buffer


def _add_momentum(buffer, direction, group, scratch):
    buffer *= group["momentum"]
    if group["dampening"] == 0:
        buffer += direction
    else:
        buffer += get_array_module(buffer).multiply(direction, 1 - group["dampening"], out=scratch)
