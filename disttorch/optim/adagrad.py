"""Adagrad (Duchi et al.) with learning-rate decay, weight decay, an initial accumulator and maximize."""
from ..core.backend import get_array_module
from ..core.tensor import Tensor
from .optimizer import (
    Optimizer,
    _check_differentiable,
    _check_eps,
    _check_lr,
    _check_non_negative,
    _scalar_step_tensor,
)


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check_lr(lr)
        _check_non_negative("lr_decay", lr_decay)
        _check_non_negative("weight_decay", weight_decay)
        _check_non_negative("initial_accumulator_value", initial_accumulator_value)
        _check_eps(eps)
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        # PyTorch creates Adagrad's state eagerly, so a fresh optimizer's state_dict already lists it.
        for group in self.param_groups:
            for param in group["params"]:
                self._init_state(param, group)

    def _init_state(self, param, group):
        xp = get_array_module(param._data)
        state = self.state[param]
        state["step"] = _scalar_step_tensor()
        state["sum"] = Tensor._wrap(xp.full_like(param._data, group["initial_accumulator_value"]))
        return state

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        state["step"]._data += 1
        step = float(state["step"]._data)
        grad = self._effective_grad(data, grad, group["maximize"], group["weight_decay"])
        decayed_lr = group["lr"] / (1 + (step - 1) * group["lr_decay"])

        accumulator = state["sum"]._data
        scratch = self._scratch_like(data)
        xp.multiply(grad, grad, out=scratch)
        accumulator += scratch
        std = xp.sqrt(accumulator, out=scratch)
        std += group["eps"]
        update = xp.divide(grad, std, out=std)
        update *= decayed_lr
        data -= update
