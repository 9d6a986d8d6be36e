"""torch.autograd: backward, grad, and user-defined Functions that work on Tensors."""
import numpy as np

from ..core import autograd as _engine
from ..core import grad_mode
from ..core.grad_mode import enable_grad, inference_mode, no_grad, set_grad_enabled  # noqa: F401
from ..core.tensor import Tensor

__all__ = ["backward", "grad", "Function", "no_grad", "enable_grad", "set_grad_enabled", "gradcheck"]


def _as_list(x):
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _root_grads(outputs, grad_outputs):
    grads = _as_list(grad_outputs) or [None] * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got {len(grads)} gradients "
                           f"for {len(outputs)} outputs")
    arrays = []
    for out, g in zip(outputs, grads):
        if not out.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if out._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            arrays.append(_ones_like(out._data))
        else:
            g = g._data if isinstance(g, Tensor) else np.asarray(g, dtype=out._data.dtype)
            if g.shape != out._data.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[0] has a shape of {list(g.shape)} and output[0] has a shape "
                    f"of {list(out._data.shape)}.")
            arrays.append(g)
    return arrays


def _ones_like(arr):
    from ..core.backend import get_array_module
    return get_array_module(arr).ones_like(arr)


def _node(t):
    return t.grad_fn if t.grad_fn is not None else t._accumulator()


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported by disttorch yet")
    outputs = _as_list(tensors)
    roots = _root_grads(outputs, grad_tensors)
    retain = bool(retain_graph)
    if inputs is not None:
        inputs = _as_list(inputs)
        found = grad(outputs, inputs, [Tensor._wrap(a) for a in roots], retain_graph=retain, allow_unused=True)
        for t, g in zip(inputs, found):
            if g is not None:
                t._accumulator().accumulate(g._data.copy())
        return
    _engine.run_backward([_node(o) for o in outputs], roots, retain)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not supported by disttorch yet")
    outputs = _as_list(outputs)
    inputs_list = _as_list(inputs)
    for i, t in enumerate(inputs_list):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
    roots = _root_grads(outputs, grad_outputs)
    capture = {_node(t): None for t in inputs_list}
    _engine.run_backward([_node(o) for o in outputs], roots, bool(retain_graph), capture=capture)
    results = []
    for i, t in enumerate(inputs_list):
        g = capture[_node(t)]
        if g is None:
            if materialize_grads:
                results.append(Tensor._wrap(np.zeros_like(t._data)))
                continue
            if not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {i}) appears to not have been used in the graph. "
                    "Set allow_unused=True if this is the desired behavior.")
            results.append(None)
        else:
            results.append(Tensor._wrap(g))
    return tuple(results)


class Function(_engine.Function):
    """PyTorch-style custom op: forward and backward receive and return Tensors."""

    def name(self):
        return type(self).__name__ + "Backward"

    @classmethod
    def apply(cls, *args):
        ctx = cls._blank()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        with no_grad():
            out = cls.forward(ctx, *args)
        if not (grad_mode.is_grad_enabled() and any(ctx.needs_input_grad)):
            return out
        if isinstance(out, tuple):
            raise NotImplementedError("custom Functions with several outputs are not supported yet")
        return ctx._finish(args, out._data, True)

    def save_for_backward(self, *tensors):
        self._saved = tensors

    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(_engine._FREED_MESSAGE)
        return self._saved

    def _run(self, grad, retain_graph):
        if self._freed:
            raise RuntimeError(_engine._FREED_MESSAGE)
        grads = type(self).backward(self, Tensor._wrap(grad))
        if not isinstance(grads, tuple):
            grads = (grads,)
        if not retain_graph and self._saved:
            self._saved = ()
            self._freed = True
        return tuple(g._data if isinstance(g, Tensor) else g for g in grads)


def gradcheck(func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    from ..core.gradcheck import gradcheck as _check
    return _check(func, inputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)


_anomaly = {"enabled": False, "check_nan": True}


class detect_anomaly:
    """Accepted so debugging code runs; disttorch records the switch but keeps no forward stack traces per
    node, so an error in backward is reported as usual (its own traceback names the failing op)."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan

    def __enter__(self):
        self._previous = dict(_anomaly)
        _anomaly.update(enabled=True, check_nan=self.check_nan)
        return self

    def __exit__(self, *exc):
        _anomaly.update(self._previous)
        return False


class set_detect_anomaly(detect_anomaly):
    """Sets the switch on construction (usable as a call or a context manager), as torch does."""

    def __init__(self, mode, check_nan=True):
        super().__init__(check_nan)
        self._previous = dict(_anomaly)
        _anomaly.update(enabled=bool(mode), check_nan=check_nan)

    def __enter__(self):
        return self


def is_anomaly_enabled():
    return _anomaly["enabled"]


def Variable(data, requires_grad=False, volatile=False):
    """The pre-0.4 wrapper: today a Variable is a Tensor, so this returns the tensor (requiring grad if asked)."""
    if requires_grad:
        data.requires_grad_(True)
    return data


def __getattr__(name):
    # torch.autograd.profiler is reachable after a bare `import torch`; loaded on first use.
    if name == "profiler":
        import importlib
        return importlib.import_module(f"{__name__}.profiler")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
