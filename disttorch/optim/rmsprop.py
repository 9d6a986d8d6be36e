"""RMSprop (Hinton) with optional momentum, centering, weight decay and maximize."""
from ..core.backend import get_array_module
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
)


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        _check_lr(lr)
        _check_eps(eps)
        _check_non_negative("momentum", momentum)
        _check_non_negative("weight_decay", weight_decay)
        _check_non_negative("alpha", alpha)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        return self._fresh_state(param, ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
                                 + (("grad_avg",) if group["centered"] else ()))

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        alpha = group["alpha"]
        state["step"]._data += 1
        grad = self._effective_grad(data, grad, group["maximize"], group["weight_decay"])

        square_avg = state["square_avg"]._data
        square_avg *= alpha
        scratch = self._scratch_like(data)
        xp.multiply(grad, grad, out=scratch)
        scratch *= 1 - alpha
        square_avg += scratch

        if group["centered"]:
            grad_avg = state["grad_avg"]._data
            xp.subtract(grad, grad_avg, out=scratch)
            scratch *= 1 - alpha
            grad_avg += scratch
            xp.multiply(grad_avg, grad_avg, out=scratch)
            xp.subtract(square_avg, scratch, out=scratch)
            avg = xp.sqrt(scratch, out=scratch)
        else:
            avg = xp.sqrt(square_avg, out=scratch)
        avg += group["eps"]

        update = xp.divide(grad, avg, out=avg)
        if group["momentum"] > 0:
            buffer = state["momentum_buffer"]._data
            buffer *= group["momentum"]
            buffer += update
            update = xp.multiply(buffer, group["lr"], out=update)
        else:
            update *= group["lr"]
        data -= update
