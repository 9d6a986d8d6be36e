"""Adamax (Kingma & Ba): Adam with the second moment replaced by an exponentially weighted infinity norm."""
from ..core.backend import get_array_module
from .adam import _check_betas
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
)


class Adamax(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        _check_lr(lr)
        _check_eps(eps)
        _check_betas(betas)
        _check_non_negative("weight_decay", weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        return self._fresh_state(param, ("exp_avg", "exp_inf"))

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        beta1, beta2 = group["betas"]
        state["step"]._data += 1
        step = float(state["step"]._data)
        grad = self._effective_grad(data, grad, group["maximize"], group["weight_decay"])

        exp_avg, exp_inf = state["exp_avg"]._data, state["exp_inf"]._data
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_inf *= beta2
        # eps inside the maximum keeps the divisor positive where the gradient has always been zero.
        xp.maximum(exp_inf, xp.abs(grad) + group["eps"], out=exp_inf)
        data -= group["lr"] / (1 - beta1 ** step) * exp_avg / exp_inf
