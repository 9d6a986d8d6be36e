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

    def _apply_momentum(self, param, direction, group):
        momentum = group["momentum"]
        state = self.state[param]
        buffer = state.get("momentum_buffer")
        xp = get_array_module(param._data)
        if buffer is None:
            # The first step seeds the buffer with the raw direction: no dampening yet.
            buffer = state["momentum_buffer"] = Tensor._wrap(xp.array(direction, dtype=param._data.dtype))
            buffer = buffer._data
        else:
            buffer = buffer._data
            buffer *= momentum
            if group["dampening"] == 0:
                buffer += direction
            else:
                buffer += xp.multiply(direction, 1 - group["dampening"], out=self._scratch_like(buffer))
        if group["nesterov"]:
            # direction is either the raw grad (read-only) or scratch slot 1 (ours to overwrite).
            out = self._scratch_like(buffer, slot=1)
            return xp.add(direction, xp.multiply(buffer, momentum, out=self._scratch_like(buffer)), out=out)
        return buffer
