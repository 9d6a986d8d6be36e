"""Stochastic gradient descent with momentum, dampening, Nesterov, weight decay and maximize."""
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
        direction = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            direction = direction + group["weight_decay"] * data
        momentum = group["momentum"]
        if momentum != 0:
            direction = self._apply_momentum(param, direction, group)
        data -= group["lr"] * direction

    def _apply_momentum(self, param, direction, group):
        momentum = group["momentum"]
        state = self.state[param]
        buffer = state.get("momentum_buffer")
        if buffer is None:
            # The first step seeds the buffer with the raw direction: no dampening yet.
            buffer = state["momentum_buffer"] = Tensor._wrap(direction.copy())
        else:
            buffer._data *= momentum
            buffer._data += (1 - group["dampening"]) * direction
        if group["nesterov"]:
            return direction + momentum * buffer._data
        return buffer._data
