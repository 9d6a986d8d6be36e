"""torch.finfo / torch.iinfo: the limits of a dtype, read from numpy (and ml_dtypes for bfloat16)."""
import numpy as np

from . import dtype as dt


class finfo:
    def __init__(self, type=None):
        d = dt.get_default_dtype() if type is None else type
        if not isinstance(d, dt.dtype) or not d.is_floating_point:
            raise TypeError(f"torch.finfo() requires a floating point input type, got {d}")
        info = _numpy_finfo(d.numpy)
        self.dtype = d.name
        self.bits = d.itemsize * 8
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.tiny = self.smallest_normal = float(info.tiny)
        self.resolution = float(info.resolution)

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.tiny:g}, tiny={self.tiny:g}, dtype={self.dtype})")


def _numpy_finfo(np_dtype):
    import ml_dtypes
    return ml_dtypes.finfo(np_dtype) if np_dtype == ml_dtypes.bfloat16 else np.finfo(np_dtype)


class iinfo:
    def __init__(self, type):
        if not isinstance(type, dt.dtype) or type.is_floating_point:
            raise TypeError(f"torch.iinfo() requires an integer input type, got {type}")
        info = np.iinfo(type.numpy) if type is not dt.bool_ else None
        self.dtype = type.name
        self.bits = type.itemsize * 8
        self.min = 0 if info is None else int(info.min)
        self.max = 1 if info is None else int(info.max)

    def __repr__(self):
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"
