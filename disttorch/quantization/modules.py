"""Quantized layers: int8 weights with one scale per output channel, float32 in and out.

Dynamic layers (Linear, LSTM) quantize each activation per tensor at run time; static layers
(Linear, Conv2d) quantize their input with the scale and zero point found during calibration.
Each forward is one op Function, so quantized models can be traced by disttorch.jit; they are for
inference only (backward raises).
"""
import numpy as np

from ..core.autograd import Function
from ..core.tensor import Tensor
from ..nn.functional.conv import Conv2dFunction, _conv_padding
from ..nn.modules.module import Module
from . import _kernels
from ._qtypes import qint8, quint8

_INFERENCE_ONLY = ("quantized modules are for inference only; train the float model (or use fake quantization) "
                   "and quantize it afterwards")


class _InferenceOp(Function):
    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(_INFERENCE_ONLY)


def _as_rows(x):
    return x.reshape(-1, x.shape[-1]), x.shape[:-1]


class DynamicLinearOp(_InferenceOp):
    @staticmethod
    def forward(ctx, x, weight_q, scale, bias):
        rows, lead = _as_rows(x.astype(np.float32, copy=False))
        out = _kernels.dynamic_int8_linear(rows, weight_q, scale, bias)
        return out.reshape(lead + (weight_q.shape[0],))


class StaticLinearOp(_InferenceOp):
    @staticmethod
    def forward(ctx, x, weight_q, scale, bias, in_scale, in_zero_point, qmin, qmax):
        rows, lead = _as_rows(x.astype(np.float32, copy=False))
        rows = _kernels.fake_quantize(rows, in_scale, in_zero_point, qmin, qmax)
        out = _kernels.int8_linear(rows, weight_q, scale, bias)
        return out.reshape(lead + (weight_q.shape[0],))


class StaticConv2dOp(_InferenceOp):
    @staticmethod
    def forward(ctx, x, weight_q, scale, bias, stride, pads, dilation, groups, in_scale, in_zero_point, qmin, qmax):
        x = _kernels.fake_quantize(x.astype(np.float32, copy=False), in_scale, in_zero_point, qmin, qmax)
        weight = weight_q * scale.reshape(-1, 1, 1, 1)
        conv = Conv2dFunction.__new__(Conv2dFunction)
        conv.needs_input_grad = (False,) * 7
        return Conv2dFunction.forward(conv, x, weight, bias, stride, pads, dilation, groups)


def _wrap(array):
    return Tensor._wrap(np.ascontiguousarray(array))


def _bias_of(module):
    bias = getattr(module, "bias", None)
    return None if bias is None or bias is False else _wrap(bias._data.astype(np.float32))


class _QuantizedWeights(Module):
    """Holds weight_int8 / weight_scale / bias as buffers, so state_dict and checkpoints store int8."""

    def _set_weights(self, weight, bias):
        weight_q, scale = _kernels.symmetric_per_channel(weight._data.astype(np.float32), axis=0)
        self.register_buffer("weight_int8", _wrap(weight_q))
        self.register_buffer("weight_scale", _wrap(scale))
        self.register_buffer("bias", bias)

    def weight(self):
        """The dequantized float32 weight (what the int8 weight stands for)."""
        shape = (-1,) + (1,) * (self.weight_int8.dim() - 1)
        return _wrap(self.weight_int8._data * self.weight_scale._data.reshape(shape))


class DynamicQuantizedLinear(_QuantizedWeights):
    def __init__(self, in_features, out_features, weight, bias, dtype=qint8):
        super().__init__()
        self.in_features, self.out_features, self.dtype = in_features, out_features, dtype
        self._set_weights(weight, bias)

    @classmethod
    def from_float(cls, mod):
        return cls(mod.in_features, mod.out_features, mod.weight, _bias_of(mod))

    def forward(self, x):
        return DynamicLinearOp.apply(x, self.weight_int8, self.weight_scale, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.dtype}"


class _StaticInput:
    def _set_input_qparams(self, scale, zero_point, dtype):
        self.input_scale, self.input_zero_point, self.input_dtype = float(scale), int(zero_point), dtype

    def _input_args(self):
        return self.input_scale, self.input_zero_point, self.input_dtype.qmin, self.input_dtype.qmax


class QuantizedLinear(_QuantizedWeights, _StaticInput):
    def __init__(self, in_features, out_features, weight, bias, input_scale, input_zero_point, input_dtype=quint8):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._set_weights(weight, bias)
        self._set_input_qparams(input_scale, input_zero_point, input_dtype)

    @classmethod
    def from_float(cls, mod, input_scale, input_zero_point, input_dtype=quint8):
        return cls(mod.in_features, mod.out_features, mod.weight, _bias_of(mod), input_scale, input_zero_point,
                   input_dtype)

    def forward(self, x):
        return StaticLinearOp.apply(x, self.weight_int8, self.weight_scale, self.bias, *self._input_args())

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"scale={self.input_scale:.4g}, zero_point={self.input_zero_point}")


class QuantizedConv2d(_QuantizedWeights, _StaticInput):
    def __init__(self, conv, input_scale, input_zero_point, input_dtype=quint8):
        super().__init__()
        if getattr(conv, "padding_mode", "zeros") != "zeros":
            raise NotImplementedError(f"quantized Conv2d supports padding_mode='zeros' only, got {conv.padding_mode}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.dilation = tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.dilation)
        self.groups = conv.groups
        self.pads = _conv_padding(conv.padding, self.kernel_size, self.stride, self.dilation)
        self._set_weights(conv.weight, _bias_of(conv))
        self._set_input_qparams(input_scale, input_zero_point, input_dtype)

    @classmethod
    def from_float(cls, mod, input_scale, input_zero_point, input_dtype=quint8):
        return cls(mod, input_scale, input_zero_point, input_dtype)

    def forward(self, x):
        if x.dim() != 4:
            raise RuntimeError(f"quantized Conv2d expects a 4D (N, C, H, W) input, got shape {list(x.shape)}")
        return StaticConv2dOp.apply(x, self.weight_int8, self.weight_scale, self.bias, self.stride, self.pads,
                                    self.dilation, self.groups, *self._input_args())

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"scale={self.input_scale:.4g}, zero_point={self.input_zero_point}")


class DynamicLSTMOp(_InferenceOp):
    """A whole (multi-layer, optionally bidirectional) LSTM over time-major input with int8 weights.

    args: x (T, B, I), h0/c0 (L*D, B, H), then per layer and direction: w_ih_q, w_ih_scale, w_hh_q,
    w_hh_scale, bias (b_ih + b_hh, or None).
    """

    @staticmethod
    def forward(ctx, x, h0, c0, num_layers, directions, *weights):
        hidden = h0.shape[-1]
        h_final, c_final = np.empty_like(h0), np.empty_like(c0)
        layer_input = x.astype(np.float32, copy=False)
        for layer in range(num_layers):
            outputs = []
            for d in range(directions):
                index = layer * directions + d
                w_ih, s_ih, w_hh, s_hh, bias = weights[5 * index:5 * index + 5]
                steps, batch = layer_input.shape[:2]
                # The input projection of every time step is one large product.
                projected = _kernels.dynamic_int8_linear(layer_input.reshape(steps * batch, -1),
                                                         w_ih, s_ih, bias).reshape(steps, batch, 4 * hidden)
                h, c = h0[index], c0[index]
                out = np.empty((steps, batch, hidden), np.float32)
                order = range(steps - 1, -1, -1) if d == 1 else range(steps)
                for t in order:
                    gates = projected[t] + _kernels.dynamic_int8_linear(h, w_hh, s_hh)
                    i, f, g, o = np.split(gates, 4, axis=1)
                    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                    h = _sigmoid(o) * np.tanh(c)
                    out[t] = h
                h_final[index], c_final[index] = h, c
                outputs.append(out)
            layer_input = outputs[0] if directions == 1 else np.concatenate(outputs, axis=2)
        return layer_input, h_final, c_final


def _sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)  # tanh form: no overflow warnings for large |z|


class DynamicQuantizedLSTM(Module):
    def __init__(self, lstm, dtype=qint8):
        super().__init__()
        if getattr(lstm, "proj_size", 0):
            raise NotImplementedError("dynamic quantization of LSTM with proj_size > 0 is not supported")
        self.input_size, self.hidden_size, self.num_layers = lstm.input_size, lstm.hidden_size, lstm.num_layers
        self.batch_first, self.bidirectional, self.dtype = lstm.batch_first, lstm.bidirectional, dtype
        self._names = []
        suffixes = ("", "_reverse") if lstm.bidirectional else ("",)
        for layer in range(lstm.num_layers):
            for suffix in suffixes:
                tag = f"l{layer}{suffix}"
                for kind in ("ih", "hh"):
                    weight = getattr(lstm, f"weight_{kind}_{tag}")._data.astype(np.float32)
                    q, s = _kernels.symmetric_per_channel(weight)
                    self.register_buffer(f"weight_{kind}_{tag}_int8", _wrap(q))
                    self.register_buffer(f"weight_{kind}_{tag}_scale", _wrap(s))
                bias = None
                if lstm.bias:
                    bias = _wrap((getattr(lstm, f"bias_ih_{tag}")._data + getattr(lstm, f"bias_hh_{tag}")._data)
                                 .astype(np.float32))
                self.register_buffer(f"bias_{tag}", bias)
                self._names.append(tag)

    @classmethod
    def from_float(cls, mod):
        return cls(mod)

    def _weights(self):
        out = []
        for tag in self._names:
            out += [getattr(self, f"weight_ih_{tag}_int8"), getattr(self, f"weight_ih_{tag}_scale"),
                    getattr(self, f"weight_hh_{tag}_int8"), getattr(self, f"weight_hh_{tag}_scale"),
                    getattr(self, f"bias_{tag}")]
        return out

    def forward(self, input, hx=None):
        if input.dim() not in (2, 3):
            raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {input.dim()}D input")
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        directions = 2 if self.bidirectional else 1
        shape = (self.num_layers * directions, x.shape[1], self.hidden_size)
        if hx is None:
            h0 = c0 = _wrap(np.zeros(shape, np.float32))
        else:
            h0, c0 = (s.unsqueeze(1) if unbatched else s for s in hx)
        out, h, c = DynamicLSTMOp.apply(x, h0, c0, self.num_layers, directions, *self._weights())
        if unbatched:
            return out.squeeze(1), (h.squeeze(1), c.squeeze(1))
        return (out.transpose(0, 1) if self.batch_first else out), (h, c)
