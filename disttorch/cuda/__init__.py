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


def is_initialized():
    return is_available()


def is_bf16_supported(including_emulation=True):
    """cupy has no bfloat16 arrays, so autocast to bfloat16 never runs on the GPU here."""
    return False


def get_device_capability(device=None):
    _require_gpu("get_device_capability")
    props = _backend.cupy_module().cuda.runtime.getDeviceProperties(_index(device))
    return props["major"], props["minor"]


def get_device_properties(device=None):
    _require_gpu("get_device_properties")
    return _backend.cupy_module().cuda.runtime.getDeviceProperties(_index(device))


def _index(device):
    if device is None:
        return _current[0]
    return device if isinstance(device, int) else (getattr(device, "index", None) or 0)


def _pool():
    return _backend.cupy_module().get_default_memory_pool() if is_available() else None


def memory_allocated(device=None):
    """Bytes held by live cupy arrays (0 without a GPU, as torch answers on a CPU-only build)."""
    pool = _pool()
    return 0 if pool is None else pool.used_bytes()


def memory_reserved(device=None):
    pool = _pool()
    return 0 if pool is None else pool.total_bytes()


def max_memory_allocated(device=None):
    """cupy's pool keeps no high-water mark; what it holds now bounds what was used."""
    return memory_reserved(device)


max_memory_reserved = max_memory_allocated


def reset_peak_memory_stats(device=None):
    """Nothing to reset: see max_memory_allocated."""


def empty_cache():
    pool = _pool()
    if pool is not None:
        pool.free_all_blocks()


def __getattr__(name):
    if name == "amp":
        import importlib
        return importlib.import_module(f"{__name__}.amp")
    raise AttributeError(f"module 'disttorch.cuda' has no attribute '{name}'")
