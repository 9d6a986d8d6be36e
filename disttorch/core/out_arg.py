"""The `out=` keyword of torch's functions: compute as usual, then write the result into `out`."""
import functools
import warnings

import numpy as np

from . import grad_mode
from .tensor import Tensor


def write_out(out, result, name):
    if isinstance(result, tuple):
        if not isinstance(out, (tuple, list)) or len(out) != len(result):
            raise TypeError(f"{name}(): out= must be a tuple of {len(result)} tensors")
        for o, r in zip(out, result):
            write_out(o, r, name)
        return type(result)(*out) if hasattr(result, "_fields") else tuple(out)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    array = result._data
    if out._data.shape != array.shape:
        if out._data.size:
            warnings.warn(
                f"An output with one or more elements was resized since it had shape {list(out.shape)}, which does "
                f"not match the required output shape {list(array.shape)}. This behavior is deprecated, and in a "
                "future PyTorch release outputs will not be resized unless they have zero elements. You can "
                "explicitly reuse an out tensor t by resizing it, inplace, to zero elements with t.resize_(0).",
                UserWarning, stacklevel=3)
        if not np.can_cast(array.dtype, out._data.dtype, "same_kind"):
            raise RuntimeError(f"result type {result.dtype.name.capitalize()} can't be cast to the desired output "
                               f"type {out.dtype.name.capitalize()}")
        out._data = array.astype(out._data.dtype)
        out._vc[0] += 1
        return out
    out._write(array)
    out._vc[0] += 1
    return out


def with_out(fn):
    name = fn.__name__

    @functools.wraps(fn)
    def op(*args, out=None, **kwargs):
        if out is None:
            return fn(*args, **kwargs)
        result = fn(*args, **kwargs)
        records = result if isinstance(result, tuple) else (result,)
        if grad_mode._enabled[0] and any(r.requires_grad for r in records):
            raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                               "differentiation, but one of the arguments requires grad.")
        return write_out(out, result, name)

    return op
