"""torch.autocast: a context manager and decorator that runs matmul/linear/conv/attention in a lower
precision dtype (bfloat16 on the CPU by default) and the losses in float32; see core/autocast_state.py
for how the CPU computes bfloat16 results."""
import functools
import warnings

from ..core import autocast_state as _state
from ..core import backend as _backend
from ..core import dtype as dt

_DEVICE_TYPES = ("cpu", "cuda")
_CPU_DTYPES = (dt.bfloat16, dt.float16)


def is_autocast_available(device_type):
    return device_type in _DEVICE_TYPES


def get_autocast_dtype(device_type):
    return _state._state[device_type][1]


def is_autocast_enabled(device_type=None):
    """With no device type, torch's legacy meaning: autocast on for CUDA."""
    return _state._state["cuda" if device_type is None else device_type][0]


class autocast:
    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
        self.device = device_type
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else dtype
        self._enabled = bool(enabled)
        self._cache_enabled = cache_enabled
        if self._enabled and device_type == "cuda" and not _backend.cuda_available():
            warnings.warn("CUDA is not available or torch_xla is imported. Disabling autocast.", UserWarning,
                          stacklevel=2)
            self._enabled = False
        if self._enabled and device_type == "cpu" and self.fast_dtype not in _CPU_DTYPES:
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                          "CPU Autocast only supports dtypes of torch.bfloat16, torch.float16 currently.",
                          UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled and device_type == "cuda" and self.fast_dtype is dt.bfloat16:
            raise RuntimeError("Current CUDA Device does not support bfloat16. Please switch dtype to float16.")

    def __enter__(self):
        self._previous = list(_state._state[self.device])
        _state._state[self.device] = [self._enabled, self.fast_dtype]
        _state.refresh()
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        _state._state[self.device] = self._previous
        _state.refresh()
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def run(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return func(*args, **kwargs)
        return run


def custom_fwd(fwd=None, *, device_type, cast_inputs=None):
    """Decorator for a custom Function's forward: with cast_inputs, runs it with autocast off and its
    floating inputs cast to that dtype (torch's semantics); otherwise unchanged."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def run(*args, **kwargs):
        if cast_inputs is None or not is_autocast_enabled(device_type):
            return fwd(*args, **kwargs)
        from ..core.tensor import Tensor
        cast = [a.to(cast_inputs) if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
        with autocast(device_type, enabled=False):
            return fwd(*cast, **kwargs)
    return run


def custom_bwd(bwd=None, *, device_type):
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    return bwd
