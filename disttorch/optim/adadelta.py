"""Adadelta (Zeiler): per-element step sizes from running averages of squared gradients and updates."""
from ..core.backend import get_array_module
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
)


class Adadelta(Optimizer):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        _check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        _check_eps(eps)
        _check_non_negative("weight_decay", weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        return self._fresh_state(param, ("square_avg", "acc_delta"))

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        rho, eps = group["rho"], group["eps"]
        state["step"]._data += 1
        grad = self._effective_grad(data, grad, group["maximize"], group["weight_decay"])

        square_avg, acc_delta = state["square_avg"]._data, state["acc_delta"]._data
        square_avg *= rho
        square_avg += (1 - rho) * grad * grad
        # delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * grad: the update carries the units of
        # the parameter, which is Adadelta's point.
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        delta *= group["lr"]
        data -= delta
