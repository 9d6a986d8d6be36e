"""Adam (Kingma & Ba) with optional AMSGrad, L2 or decoupled weight decay, and maximize."""
import math

from ..core.backend import get_array_module
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
)


def _check_betas(betas):
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta}")


def _moment_names(group):
    """Adam's per-parameter buffers, in PyTorch's state order."""
    return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())


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
        return self._fresh_state(param, _moment_names(group))

    def _update(self, param, grad, group):
        data = param._data
        state = self.state[param] or self._init_state(param, group)
        lr, weight_decay = group["lr"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        if decoupled and weight_decay != 0:
            data *= 1 - lr * weight_decay
        grad = self._effective_grad(data, grad, group["maximize"], 0 if decoupled else weight_decay)
        state["step"]._data += 1
        moments = (state["exp_avg"]._data, state["exp_avg_sq"]._data,
                   state["max_exp_avg_sq"]._data if group["amsgrad"] else None)
        data -= _adam_direction(grad, *moments, self._scratch_like(data), float(state["step"]._data), group)

    def _foreach_update(self, params, flat_grad, group):
        states = [self.state[p] or self._init_state(p, group) for p in params]
        steps = {float(state["step"]._data) for state in states}
        if len(steps) > 1:
            # Parameters stepped different numbers of times have different bias corrections.
            for param, grad in zip(params, (p.grad._data for p in params)):
                self._update(param, grad, group)
            return
        lr, weight_decay = group["lr"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        names = _moment_names(group)
        flat = self._flat_state(params, names)
        if decoupled and weight_decay != 0:
            for p in params:
                p._data *= 1 - lr * weight_decay
        l2 = 0 if decoupled else weight_decay
        flat_data = self._gather([p._data for p in params], slot="params") if l2 != 0 else flat_grad
        grad = self._effective_grad(flat_data, flat_grad, group["maximize"], l2)
        for state in states:
            state["step"]._data += 1
        step = steps.pop() + 1
        update = self._scratch_like(flat_grad)
        # Cache-sized blocks: the dozen passes of the update reuse each block while it is still in cache.
        for begin in range(0, flat_grad.size, _BLOCK_ELEMENTS):
            block = slice(begin, begin + _BLOCK_ELEMENTS)
            _adam_direction(grad[block], flat["exp_avg"][block], flat["exp_avg_sq"][block],
                            flat["max_exp_avg_sq"][block] if group["amsgrad"] else None, update[block], step, group)
        self._scatter_subtract(params, update)


_BLOCK_ELEMENTS = 1 << 16


def _adam_direction(grad, exp_avg, exp_avg_sq, max_exp_avg_sq, scratch, step, group):
    """Update the moments in place and return the step to subtract from the parameter (written in scratch)."""
    xp = get_array_module(grad)
    lr, (beta1, beta2) = group["lr"], group["betas"]
    xp.subtract(grad, exp_avg, out=scratch)
    scratch *= 1 - beta1
    exp_avg += scratch
    exp_avg_sq *= beta2
    xp.multiply(grad, grad, out=scratch)
    scratch *= 1 - beta2
    exp_avg_sq += scratch
    second_moment = exp_avg_sq
    if max_exp_avg_sq is not None:
        second_moment = max_exp_avg_sq
        xp.maximum(second_moment, exp_avg_sq, out=second_moment)
    denom = xp.sqrt(second_moment, out=scratch)
    denom /= math.sqrt(1 - beta2 ** step)
    denom += group["eps"]
    update = xp.divide(exp_avg, denom, out=denom)
    update *= lr / (1 - beta1 ** step)
    return update
