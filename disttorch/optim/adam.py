"""Adam (Kingma & Ba) with optional AMSGrad, L2 or decoupled weight decay, and maximize."""
import math

from ..core.backend import get_array_module
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
    _scalar_step_tensor,
    _zeros_state,
)


def _check_betas(betas):
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta}")


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        _check_lr(lr)
        _check_eps(eps)
        _check_betas(betas)
        _check_non_negative("weight_decay", weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        state = self.state[param]
        state["step"] = _scalar_step_tensor()
        state["exp_avg"] = _zeros_state(param)
        state["exp_avg_sq"] = _zeros_state(param)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = _zeros_state(param)
        return state

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        lr, weight_decay, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
        decoupled = group["decoupled_weight_decay"]
        if decoupled and weight_decay != 0:
            data *= 1 - lr * weight_decay
        grad = self._effective_grad(data, grad, group["maximize"], 0 if decoupled else weight_decay)

        state["step"]._data += 1
        step = float(state["step"]._data)
        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        # One scratch array serves every temporary below.
        scratch = self._scratch_like(data)
        xp.subtract(grad, exp_avg, out=scratch)
        scratch *= 1 - beta1
        exp_avg += scratch
        exp_avg_sq *= beta2
        xp.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        exp_avg_sq += scratch

        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = state["max_exp_avg_sq"]._data
            xp.maximum(second_moment, exp_avg_sq, out=second_moment)
        denom = xp.sqrt(second_moment, out=scratch)
        denom /= math.sqrt(1 - beta2 ** step)
        denom += group["eps"]
        update = xp.divide(exp_avg, denom, out=denom)
        update *= lr / (1 - beta1 ** step)
        data -= update
