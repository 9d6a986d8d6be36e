"""Flatten parameters into one vector and back."""
from ...core.ops import shape as sh
from ...core.tensor import Tensor


def _check_same_device(param, device):
    if device is not None and param.device != device:
        raise TypeError(f"Found two parameters on different devices, this is currently not supported: {device} and "
                        f"{param.device}")
    return param.device


def parameters_to_vector(parameters):
    """One 1-D tensor holding all parameters, in order (differentiable, like torch.cat of views)."""
    device = None
    pieces = []
    for param in parameters:
        device = _check_same_device(param, device)
        pieces.append(sh.reshape(param, -1))
    return sh.cat(pieces)


def vector_to_parameters(vec, parameters):
    """Point each parameter's data at its slice of vec (the inverse of parameters_to_vector)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    device = None
    offset = 0
    for param in parameters:
        device = _check_same_device(param, device)
        count = param.numel()
        param._data = vec._data[offset:offset + count].reshape(param._data.shape)
        param._vc[0] += 1
        offset += count
