"""A minimal protobuf writer for the parts of onnx.proto an exported model needs.

Writing the wire format directly keeps `disttorch.onnx.export` free of the `onnx` package. Field
numbers follow onnx/onnx.proto (proto2). Repeated scalars are written unpacked, which every
protobuf parser accepts.
"""
import struct

import numpy as np

# TensorProto.DataType
ONNX_DTYPES = {
    np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int16): 5,
    np.dtype(np.int32): 6, np.dtype(np.int64): 7, np.dtype(np.bool_): 9, np.dtype(np.float16): 10,
    np.dtype(np.float64): 11,
}

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_TENSOR, _ATTR_FLOATS, _ATTR_INTS = 1, 2, 3, 4, 6, 7


def _varint(value):
    value &= (1 << 64) - 1  # negative int64 values are sent as their 64-bit two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field, wire_type):
    return _varint((field << 3) | wire_type)


def int_field(field, value):
    return _key(field, _VARINT) + _varint(int(value))


def bytes_field(field, data):
    if isinstance(data, str):
        data = data.encode()
    return _key(field, _BYTES) + _varint(len(data)) + data


def float_field(field, value):
    return _key(field, _FIXED32) + struct.pack("<f", float(value))


def tensor(name, array):
    array = np.ascontiguousarray(array)
    if array.dtype not in ONNX_DTYPES:
        raise TypeError(f"ONNX export: arrays of dtype {array.dtype} have no ONNX tensor type")
    body = b"".join(int_field(1, d) for d in array.shape)
    body += int_field(2, ONNX_DTYPES[array.dtype])
    body += bytes_field(8, name)
    body += bytes_field(9, array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return body


def attribute(name, value):
    body = bytes_field(1, name)
    if isinstance(value, (bool, int, np.integer)):
        return body + int_field(3, value) + int_field(20, _ATTR_INT)
    if isinstance(value, (float, np.floating)):
        return body + float_field(2, value) + int_field(20, _ATTR_FLOAT)
    if isinstance(value, (str, bytes)):
        return body + bytes_field(4, value) + int_field(20, _ATTR_STRING)
    if isinstance(value, np.ndarray):
        return body + bytes_field(5, tensor("", value)) + int_field(20, _ATTR_TENSOR)
    values = list(value)
    if values and all(isinstance(v, (float, np.floating)) for v in values):
        return body + b"".join(float_field(7, v) for v in values) + int_field(20, _ATTR_FLOATS)
    return body + b"".join(int_field(8, v) for v in values) + int_field(20, _ATTR_INTS)


def node(op_type, inputs, outputs, name="", **attributes):
    body = b"".join(bytes_field(1, i) for i in inputs)
    body += b"".join(bytes_field(2, o) for o in outputs)
    body += bytes_field(3, name) + bytes_field(4, op_type)
    body += b"".join(bytes_field(5, attribute(k, v)) for k, v in sorted(attributes.items()))
    return body


def value_info(name, np_dtype, shape):
    """shape entries are ints (fixed sizes) or strings (symbolic, e.g. dynamic batch)."""
    dims = b""
    for d in shape:
        dim = bytes_field(2, d) if isinstance(d, str) else int_field(1, d)
        dims += bytes_field(1, dim)
    tensor_type = int_field(1, ONNX_DTYPES[np.dtype(np_dtype)]) + bytes_field(2, dims)
    return bytes_field(1, name) + bytes_field(2, bytes_field(1, tensor_type))


def graph(name, nodes, initializers, inputs, outputs):
    body = b"".join(bytes_field(1, n) for n in nodes)
    body += bytes_field(2, name)
    body += b"".join(bytes_field(5, t) for t in initializers)
    body += b"".join(bytes_field(11, i) for i in inputs)
    body += b"".join(bytes_field(12, o) for o in outputs)
    return body


def model(graph_bytes, opset_version, ir_version=8, producer="disttorch", producer_version="0.1.0"):
    opset = bytes_field(1, "") + int_field(2, opset_version)
    return (int_field(1, ir_version) + bytes_field(2, producer) + bytes_field(3, producer_version)
            + bytes_field(7, graph_bytes) + bytes_field(8, opset))
