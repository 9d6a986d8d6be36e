"""Array backends: numpy for 'cpu', cupy for 'cuda'. The only module that imports cupy."""
import numpy

try:  # cupy is optional; without it (or without a GPU) only the CPU backend exists
    import cupy as _cupy
    try:
        _CUDA_DEVICES = _cupy.cuda.runtime.getDeviceCount()
    except Exception:
        _CUDA_DEVICES = 0
except Exception:
    _cupy = None
    _CUDA_DEVICES = 0


def cuda_available():
    return _cupy is not None and _CUDA_DEVICES > 0


def cuda_device_count():
    return _CUDA_DEVICES if _cupy is not None else 0


def cupy_module():
    if not cuda_available():
        raise RuntimeError(
            "CUDA is not available: disttorch needs cupy and a visible GPU for 'cuda' tensors. "
            "Install the extra with `pip install disttorch[cuda]` on a GPU machine, or keep tensors on 'cpu'."
        )
    return _cupy


def get_array_module(array):
    """numpy or cupy, whichever owns `array` (the chainer idiom: one body serves both)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return numpy


def is_cuda_array(array):
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def to_device_array(array, device):
    """Copy `array` onto `device` (a disttorch.device); returns the same object when already there."""
    if device.type == "cpu":
        if is_cuda_array(array):
            return array.get()
        return array
    cp = cupy_module()
    index = device.index or 0
    if isinstance(array, cp.ndarray) and array.device.id == index:
        return array
    with cp.cuda.Device(index):
        return cp.asarray(array)


def array_device_index(array):
    return array.device.id if is_cuda_array(array) else None
