"""NAdam (Dozat): Adam with Nesterov momentum and a momentum schedule that warms up towards beta1."""
from ..core.backend import get_array_module
from .adam import _check_betas
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
)


class NAdam(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        _check_lr(lr)
        _check_eps(eps)
        _check_betas(betas)
        _check_non_negative("weight_decay", weight_decay)
        _check_non_negative("momentum_decay", momentum_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        # mu_product: the running product of the momentum schedule.
        return self._fresh_state(param, ("exp_avg", "exp_avg_sq"), mu_product=1.0)

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        decoupled = group["decoupled_weight_decay"]
        state["step"]._data += 1
        step = float(state["step"]._data)
        if decoupled and weight_decay != 0:
            data *= 1 - lr * weight_decay
        grad = self._effective_grad(data, grad, group["maximize"], 0 if decoupled else weight_decay)

        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"]))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
        mu_product = state["mu_product"]._data
        mu_product *= mu
        mu_product_value = float(mu_product)

        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        denom = xp.sqrt(exp_avg_sq / (1 - beta2 ** step))
        denom += eps
        # Nesterov: this step's gradient under the current momentum plus the average under the next one.
        data -= lr * (1.0 - mu) / (1.0 - mu_product_value) * grad / denom
        data -= lr * mu_next / (1.0 - mu_product_value * mu_next) * exp_avg / denom

