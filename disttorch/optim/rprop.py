"""Rprop (Riedmiller & Braun): per-element step sizes grown or shrunk by the sign agreement of successive
gradients; the gradient's magnitude is never used."""
from ..core.backend import get_array_module
from ..core.tensor import Tensor
from .optimizer import Optimizer, _check_differentiable, _check_lr


class Rprop(Optimizer):
    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
                 maximize=False, differentiable=False):
        _check_lr(lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        _check_differentiable(differentiable)
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _init_state(self, param, group):
        xp = get_array_module(param._data)
        state = self._fresh_state(param, ("prev",))
        state["step_size"] = Tensor._wrap(xp.full_like(param._data, group["lr"]))
        return state

    def _update(self, param, grad, group):
        data = param._data
        xp = get_array_module(data)
        state = self.state[param] or self._init_state(param, group)
        eta_minus, eta_plus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        state["step"]._data += 1
        if group["maximize"]:
            grad = -grad

        prev, step_size = state["prev"]._data, state["step_size"]._data
        agreement = xp.sign(grad * prev)
        factor = xp.where(agreement > 0, eta_plus, xp.where(agreement < 0, eta_minus, 1.0))
        step_size *= factor.astype(data.dtype, copy=False)
        xp.clip(step_size, step_size_min, step_size_max, out=step_size)
        # After a sign change the step is skipped and the gradient forgotten, so the next step neither grows
        # nor shrinks the step size again.
        grad = xp.where(agreement < 0, 0.0, grad).astype(data.dtype, copy=False)
        data -= xp.sign(grad) * step_size
        prev[...] = grad
