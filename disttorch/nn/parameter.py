"""Parameter: a Tensor that a Module registers as learnable; Buffer: a Tensor it registers as state."""
import copy

from ..core.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default; assigning one to a Module attribute registers it."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            import numpy as np
            array = np.empty(0, dtype=np.float32)
        elif isinstance(data, Tensor):
            array = data._data
        else:
            raise TypeError(f"Parameter expects a Tensor as data, got {type(data).__name__}")
        param = Tensor.__new__(cls)
        param._init(array)
        if requires_grad:
            param.requires_grad_(True)
        return param

    def __init__(self, data=None, requires_grad=True):
        """All state is set in __new__ (Tensor.__init__ would allocate a fresh array)."""

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(Tensor._wrap(self._data.copy()), self.requires_grad)
        if self.grad is not None:
            result.grad = Tensor._wrap(self.grad._data.copy())
        result.__dict__.update(copy.deepcopy(self.__dict__, memo))
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol):
        return _rebuild_parameter, (Tensor._wrap(self._data), self.requires_grad)


def _rebuild_parameter(data, requires_grad):
    return Parameter(data, requires_grad)


class _BufferMeta(type):
    # A Buffer is an ordinary Tensor carrying a mark, so isinstance checks look at the mark.
    def __instancecheck__(cls, instance):
        return isinstance(instance, Tensor) and getattr(instance, "_is_buffer", False)


class Buffer(metaclass=_BufferMeta):
    """Marks a Tensor so that assigning it to a Module attribute registers it as a buffer."""

    def __new__(cls, data=None, *, persistent=True):
        if data is None:
            import numpy as np
            data = Tensor._wrap(np.empty(0, dtype=np.float32))
        if not isinstance(data, Tensor):
            raise TypeError(f"Buffer expects a Tensor as data, got {type(data).__name__}")
        tensor = data.detach()
        tensor.requires_grad = data.requires_grad
        tensor._is_buffer = True
        tensor.persistent = persistent
        return tensor
