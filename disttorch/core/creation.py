"""Tensor factories with PyTorch's signatures and default dtypes."""
import numbers

import numpy as np

from . import dtype as dt
from . import random
from .backend import to_device_array
from .device import factory_device
from .tensor import Tensor


def _finish(arr, dtype, device, requires_grad):
    if dtype is not None:
        arr = arr.astype(dt.to_numpy(dtype), copy=False)
    target = factory_device(device)
    if target.type != "cpu" or device is not None:
        arr = to_device_array(arr, target)
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_numpy_dtype(data):
    """PyTorch's inference: bools -> bool, ints -> int64, any float -> the default float dtype."""
    if isinstance(data, bool):
        return np.bool_
    if isinstance(data, numbers.Integral):
        return np.int64
    if isinstance(data, numbers.Real):
        return dt.get_default_dtype().numpy
    return None


def _from_data(data, copy):
    if isinstance(data, Tensor):
        return data._data.copy() if copy else data._data
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        return data.copy() if copy else data
    if isinstance(data, np.generic):
        return np.array(data)  # a numpy scalar keeps its own dtype, as in PyTorch
    if isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in _flatten(data)):
        data = _nested_to_lists(data)
    arr = np.array(data)
    if arr.dtype == object:
        raise TypeError(f"could not build a tensor from {type(data).__name__}: ragged or unsupported nested data")
    if arr.dtype.kind == "f":
        arr = arr.astype(dt.get_default_dtype().numpy)
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        arr = arr.astype(np.int64)
    elif arr.dtype.kind in "US":
        raise TypeError(f"new(): invalid data type '{arr.dtype.kind == 'U' and 'str'}'")
    return arr


def _flatten(data):
    for d in data:
        if isinstance(d, (list, tuple)):
            yield from _flatten(d)
        else:
            yield d


def _nested_to_lists(data):
    if isinstance(data, Tensor):
        return data.tolist()
    if isinstance(data, (list, tuple)):
        return [_nested_to_lists(d) for d in data]
    return data


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    return _finish(_from_data(data, copy=True), dtype, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    arr = _from_data(data, copy=False)
    return _finish(arr, dtype, device, False)


def from_numpy(array):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dt.from_numpy(array.dtype)
    return Tensor._wrap(array)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)):
            raise TypeError(f"size must be a tuple of ints, but got an element of type {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(size)}")
    return tuple(int(s) for s in size)


def _float_dtype(dtype):
    return dt.to_numpy(dtype) if dtype is not None else dt.get_default_dtype().numpy


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None):
    return _finish(np.zeros(_size(size), dtype=_float_dtype(dtype)), None, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None):
    return _finish(np.ones(_size(size), dtype=_float_dtype(dtype)), None, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _finish(np.empty(_size(size), dtype=_float_dtype(dtype)), None, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = dt.scalar_dtype(fill_value.item() if isinstance(fill_value, Tensor) else fill_value)
    return _finish(np.full(_size((size,)), fill_value, dtype=dt.to_numpy(dtype)), None, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _finish(np.eye(n, m, dtype=_float_dtype(dtype)), None, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = dt.int64 if is_int else dt.get_default_dtype()
    return _finish(np.arange(start, end, step, dtype=np.float64).astype(dt.to_numpy(dtype)), None, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _finish(np.linspace(start, end, steps).astype(_float_dtype(dtype)), None, device, requires_grad)


def logspace(start, end, steps, base=10.0, dtype=None, device=None, requires_grad=False):
    return _finish((base ** np.linspace(start, end, steps)).astype(_float_dtype(dtype)), None, device, requires_grad)


def _triangle_indices(row, col, offset, lower, dtype, device):
    rows, cols = (np.tril_indices if lower else np.triu_indices)(row, offset, col)
    return _finish(np.stack([rows, cols]).astype(np.int64), dtype, device, False)


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _triangle_indices(row, col, offset, True, dtype, device)


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _triangle_indices(row, col, offset, False, dtype, device)


def _like(fn, input, dtype, device, requires_grad, *extra):
    return fn(*extra, dtype=dtype or input.dtype, device=device or input.device, requires_grad=requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _like(zeros, input, dtype, device, requires_grad, input.shape)


def ones_like(input, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _like(ones, input, dtype, device, requires_grad, input.shape)


def empty_like(input, dtype=None, device=None, requires_grad=False, memory_format=None):
    return _like(empty, input, dtype, device, requires_grad, input.shape)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False, memory_format=None):
    return full(input.shape, fill_value, dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    arr = random.rng(generator).random(_size(size), dtype=np.float64)
    return _finish(arr.astype(_float_dtype(dtype)), None, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    arr = random.rng(generator).standard_normal(_size(size))
    return _finish(arr.astype(_float_dtype(dtype)), None, device, requires_grad)


def randint(low=0, high=None, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """torch's two forms: randint(high, size) and randint(low, high, size); low defaults to 0."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    arr = random.rng(generator).integers(low, high, size=_size((size,)), dtype=np.int64)
    return _finish(arr, dtype, device, requires_grad)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False):
    arr = random.rng(generator).permutation(n).astype(np.int64)
    return _finish(arr, dtype, device, requires_grad)


def rand_like(input, dtype=None, device=None, requires_grad=False, memory_format=None):
    return rand(input.shape, dtype=dtype or input.dtype, device=device or input.device, requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False, memory_format=None):
    return randn(input.shape, dtype=dtype or input.dtype, device=device or input.device, requires_grad=requires_grad)


def randint_like(input, low=0, high=None, dtype=None, device=None, requires_grad=False, memory_format=None):
    return randint(low, high, input.shape, dtype=dtype or input.dtype, device=device or input.device)


def normal(mean, std, size=None, generator=None):
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        m = mean._data if isinstance(mean, Tensor) else mean
        s = std._data if isinstance(std, Tensor) else std
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        dtype = (mean if isinstance(mean, Tensor) else std)._data.dtype
        return Tensor._wrap(random.rng(generator).normal(m, s, size=shape).astype(dtype))
    return Tensor._wrap(random.rng(generator).normal(mean, std, size=_size((size,))).astype(dt.get_default_dtype().numpy))


def bernoulli(input, p=None, generator=None):
    probs = input._data if p is None else np.full(input.shape, p)
    return Tensor._wrap((random.rng(generator).random(input.shape) < probs).astype(input._data.dtype))


def multinomial(input, num_samples, replacement=False, generator=None):
    probs = np.asarray(input._data, dtype=np.float64)
    single = probs.ndim == 1
    probs = probs.reshape(-1, probs.shape[-1])
    g = random.rng(generator)
    rows = []
    for row in probs:
        if not replacement and num_samples > np.count_nonzero(row):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        rows.append(g.choice(len(row), size=num_samples, replace=replacement, p=row / row.sum()))
    out = np.asarray(rows, dtype=np.int64)
    return Tensor._wrap(out[0] if single else out)
