"""torch.cpu: the CPU as a device module, mirroring torch.cuda's queries."""


def is_available():
    return True


def device_count():
    return 1


def current_device():
    return "cpu"


def set_device(device):
    """Accepted for symmetry with torch.cuda: there is one CPU device."""


def synchronize(device=None):
    """CPU work is synchronous; nothing to wait for."""


def __getattr__(name):
    if name == "amp":
        import importlib
        return importlib.import_module(f"{__name__}.amp")
    raise AttributeError(f"module 'disttorch.cpu' has no attribute '{name}'")
