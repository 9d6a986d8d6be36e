"""torch.cuda: GPU queries and seeding, answered by the cupy backend (False/0 cleanly without one)."""
from ..core import backend as _backend
from ..core import random as _random

_current = [0]


def is_available():
    return _backend.cuda_available()


def device_count():
    return _backend.cuda_device_count()


def _require_gpu(what):
    if not is_available():
        raise RuntimeError(
            f"torch.cuda.{what}() needs a GPU, but CUDA is not available (no cupy or no visible GPU). "
            "Check torch.cuda.is_available() first, or keep tensors on 'cpu'.")


def current_device():
    _require_gpu("current_device")
    return _current[0]


def set_device(device):
    _require_gpu("set_device")
    index = device if isinstance(device, int) else (getattr(device, "index", None) or 0)
    if not 0 <= index < device_count():
        raise RuntimeError(f"Invalid device index {index}: only {device_count()} CUDA device(s) are visible")
    _backend.cupy_module().cuda.Device(index).use()
    _current[0] = index


def synchronize(device=None):
    if is_available():
        _backend.cupy_module().cuda.Device().synchronize()


def manual_seed(seed):
    """GPU tensors draw from the global generator, so seeding it covers both devices."""
    _random.manual_seed(seed)


def manual_seed_all(seed):
    _random.manual_seed(seed)


def get_device_name(device=None):
    _require_gpu("get_device_name")
    cp = _backend.cupy_module()
    index = device if isinstance(device, int) else _current[0]
    return cp.cuda.runtime.getDeviceProperties(index)["name"].decode()
