"""Quantized dtype names (torch.qint8 / torch.quint8) and quantization schemes."""
import numpy as np


class QuantizedDType:
    """A quantized element type: integer storage plus the representable range."""

    __slots__ = ("name", "numpy", "qmin", "qmax")

    def __init__(self, name, np_dtype):
        self.name = name
        self.numpy = np.dtype(np_dtype)
        info = np.iinfo(self.numpy)
        self.qmin, self.qmax = int(info.min), int(info.max)

    @property
    def is_floating_point(self):
        return False

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


qint8 = QuantizedDType("qint8", np.int8)
quint8 = QuantizedDType("quint8", np.uint8)
qint32 = QuantizedDType("qint32", np.int32)

per_tensor_affine = "per_tensor_affine"
per_tensor_symmetric = "per_tensor_symmetric"
per_channel_affine = "per_channel_affine"
per_channel_symmetric = "per_channel_symmetric"


def _by_name(name):
    return {"qint8": qint8, "quint8": quint8, "qint32": qint32}[name]
