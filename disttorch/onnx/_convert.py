"""Mapping recorded disttorch ops and leaf modules to ONNX nodes.

OP_CONVERTERS is keyed by the op's registry name (as in the jit program); MODULE_CONVERTERS by layer
class name. Each converter reads its node's encoded arguments and appends ONNX nodes to the Builder.
"""
import math

import numpy as np

from . import _proto

_ELEMENTWISE = "disttorch.core.ops.elementwise."
_REDUCTION = "disttorch.core.ops.reduction."
_SHAPE = "disttorch.core.ops.shape."


class Builder:
    def __init__(self, recorder, opset_version):
        self.recorder = recorder
        self.opset = opset_version
        self.nodes = []
        self.initializers = {}
        self.names = {}
        self.counter = 0
        for vid, (name, _, _) in recorder.constants.items():
            self.names[vid] = name

    def fresh(self, hint="t"):
        self.counter += 1
        return f"/{hint}_{self.counter}"

    def name(self, vid):
        if vid not in self.names:
            self.names[vid] = f"/v{vid}"
        if vid in self.recorder.constants and self.names[vid] not in self.initializers:
            _, array, _ = self.recorder.constants[vid]
            self.initializers[self.names[vid]] = _host(array)
        return self.names[vid]

    def const(self, array, hint="const"):
        name = self.fresh(hint)
        self.initializers[name] = _host(np.asarray(array))
        return name

    def ints(self, values, hint="shape"):
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def add(self, op_type, inputs, outputs, **attributes):
        self.nodes.append(_proto.node(op_type, inputs, outputs, name=f"/{op_type}_{len(self.nodes)}", **attributes))
        return outputs[0] if len(outputs) == 1 else outputs

    def dtype(self, vid):
        return self.recorder.meta[vid][1]

    def shape(self, vid):
        return self.recorder.meta[vid][0]

    def operand(self, arg, like_dtype):
        """An ONNX input name for an encoded argument: a value, or a Python scalar made a constant."""
        if isinstance(arg, dict) and "v" in arg:
            return self.name(arg["v"])
        if isinstance(arg, dict) and "scalar" in arg:
            arg = arg["scalar"][1]
        return self.const(np.asarray(arg, dtype=like_dtype), "scalar")

    def out(self, node, i=0):
        return self.name(node.outputs[i])

    def initializer_bytes(self):
        return [_proto.tensor(name, array) for name, array in self.initializers.items()]


def _host(array):
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def _vid(arg):
    return arg["v"]


def _plain(arg):
    """Decode a constant encoded argument (tuples, lists, numbers) back into Python values."""
    if isinstance(arg, dict):
        if "tuple" in arg or "list" in arg:
            return [_plain(a) for a in arg.get("tuple", arg.get("list"))]
        if "scalar" in arg:
            return arg["scalar"][1]
        if "np_dtype" in arg:
            return np.dtype(arg["np_dtype"])
        raise NotImplementedError(f"ONNX export: argument {arg} must be a constant")
    return arg


def _operand_dtype(builder, args):
    for a in args:
        if isinstance(a, dict) and "v" in a:
            return builder.dtype(a["v"])
    return np.dtype(np.float32)


# ---- ops ----------------------------------------------------------------------------------------
def _binary(onnx_op):
    def convert(b, node):
        dtype = _operand_dtype(b, node.args)
        b.add(onnx_op, [b.operand(a, dtype) for a in node.args[:2]], [b.out(node)])
    return convert


def _unary(onnx_op):
    def convert(b, node):
        b.add(onnx_op, [b.name(_vid(node.args[0]))], [b.out(node)])
    return convert


def _matmul(b, node):
    b.add("MatMul", [b.name(_vid(a)) for a in node.args], [b.out(node)])


def _reshape(b, node):
    # {"dim": 0} marks the free batch size; ONNX Reshape's 0 means "copy this input dimension".
    spec = node.args[1]["tuple"]
    dims = [0 if isinstance(d, dict) else int(d) for d in spec]
    b.add("Reshape", [b.name(_vid(node.args[0])), b.ints(dims)], [b.out(node)])


def _expand(b, node):
    dims = [1 if isinstance(d, dict) else int(d) for d in node.args[1]["tuple"]]
    b.add("Expand", [b.name(_vid(node.args[0])), b.ints(dims)], [b.out(node)])


def _permute(b, node):
    b.add("Transpose", [b.name(_vid(node.args[0]))], [b.out(node)], perm=[int(d) for d in _plain(node.args[1])])


def _softmax(onnx_op):
    def convert(b, node):
        b.add(onnx_op, [b.name(_vid(node.args[0]))], [b.out(node)], axis=int(_plain(node.args[1])))
    return convert


def _sum(b, node):
    x, axes, keepdim = _vid(node.args[0]), _plain(node.args[1]), bool(node.args[2])
    inputs = [b.name(x)]
    if axes is not None:
        inputs.append(b.ints(axes if isinstance(axes, list) else [axes], "axes"))
    b.add("ReduceSum", inputs, [b.out(node)], keepdims=int(keepdim))


def _cat(b, node):
    b.add("Concat", [b.name(_vid(a)) for a in node.args[1:]], [b.out(node)], axis=int(node.args[0]))


def _cast(b, node):
    b.add("Cast", [b.name(_vid(node.args[0]))], [b.out(node)], to=_proto.ONNX_DTYPES[_plain(node.args[1])])


def _clamp(b, node):
    dtype = b.dtype(_vid(node.args[0]))
    bounds = [b.operand(v, dtype) if v is not None else "" for v in node.args[1:3]]
    b.add("Clip", [b.name(_vid(node.args[0]))] + bounds, [b.out(node)])


def _where(b, node):
    dtype = _operand_dtype(b, node.args[1:])
    cond = b.operand(node.args[0], np.bool_)
    b.add("Where", [cond] + [b.operand(a, dtype) for a in node.args[1:]], [b.out(node)])


def _linear(b, node):
    x, weight, bias = node.args[:3]
    inputs = [b.name(_vid(x)), b.name(_vid(weight))]
    if bias is not None:
        inputs.append(b.name(_vid(bias)))
    if len(b.shape(_vid(x))) == 2:
        b.add("Gemm", inputs, [b.out(node)], transB=1)
        return
    w_t = b.add("Transpose", [inputs[1]], [b.fresh("weight_t")], perm=[1, 0])
    product = b.out(node) if bias is None else b.fresh("matmul")
    b.add("MatMul", [inputs[0], w_t], [product])
    if bias is not None:
        b.add("Add", [product, inputs[2]], [b.out(node)])


def _conv2d(b, node):
    x, weight, bias, stride, pads, dilation, groups = node.args[:7]
    top, bottom, left, right = _plain(pads)
    inputs = [b.name(_vid(x)), b.name(_vid(weight))] + ([b.name(_vid(bias))] if bias is not None else [])
    b.add("Conv", inputs, [b.out(node)], kernel_shape=list(b.shape(_vid(weight))[2:]), strides=_plain(stride),
          pads=[top, left, bottom, right], dilations=_plain(dilation), group=int(groups))


def _max_pool2d(b, node):
    x, kernel, stride, padding, dilation, ceil_mode = node.args[:6]
    ph, pw = _plain(padding)
    b.add("MaxPool", [b.name(_vid(x))], [b.out(node)], kernel_shape=_plain(kernel), strides=_plain(stride),
          pads=[ph, pw, ph, pw], dilations=_plain(dilation), ceil_mode=int(bool(ceil_mode)))


def _avg_pool2d(b, node):
    x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override = node.args[:7]
    if divisor_override is not None:
        raise NotImplementedError("ONNX export: avg_pool2d with divisor_override has no ONNX equivalent")
    ph, pw = _plain(padding)
    b.add("AveragePool", [b.name(_vid(x))], [b.out(node)], kernel_shape=_plain(kernel), strides=_plain(stride),
          pads=[ph, pw, ph, pw], ceil_mode=int(bool(ceil_mode)), count_include_pad=int(bool(count_include_pad)))


def _adaptive_avg_pool2d(b, node):
    x, output_hw = node.args[:2]
    oh, ow = _plain(output_hw)
    if (oh, ow) == (1, 1):
        b.add("GlobalAveragePool", [b.name(_vid(x))], [b.out(node)])
        return
    h, w = b.shape(_vid(x))[-2:]
    if h % oh or w % ow:
        raise NotImplementedError(
            f"ONNX export: adaptive_avg_pool2d from {h}x{w} to {oh}x{ow} has uneven windows; ONNX can express "
            "it only when the input size is a multiple of the output size")
    b.add("AveragePool", [b.name(_vid(x))], [b.out(node)], kernel_shape=[h // oh, w // ow],
          strides=[h // oh, w // ow])


OP_CONVERTERS = {
    _ELEMENTWISE + "Add": _binary("Add"), _ELEMENTWISE + "Sub": _binary("Sub"),
    _ELEMENTWISE + "Mul": _binary("Mul"), _ELEMENTWISE + "Div": _binary("Div"),
    _ELEMENTWISE + "Pow": _binary("Pow"), _ELEMENTWISE + "Maximum": _binary("Max"),
    _ELEMENTWISE + "Minimum": _binary("Min"), _ELEMENTWISE + "Where": _where,
    _ELEMENTWISE + "Neg": _unary("Neg"), _ELEMENTWISE + "Exp": _unary("Exp"), _ELEMENTWISE + "Log": _unary("Log"),
    _ELEMENTWISE + "Sqrt": _unary("Sqrt"), _ELEMENTWISE + "Abs": _unary("Abs"), _ELEMENTWISE + "Sin": _unary("Sin"),
    _ELEMENTWISE + "Cos": _unary("Cos"), _ELEMENTWISE + "Tanh": _unary("Tanh"),
    _ELEMENTWISE + "Sigmoid": _unary("Sigmoid"), _ELEMENTWISE + "Relu": _unary("Relu"),
    _ELEMENTWISE + "Clamp": _clamp, _ELEMENTWISE + "Cast": _cast,
    "disttorch.core.ops.linalg.Matmul": _matmul,
    _REDUCTION + "Sum": _sum, _REDUCTION + "Softmax": _softmax("Softmax"),
    _REDUCTION + "LogSoftmax": _softmax("LogSoftmax"),
    _SHAPE + "Reshape": _reshape, _SHAPE + "View": _reshape, _SHAPE + "Expand": _expand,
    _SHAPE + "Permute": _permute, _SHAPE + "Contiguous": _unary("Identity"), _SHAPE + "Cat": _cat,
    "disttorch.nn.functional.linear.Linear": _linear,
    "disttorch.nn.functional.conv.Conv2dFunction": _conv2d,
    "disttorch.nn.functional.pooling.MaxPool2dFunction": _max_pool2d,
    "disttorch.nn.functional.pooling.AvgPool2dFunction": _avg_pool2d,
    "disttorch.nn.functional.pooling.AdaptiveAvgPool2dFunction": _adaptive_avg_pool2d,
}


# ---- leaf modules -------------------------------------------------------------------------------
def _param(b, tensor, hint):
    name = b.recorder.names.get(id(tensor))
    if name is None or name in b.initializers:
        return b.const(_host(tensor._data), hint)
    b.initializers[name] = _host(tensor._data)
    return name


def _batch_norm(b, call):
    m = call.module
    if call.training or m.running_mean is None:
        raise RuntimeError(
            f"ONNX export: {type(m).__name__} in training mode (or without running statistics) normalizes with "
            "batch statistics, which ONNX inference cannot reproduce; call model.eval() before exporting")
    channels = m.num_features
    dtype = m.running_mean._data.dtype
    scale = _param(b, m.weight, "bn_scale") if m.weight is not None else b.const(np.ones(channels, dtype))
    shift = _param(b, m.bias, "bn_bias") if m.bias is not None else b.const(np.zeros(channels, dtype))
    inputs = [b.name(call.inputs[0]), scale, shift, _param(b, m.running_mean, "bn_mean"),
              _param(b, m.running_var, "bn_var")]
    b.add("BatchNormalization", inputs, [b.name(call.outputs[0])], epsilon=float(m.eps))


def _dropout(b, call):
    if call.training:
        raise RuntimeError(f"ONNX export: {type(call.module).__name__} is in training mode; call model.eval() "
                           "so it exports as the identity")
    b.add("Identity", [b.name(call.inputs[0])], [b.name(call.outputs[0])])


def _leaky_relu(b, call):
    b.add("LeakyRelu", [b.name(call.inputs[0])], [b.name(call.outputs[0])], alpha=float(call.module.negative_slope))


def _gelu(b, call):
    x = b.name(call.inputs[0])
    dtype = b.dtype(call.inputs[0])
    half = b.add("Mul", [x, b.const(np.asarray(0.5, dtype))], [b.fresh("gelu_half")])
    if getattr(call.module, "approximate", "none") == "tanh":
        cube = b.add("Mul", [x, b.add("Mul", [x, x], [b.fresh("gelu_sq")])], [b.fresh("gelu_cube")])
        inner = b.add("Add", [x, b.add("Mul", [cube, b.const(np.asarray(0.044715, dtype))], [b.fresh("gelu")])],
                      [b.fresh("gelu")])
        scaled = b.add("Mul", [inner, b.const(np.asarray(math.sqrt(2 / math.pi), dtype))], [b.fresh("gelu")])
        curve = b.add("Tanh", [scaled], [b.fresh("gelu_tanh")])
    else:
        scaled = b.add("Div", [x, b.const(np.asarray(math.sqrt(2.0), dtype))], [b.fresh("gelu")])
        curve = b.add("Erf", [scaled], [b.fresh("gelu_erf")])
    one_plus = b.add("Add", [curve, b.const(np.asarray(1.0, dtype))], [b.fresh("gelu")])
    b.add("Mul", [half, one_plus], [b.name(call.outputs[0])])


# PyTorch packs LSTM gates as (input, forget, cell, output); ONNX as (input, output, forget, cell).
_LSTM_GATE_ORDER = (0, 3, 1, 2)


def _reorder_gates(packed, hidden):
    return np.concatenate([packed[g * hidden:(g + 1) * hidden] for g in _LSTM_GATE_ORDER])


def _lstm_weights(m, layer, directions, hidden):
    ws, rs, bs = [], [], []
    for direction in range(directions):
        suffix = f"l{layer}" + ("_reverse" if direction else "")
        w = _host(getattr(m, f"weight_ih_{suffix}")._data)
        r = _host(getattr(m, f"weight_hh_{suffix}")._data)
        if m.bias:
            bias = np.concatenate([_host(getattr(m, f"bias_ih_{suffix}")._data),
                                   _host(getattr(m, f"bias_hh_{suffix}")._data)])
        else:
            bias = np.zeros(8 * hidden, w.dtype)
        ws.append(_reorder_gates(w, hidden))
        rs.append(_reorder_gates(r, hidden))
        bs.append(np.concatenate([_reorder_gates(bias[:4 * hidden], hidden), _reorder_gates(bias[4 * hidden:], hidden)]))
    return np.stack(ws), np.stack(rs), np.stack(bs)


def _lstm(b, call):
    m = call.module
    if type(m).__name__ != "LSTM":
        raise NotImplementedError(f"ONNX export: {type(m).__name__} is not supported; only LSTM is mapped")
    if len(call.outputs) != 3:
        raise NotImplementedError("ONNX export: LSTM on unbatched or packed input is not supported")
    directions, hidden = (2 if m.bidirectional else 1), m.hidden_size
    x = b.name(call.inputs[0])
    if m.batch_first:
        x = b.add("Transpose", [x], [b.fresh("lstm_seq_first")], perm=[1, 0, 2])
    states = [b.name(v) for v in call.inputs[1:3]]
    h_outs, c_outs = [], []
    for layer in range(m.num_layers):
        w, r, bias = _lstm_weights(m, layer, directions, hidden)
        inputs = [x, b.const(w, "lstm_W"), b.const(r, "lstm_R"), b.const(bias, "lstm_B"), ""]
        if states:
            window = [b.ints([layer * directions]), b.ints([(layer + 1) * directions]), b.ints([0])]
            inputs += [b.add("Slice", [s] + window, [b.fresh("lstm_state")]) for s in states]
        y, y_h, y_c = b.fresh("lstm_Y"), b.fresh("lstm_Yh"), b.fresh("lstm_Yc")
        b.add("LSTM", inputs, [y, y_h, y_c], hidden_size=hidden,
              direction="bidirectional" if directions == 2 else "forward")
        if directions == 1:
            x = b.add("Squeeze", [y, b.ints([1], "axes")], [b.fresh("lstm_out")])
        else:
            seq_batch_dir = b.add("Transpose", [y], [b.fresh("lstm_out")], perm=[0, 2, 1, 3])
            x = b.add("Reshape", [seq_batch_dir, b.ints([0, 0, -1])], [b.fresh("lstm_out")])
        h_outs.append(y_h)
        c_outs.append(y_c)
    out_name, h_name, c_name = (b.name(v) for v in call.outputs)
    if m.batch_first:
        b.add("Transpose", [x], [out_name], perm=[1, 0, 2])
    else:
        b.add("Identity", [x], [out_name])
    b.add("Concat", h_outs, [h_name], axis=0)
    b.add("Concat", c_outs, [c_name], axis=0)


MODULE_CONVERTERS = {
    "BatchNorm1d": _batch_norm, "BatchNorm2d": _batch_norm, "BatchNorm3d": _batch_norm,
    "Dropout": _dropout, "Dropout1d": _dropout, "Dropout2d": _dropout, "AlphaDropout": _dropout,
    "LeakyReLU": _leaky_relu, "GELU": _gelu, "LSTM": _lstm,
}
