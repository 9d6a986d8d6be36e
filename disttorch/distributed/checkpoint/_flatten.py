"""Nested state dicts as flat (path, value) pairs: paths are tuples of keys, stored as strings."""
from ...core.tensor import Tensor
from .._shard import ShardedTensor


def flatten(state_dict, path=()):
    for key, value in state_dict.items():
        here = path + (key,)
        if isinstance(value, dict):
            yield from flatten(value, here)
        else:
            yield here, value


def path_name(path):
    return ".".join(map(str, path))


def is_tensor_like(value):
    return isinstance(value, (Tensor, ShardedTensor))


def assign(state_dict, path, value):
    for key in path[:-1]:
        state_dict = state_dict[key]
    state_dict[path[-1]] = value
