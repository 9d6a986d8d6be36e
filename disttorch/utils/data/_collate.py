"""default_collate / default_convert with PyTorch's rules.

numpy arrays become tensors, Python floats become float64 tensors, ints int64, bools bool; strings and
bytes stay lists; tuples come back as lists (as in PyTorch); dicts, namedtuples and other sequences keep
their type where they can be rebuilt.
"""
import collections.abc
import copy

import numpy as np

from disttorch.core.backend import get_array_module
from disttorch.core.tensor import Tensor

_COLLATE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                  "found {}")


def _wrap(array):
    return Tensor._wrap(array)


# In a DataLoader worker this is replaced by an allocator that places large batches in shared memory, so
# stacking writes the batch straight where the main process will read it (None: allocate normally).
_stack_output_allocator = None


def set_stack_output_allocator(allocator):
    global _stack_output_allocator
    _stack_output_allocator = allocator


def gather_rows(array, indices):
    """array[indices] along the first axis, into shared memory when running in a worker."""
    xp = get_array_module(array)
    indices = xp.asarray(indices, dtype=np.int64)
    out = None
    if _stack_output_allocator is not None and xp is np:
        out = _stack_output_allocator((len(indices),) + array.shape[1:], array.dtype)
    return xp.take(array, indices, axis=0) if out is None else np.take(array, indices, axis=0, out=out)


def _stack_numpy(arrays):
    if _stack_output_allocator is None:
        return np.stack(arrays, 0)
    first = np.asarray(arrays[0])
    out = _stack_output_allocator((len(arrays),) + first.shape, first.dtype)
    return np.stack(arrays, 0, out=out) if out is not None else np.stack(arrays, 0)


def _is_numpy_value(elem):
    # numpy's own string scalars are excluded, as PyTorch does: they collate as strings would not
    return type(elem).__module__ == "numpy" and type(elem).__name__ not in ("str_", "bytes_", "string_")


def _check_numeric_numpy(array):
    if array.dtype.kind in "OUSV":
        raise TypeError(_COLLATE_ERROR.format(array.dtype))


def _check_equal_shapes(batch):
    first_shape = tuple(batch[0].shape)
    for index, item in enumerate(batch):
        if tuple(item.shape) != first_shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(first_shape)} at entry 0 and "
                f"{list(item.shape)} at entry {index}")


def _stack_tensors(batch):
    _check_equal_shapes(batch)
    if any(tensor.requires_grad for tensor in batch):
        import disttorch
        return disttorch.stack(batch, 0)
    arrays = [tensor._data for tensor in batch]
    xp = get_array_module(arrays[0])
    return _wrap(_stack_numpy(arrays) if xp is np else xp.stack(arrays, 0))


def _collate_sequence(batch, elem):
    size = len(elem)
    if any(len(item) != size for item in batch):
        raise RuntimeError("each element in list of batch should be of equal size")
    transposed = list(zip(*batch))
    collated = [default_collate(samples) for samples in transposed]
    if isinstance(elem, tuple):
        return collated
    if isinstance(elem, collections.abc.MutableSequence):
        try:
            clone = copy.copy(elem)
            for index, value in enumerate(collated):
                clone[index] = value
            return clone
        except TypeError:
            return collated
    try:
        return type(elem)(collated)
    except TypeError:
        return collated


def _collate_mapping(batch, elem):
    collated = {key: default_collate([item[key] for item in batch]) for key in elem}
    if isinstance(elem, collections.abc.MutableMapping):
        try:
            clone = copy.copy(elem)
            clone.update(collated)
            return clone
        except TypeError:
            return collated
    try:
        return type(elem)(collated)
    except TypeError:
        return collated


def default_collate(batch):
    """Merge a list of samples into a batch, stacking along a new first dimension."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        _check_numeric_numpy(elem)
        _check_equal_shapes(batch)
        return _wrap(_stack_numpy(batch))
    if _is_numpy_value(elem) and isinstance(elem, np.generic):
        return _wrap(np.asarray(batch))
    if isinstance(elem, bool):
        return _wrap(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return _wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return _wrap(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _collate_mapping(batch, elem)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        return _collate_sequence(batch, elem)
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data):
    """Turn numpy arrays (also inside containers) into tensors; used when automatic batching is off."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "OUSV":
            return data
        return _wrap(data)
    if _is_numpy_value(data) and isinstance(data, np.generic):
        return _wrap(np.asarray(data))
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(value) for key, value in data.items()}
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, tuple):
        return [default_convert(value) for value in data]
    if isinstance(data, collections.abc.Sequence):
        converted = [default_convert(value) for value in data]
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    return data
