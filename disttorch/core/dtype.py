"""disttorch dtypes: thin named wrappers over numpy dtypes, with PyTorch's promotion rules.

bfloat16 is ml_dtypes' bfloat16, a real 2-byte numpy dtype. Storing it as float32 rounded to bfloat16
would give the right values but the wrong dtype, itemsize and memory, and a tensor could no longer tell
its dtype from its array; ml_dtypes (already required by onnx) rounds exactly as torch does. numpy
arithmetic on it is slow and its kind is 'V', so code tests `dtype.is_floating_point`, never the kind.
"""
import ml_dtypes
import numpy as np


class dtype:
    __slots__ = ("name", "numpy", "is_floating_point", "is_signed", "itemsize", "_category")

    def __init__(self, name, np_dtype, category):
        self.name = name
        self.numpy = np.dtype(np_dtype)
        self._category = category  # 0 bool, 1 integer, 2 floating
        self.is_floating_point = category == 2
        self.is_signed = category == 2 or self.numpy.kind == "i"
        self.itemsize = self.numpy.itemsize

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))

    def to_real(self):
        return self


bool_ = dtype("bool", np.bool_, 0)
uint8 = dtype("uint8", np.uint8, 1)
int8 = dtype("int8", np.int8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)
bfloat16 = dtype("bfloat16", ml_dtypes.bfloat16, 2)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, float32, float64, bfloat16)
_FROM_NUMPY = {d.numpy: d for d in ALL}
_NAMES = {d.name: d for d in ALL}
_NAMES.update({"float": float32, "double": float64, "half": float16, "long": int64, "int": int32,
               "short": int16})

_default_float = [float32]


def _by_name(name):
    return _NAMES[name]


def get_default_dtype():
    return _default_float[0]


def set_default_dtype(d):
    if not isinstance(d, dtype) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float[0] = d


def from_numpy(np_dtype):
    try:
        return _FROM_NUMPY[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(
            f"can't convert numpy array of type {np.dtype(np_dtype)}: the only supported types are "
            "float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8, and bool."
        ) from None


def to_numpy(d):
    """Accepts a disttorch dtype, a numpy dtype, or a Python type (float/int/bool)."""
    if isinstance(d, dtype):
        return d.numpy
    if d is float:
        return _default_float[0].numpy
    if d is int:
        return np.dtype(np.int64)
    if d is bool:
        return np.dtype(np.bool_)
    return from_numpy(d).numpy


def scalar_dtype(value):
    """The dtype PyTorch gives a tensor made from a Python scalar."""
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int64
    return _default_float[0]


def promote(a, b):
    """Promotion between two dimensioned tensors: higher category wins, else the wider type."""
    if a is b:
        return a
    if a._category != b._category:
        return a if a._category > b._category else b
    if {a, b} == {bfloat16, float16}:
        return float32  # neither holds the other's range and precision, as in torch
    return from_numpy(np.promote_types(a.numpy, b.numpy))


def promote_with_scalar(tensor_dtype, scalar_category):
    """A scalar (or 0-dim tensor) only lifts the category, landing on that category's default type."""
    if scalar_category <= tensor_dtype._category:
        return tensor_dtype
    return _default_float[0] if scalar_category == 2 else int64


def category_of_scalar(value):
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return 1
    return 2
