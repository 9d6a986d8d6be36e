"""The autocast state ops consult: which devices autocast is on for, and to which dtype.

Ops that torch runs in lower precision under autocast (matmul, linear, convolutions, attention) are
wrapped with `lower_precision`; ops torch keeps in float32 (the losses) with `full_precision`. On the
CPU the lower-precision dtype is ml_dtypes' bfloat16, whose numpy arithmetic is slow, so the wrapped op
takes its inputs rounded to bfloat16, computes in float32 and rounds the output to bfloat16: the values
torch gets from its bfloat16 kernels, which also accumulate in float32.
"""
import functools

from . import dtype as dt

# device type -> [enabled, dtype]
_state = {"cpu": [False, dt.bfloat16], "cuda": [False, dt.float16]}
# True while any device has autocast on and no wrapped op is running (inner ops see plain inputs).
_active = [False]


def refresh():
    _active[0] = any(enabled for enabled, _ in _state.values())


def _device_type(args):
    Tensor = _tensor_class()
    for a in args:
        if isinstance(a, Tensor):
            return a.device.type
    return None


def _tensor_class():
    from .tensor import Tensor
    return Tensor


def _castable(a):
    """Floating tensors below float64: torch's autocast leaves float64 alone."""
    return isinstance(a, _tensor_class()) and a.dtype.is_floating_point and a.dtype is not dt.float64


def _cast_args(args, kwargs, convert):
    def one(a):
        return convert(a) if _castable(a) else a
    return [one(a) for a in args], {k: one(v) for k, v in kwargs.items()}


def lower_precision(fn):
    @functools.wraps(fn)
    def op(*args, **kwargs):
        if not _active[0]:
            return fn(*args, **kwargs)
        device = _device_type(args)
        enabled, target = _state.get(device, (False, None))
        if not enabled or not any(_castable(a) for a in args):
            return fn(*args, **kwargs)
        compute = dt.float32 if target is dt.bfloat16 else target

        def convert(t):
            rounded = t if t.dtype is target else t.to(target)
            return rounded if compute is target else rounded.to(compute)

        args, kwargs = _cast_args(args, kwargs, convert)
        _active[0] = False
        try:
            out = fn(*args, **kwargs)
        finally:
            refresh()
        return out.to(target)
    return op


def full_precision(fn):
    @functools.wraps(fn)
    def op(*args, **kwargs):
        if not _active[0] or not _state.get(_device_type(args), (False,))[0]:
            return fn(*args, **kwargs)
        args, kwargs = _cast_args(args, kwargs, lambda t: t if t.dtype is dt.float32 else t.to(dt.float32))
        return fn(*args, **kwargs)
    return op
