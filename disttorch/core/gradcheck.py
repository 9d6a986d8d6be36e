"""Finite-difference gradient checking (central differences, float64)."""
import numpy as np

from .grad_mode import no_grad
from .tensor import Tensor


def numerical_grads(func, inputs, eps=1e-6):
    """d(sum(func(*inputs) * probe))/d(input) for each input requiring grad, by central differences."""
    with no_grad():
        probe = np.random.default_rng(0).standard_normal(_output(func, inputs)._data.shape)
    grads = []
    for t in inputs:
        if not (isinstance(t, Tensor) and t.requires_grad):
            grads.append(None)
            continue
        flat = t._data.reshape(-1)
        g = np.zeros(flat.shape, dtype=np.float64)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            with no_grad():
                hi = float((_output(func, inputs)._data * probe).sum())
            flat[i] = orig - eps
            with no_grad():
                lo = float((_output(func, inputs)._data * probe).sum())
            flat[i] = orig
            g[i] = (hi - lo) / (2 * eps)
        grads.append(g.reshape(t._data.shape))
    return probe, grads


def _output(func, inputs):
    out = func(*inputs)
    return out[0] if isinstance(out, (tuple, list)) else out


def gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    for t in inputs:
        if isinstance(t, Tensor) and t.requires_grad and t._data.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 inputs for accurate differences; got {t.dtype}")
    probe, expected = numerical_grads(func, inputs, eps)
    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    out = _output(func, inputs)
    out.backward(Tensor._wrap(probe.astype(out._data.dtype)))
    for i, (t, num) in enumerate(zip(inputs, expected)):
        if num is None:
            continue
        analytic = np.zeros_like(num) if t.grad is None else t.grad._data
        if not np.allclose(analytic, num, atol=atol, rtol=rtol):
            if raise_exception:
                worst = np.abs(analytic - num).max()
                raise RuntimeError(
                    f"Jacobian mismatch for output 0 with respect to input {i}: max abs difference {worst:.3g}\n"
                    f"numerical: {num}\nanalytical: {analytic}")
            return False
    return True
