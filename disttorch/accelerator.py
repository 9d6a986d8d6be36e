"""torch.accelerator: the device-generic view of the GPU, which for disttorch is CUDA through cupy."""
from . import cuda as _cuda
from .core.device import device as _device


def is_available():
    return _cuda.is_available()


def current_accelerator(check_available=False):
    """device('cuda') when a GPU is usable; None otherwise (as torch answers on a CPU-only machine)."""
    if _cuda.is_available():
        return _device("cuda")
    return None


def device_count():
    return _cuda.device_count()


def _require():
    if not is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")


def current_device_index():
    _require()
    return _cuda.current_device()


current_device_idx = current_device_index


def set_device_index(device):
    _require()
    _cuda.set_device(device)


set_device_idx = set_device_index


def synchronize(device=None):
    _require()
    _cuda.synchronize(device)


class device_index:
    """Context manager that makes `device` the current accelerator inside the block (None: no change)."""

    def __init__(self, device):
        self.device = device
        self._previous = None

    def __enter__(self):
        if self.device is not None:
            self._previous = current_device_index()
            set_device_index(self.device)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            set_device_index(self._previous)
        return False
