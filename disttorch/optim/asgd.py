"""ASGD (Polyak & Juditsky): SGD with a decaying step size that also keeps a running average of the iterates
(state 'ax'), averaging from step t0 on."""
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_lr,
    _check_non_negative,
)


class ASGD(Optimizer):
    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None, maximize=False,
                 differentiable=False, capturable=False):
        _check_lr(lr)
        _check_non_negative("weight_decay", weight_decay)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        return self._fresh_state(param, ("ax",), eta=group["lr"], mu=1.0)

    def _update(self, param, grad, group):
        data = param._data
        state = self.state[param] or self._init_state(param, group)
        lr, lambd = group["lr"], group["lambd"]
        state["step"]._data += 1
        step = float(state["step"]._data)
        grad = self._effective_grad(data, grad, group["maximize"], group["weight_decay"])

        eta = float(state["eta"]._data)
        data *= 1 - lambd * eta
        data -= eta * grad
        ax, mu = state["ax"]._data, float(state["mu"]._data)
        if mu != 1:
            ax += (data - ax) * mu
        else:
            ax[...] = data
        state["eta"]._data[...] = lr / (1 + lambd * lr * step) ** group["alpha"]
        state["mu"]._data[...] = 1 / max(1, step - group["t0"])
