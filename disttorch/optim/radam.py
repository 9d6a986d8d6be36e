"""RAdam (Liu et al.): Adam whose adaptive step is switched on only once the variance estimate is reliable."""
import math

from ..core.backend import get_array_module
from .adam import _check_betas
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
)


class RAdam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False):
        _check_lr(lr)
        _check_eps(eps)
        _check_betas(betas)
        _check_non_negative("weight_decay", weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        return self._fresh_state(param, ("exp_avg", "exp_avg_sq"))

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        lr, weight_decay = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        decoupled = group["decoupled_weight_decay"]
        state["step"]._data += 1
        step = float(state["step"]._data)
        if decoupled and weight_decay != 0:
            data *= 1 - lr * weight_decay
        grad = self._effective_grad(data, grad, group["maximize"], 0 if decoupled else weight_decay)

        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step

        # rho: the length of the simple moving average that the exponential one approximates. Below 5 steps'
        # worth the second moment's variance is unbounded, so the step is plain momentum SGD.
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2 ** step / bias_correction2
        update = exp_avg / bias_correction1 * lr
        if rho_t > 5.0:
            rectification = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            update *= math.sqrt(bias_correction2) / (xp.sqrt(exp_avg_sq) + group["eps"])
            update *= rectification
        data -= update
