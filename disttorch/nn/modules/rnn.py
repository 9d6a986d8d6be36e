"""Recurrent layers RNN, LSTM, GRU with PyTorch's arguments, parameter names, shapes and init."""
import math
import numbers
import warnings

import numpy as np

from ... import cat, empty, stack, tensor, zeros
from .. import init
from ..functional import rnn as layers_fn
from ..functional.dropout import dropout
from ..parameter import Parameter
from ..utils.rnn import PackedSequence, _pack_time_major, pad_packed_sequence, pad_sequence
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


class RNNBase(Module):
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers=1")
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError(f"hidden_size must be greater than zero, got {hidden_size}")
        if num_layers <= 0:
            raise ValueError(f"num_layers must be greater than zero, got {num_layers}")
        if proj_size:
            raise NotImplementedError("proj_size > 0 (LSTM with projections) is not supported by disttorch yet")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {f"weight_ih_l{layer}{suffix}": (gate_size, layer_input),
                          f"weight_hh_l{layer}{suffix}": (gate_size, hidden_size)}
                if bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (gate_size,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (gate_size,)
                for name, shape in shapes.items():
                    setattr(self, name, Parameter(empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    @property
    def all_weights(self):
        return [[getattr(self, name) for name in self._layer_names(layer, suffix)]
                for layer in range(self.num_layers) for suffix in self._suffixes()]

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def _layer_names(self, layer, suffix):
        names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
        if self.bias:
            names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
        return names

    def flatten_parameters(self):
        """A cuDNN memory-layout hint in PyTorch; nothing to do here."""

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if self.batch_first is not False:
            text += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            text += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            text += f", bidirectional={self.bidirectional}"
        return text

    # ---- forward ----------------------------------------------------------------------------------
    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        return self._forward_tensor(input, hx)

    def _forward_packed(self, packed, hx):
        """Runs each group of equal-length sequences as one batch, so every sequence's final state is the one
        after its own last step (the fused layers have no per-row lengths). Costs one pass per distinct length.
        """
        padded, lengths = pad_packed_sequence(packed)  # (T, B, *), in the caller's batch order
        lengths = lengths.tolist()
        outputs, finals = [None] * len(lengths), [None] * len(lengths)
        for length in sorted(set(lengths), reverse=True):
            rows = [b for b, n in enumerate(lengths) if n == length]
            index = tensor(rows, device=padded.device)
            x = padded[:length].index_select(1, index)
            state = None if hx is None else _select_rows(hx, index)
            out, final = self._forward_tensor(x.transpose(0, 1) if self.batch_first else x, state)
            out = out.transpose(0, 1) if self.batch_first else out
            for j, b in enumerate(rows):
                outputs[b] = out[:, j]
                finals[b] = tuple(f[:, j] for f in final) if isinstance(final, tuple) else final[:, j]
        output = pad_sequence(outputs)
        sorted_lengths = sorted(lengths, reverse=True)
        if packed.sorted_indices is not None:
            output = output.index_select(1, packed.sorted_indices)
        data = _pack_time_major(output, np.asarray(sorted_lengths, dtype=np.int64), None).data
        output = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        if isinstance(finals[0], tuple):
            return output, tuple(stack([f[k] for f in finals], 1) for k in range(len(finals[0])))
        return output, stack(finals, 1)

    def _time_major(self, input):
        """(T, B, I) view of the input, and whether the input was unbatched."""
        if input.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D input "
                             f"of size {list(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]}")
        if input.dim() == 2:
            return input.unsqueeze(1), True
        return (input.transpose(0, 1) if self.batch_first else input), False

    def _initial_state(self, state, batch, unbatched, like, name="hx"):
        directions = 2 if self.bidirectional else 1
        expected = (self.num_layers * directions, batch, self.hidden_size)
        if state is None:
            return zeros(*expected, dtype=like.dtype, device=like.device)
        if unbatched:
            if state.dim() != 2:
                raise RuntimeError(f"For unbatched 2-D input, {name} should also be 2-D but got "
                                   f"{state.dim()}-D tensor")
            state = state.unsqueeze(1)
        elif state.dim() != 3:
            raise RuntimeError(f"For batched 3-D input, {name} should also be 3-D but got {state.dim()}-D tensor")
        if tuple(state.shape) != expected:
            raise RuntimeError(f"Expected hidden size {expected}, got {list(state.shape)}")
        return state

    def _run_layers(self, x, run_direction):
        """Stacks layers and directions; run_direction(x, layer, suffix, index) -> (output, final states)."""
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for d, suffix in enumerate(self._suffixes()):
                output, states = run_direction(x, layer, suffix, layer * len(self._suffixes()) + d)
                outputs.append(output)
                finals.append(states)
            x = outputs[0] if len(outputs) == 1 else cat(outputs, dim=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = dropout(x, self.dropout, True)
        return x, finals

    def _weights(self, layer, suffix):
        names = self._layer_names(layer, suffix)
        weights = [getattr(self, name) for name in names]
        return weights if self.bias else weights + [None, None]

    def _output(self, x, unbatched):
        if unbatched:
            return x.squeeze(1)
        return x.transpose(0, 1) if self.batch_first else x

    @staticmethod
    def _final(states, unbatched):
        stacked = stack(states, 0)
        return stacked.squeeze(1) if unbatched else stacked


class RNN(RNNBase):
    def __init__(self, *args, **kwargs):
        nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)
        self.nonlinearity = nonlinearity

    def _forward_tensor(self, input, hx=None):
        x, unbatched = self._time_major(input)
        h0 = self._initial_state(hx, x.shape[1], unbatched, x)

        def run_direction(x, layer, suffix, index):
            reverse = suffix == "_reverse"
            out = layers_fn.RNNTanhReluLayer.apply(x, *self._weights(layer, suffix), h0[index], reverse,
                                                   self.nonlinearity)
            return out, out[0 if reverse else -1]

        x, finals = self._run_layers(x, run_direction)
        return self._output(x, unbatched), self._final(finals, unbatched)


class LSTM(RNNBase):
    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    def _forward_tensor(self, input, hx=None):
        x, unbatched = self._time_major(input)
        if hx is None:
            h0 = c0 = self._initial_state(None, x.shape[1], unbatched, x)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise RuntimeError("LSTM expects hx as a tuple (h_0, c_0) of two tensors")
            h0 = self._initial_state(hx[0], x.shape[1], unbatched, x, "h_0")
            c0 = self._initial_state(hx[1], x.shape[1], unbatched, x, "c_0")
        steps = x.shape[0]

        def run_direction(x, layer, suffix, index):
            reverse = suffix == "_reverse"
            packed = layers_fn.LSTMLayer.apply(x, *self._weights(layer, suffix), h0[index], c0[index], reverse)
            out = packed[:steps]
            return out, (out[0 if reverse else -1], packed[steps])

        x, finals = self._run_layers(x, run_direction)
        h_n = self._final([h for h, _ in finals], unbatched)
        c_n = self._final([c for _, c in finals], unbatched)
        return self._output(x, unbatched), (h_n, c_n)


class GRU(RNNBase):
    def __init__(self, *args, **kwargs):
        super().__init__("GRU", *args, **kwargs)

    def _forward_tensor(self, input, hx=None):
        x, unbatched = self._time_major(input)
        h0 = self._initial_state(hx, x.shape[1], unbatched, x)

        def run_direction(x, layer, suffix, index):
            reverse = suffix == "_reverse"
            out = layers_fn.GRULayer.apply(x, *self._weights(layer, suffix), h0[index], reverse)
            return out, out[0 if reverse else -1]

        x, finals = self._run_layers(x, run_direction)
        return self._output(x, unbatched), self._final(finals, unbatched)


def _select_rows(hx, index):
    """The initial state (or LSTM's (h_0, c_0)) of the batch rows in index."""
    if isinstance(hx, (tuple, list)):
        return tuple(h.index_select(1, index) for h in hx)
    return hx.index_select(1, index)


class RNNCellBase(Module):
    """One time step. Parameters weight_ih (gates*hidden, input), weight_hh (gates*hidden, hidden), bias_ih,
    bias_hh, all uniform(-1/sqrt(hidden), 1/sqrt(hidden)) as in torch; built from linear/sigmoid/tanh, so
    autograd needs no backward of its own."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, **factory))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, **factory))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, **factory))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text

    def _batched(self, input, hx_parts):
        """(input as 2-D, hidden states as 2-D, whether to squeeze the batch dim back out)."""
        if input.dim() not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for h in hx_parts:
            if h is not None and h.dim() != input.dim():
                raise RuntimeError(f"{type(self).__name__}: Expected hidden to be {input.dim()}D, got {h.dim()}D "
                                   "instead")
        unbatched = input.dim() == 1
        if unbatched:
            input = input.unsqueeze(0)
        batch = input.shape[0]
        states = []
        for h in hx_parts:
            if h is None:
                h = zeros(batch, self.hidden_size, dtype=input.dtype, device=input.device)
            elif unbatched:
                h = h.unsqueeze(0)
            states.append(h)
        return input, states, unbatched

    def _projections(self, input, h):
        from ..functional import linear
        return linear(input, self.weight_ih, self.bias_ih), linear(h, self.weight_hh, self.bias_hh)


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)

    def forward(self, input, hx=None):
        input, (h,), unbatched = self._batched(input, (hx,))
        gi, gh = self._projections(input, h)
        out = (gi + gh).tanh() if self.nonlinearity == "tanh" else (gi + gh).relu()
        return out.squeeze(0) if unbatched else out


class LSTMCell(RNNCellBase):
    """Gates in torch's order: input, forget, cell, output."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        h, c = (None, None) if hx is None else hx
        input, (h, c), unbatched = self._batched(input, (h, c))
        gi, gh = self._projections(input, h)
        i, f, g, o = (gi + gh).chunk(4, 1)
        c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h_next = o.sigmoid() * c_next.tanh()
        if unbatched:
            return h_next.squeeze(0), c_next.squeeze(0)
        return h_next, c_next


class GRUCell(RNNCellBase):
    """Gates in torch's order: reset, update, new; the reset gate scales the hidden projection with its bias."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        input, (h,), unbatched = self._batched(input, (hx,))
        gi, gh = self._projections(input, h)
        i_r, i_z, i_n = gi.chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        reset = (i_r + h_r).sigmoid()
        update = (i_z + h_z).sigmoid()
        new = (i_n + reset * h_n).tanh()
        out = new + update * (h - new)
        return out.squeeze(0) if unbatched else out
