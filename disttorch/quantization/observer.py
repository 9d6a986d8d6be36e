"""Observers: modules that watch tensors during calibration and turn the ranges into (scale, zero_point)."""

import numpy as np

from ..core.tensor import Tensor
from ..nn.modules.module import Module
from . import _kernels
from ._qtypes import per_channel_symmetric, per_tensor_affine, per_tensor_symmetric, qint8, quint8


class _PartialFactory:
    """Observer.with_args(...): a factory that remembers constructor arguments (like functools.partial)."""

    def __init__(self, cls, kwargs):
        self.cls = cls
        self.kwargs = kwargs

    def __call__(self, **overrides):
        return self.cls(**{**self.kwargs, **overrides})

    def with_args(self, **kwargs):
        return _PartialFactory(self.cls, {**self.kwargs, **kwargs})

    def __repr__(self):
        return f"{self.cls.__name__}.with_args({self.kwargs})"

class ObserverBase(Module):
    def __init__(self, dtype=quint8, qscheme=per_tensor_affine, quant_min=None, quant_max=None):
        super().__init__()
        if dtype not in (qint8, quint8):
            raise ValueError(f"observer dtype must be disttorch.quantization.qint8 or quint8, got {dtype}")
        self.dtype = dtype
        self.qscheme = qscheme
        self.quant_min = dtype.qmin if quant_min is None else quant_min
        self.quant_max = dtype.qmax if quant_max is None else quant_max

    @classmethod
    def with_args(cls, **kwargs):
        return _PartialFactory(cls, kwargs)

    def forward(self, x):
        self.observe(x._data if isinstance(x, Tensor) else np.asarray(x))
        return x

    def _qparams(self, min_val, max_val):
        symmetric = self.qscheme in (per_tensor_symmetric, per_channel_symmetric)
        return _kernels.affine_qparams(min_val, max_val, self.quant_min, self.quant_max, symmetric)

class MinMaxObserver(ObserverBase):
    """Tracks the running min and max of everything observed."""

    def __init__(self, dtype=quint8, qscheme=per_tensor_affine, quant_min=None, quant_max=None):
        super().__init__(dtype, qscheme, quant_min, quant_max)
        self.min_val = float("inf")
        self.max_val = float("-inf")

    def observe(self, x):
        if x.size:
            self.min_val = min(self.min_val, float(x.min()))
            self.max_val = max(self.max_val, float(x.max()))

    def calculate_qparams(self):
        if self.min_val > self.max_val:
            raise RuntimeError(f"{type(self).__name__} has observed no data; run calibration batches through the "
                               "prepared model before convert()")
        return self._qparams(self.min_val, self.max_val)

class MovingAverageMinMaxObserver(MinMaxObserver):
    """Exponential moving average of per-batch min/max: robust to a rare outlier batch."""

    def __init__(self, averaging_constant=0.01, dtype=quint8, qscheme=per_tensor_affine, quant_min=None,
                 quant_max=None):
        super().__init__(dtype, qscheme, quant_min, quant_max)
        self.averaging_constant = averaging_constant

    def observe(self, x):
        if not x.size:
            return
        low, high = float(x.min()), float(x.max())
        if self.min_val > self.max_val:
            self.min_val, self.max_val = low, high
            return
        c = self.averaging_constant
        self.min_val += c * (low - self.min_val)
        self.max_val += c * (high - self.max_val)

class HistogramObserver(MinMaxObserver):
    """Keeps |x| samples' histogram and clips the range at a high percentile, trading rare outliers for
    finer steps on the bulk of the values."""

    def __init__(self, bins=2048, percentile=99.99, dtype=quint8, qscheme=per_tensor_affine, quant_min=None,
                 quant_max=None):
        super().__init__(dtype, qscheme, quant_min, quant_max)
        self.bins = bins
        self.percentile = percentile
        self._samples = []

    def observe(self, x):
        super().observe(x)
        if x.size:
            flat = x.reshape(-1)
            step = max(1, flat.size // 65536)
            self._samples.append(np.asarray(flat[::step], dtype=np.float32))

    def calculate_qparams(self):
        super().calculate_qparams()
        values = np.concatenate(self._samples)
        tail = (100.0 - self.percentile) / 2
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return self._qparams(max(low, self.min_val), min(high, self.max_val))

class PerChannelMinMaxObserver(ObserverBase):
    """Min/max per slice along ch_axis (weights: one scale per output channel)."""

    def __init__(self, ch_axis=0, dtype=qint8, qscheme=per_channel_symmetric, quant_min=None, quant_max=None):
        super().__init__(dtype, qscheme, quant_min, quant_max)
        self.ch_axis = ch_axis
        self.min_val = None
        self.max_val = None

    def observe(self, x):
        axes = tuple(i for i in range(x.ndim) if i != self.ch_axis)
        low, high = x.min(axis=axes), x.max(axis=axes)
        self.min_val = low if self.min_val is None else np.minimum(self.min_val, low)
        self.max_val = high if self.max_val is None else np.maximum(self.max_val, high)

    def calculate_qparams(self):
        if self.min_val is None:
            raise RuntimeError("PerChannelMinMaxObserver has observed no data")
        pairs = [self._qparams(lo, hi) for lo, hi in zip(self.min_val, self.max_val)]
        return (np.array([s for s, _ in pairs], np.float32), np.array([z for _, z in pairs], np.int64))

default_observer = MinMaxObserver.with_args(dtype=quint8)
default_histogram_observer = HistogramObserver.with_args(dtype=quint8)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(dtype=qint8,
                                                                         qscheme=per_channel_symmetric)
