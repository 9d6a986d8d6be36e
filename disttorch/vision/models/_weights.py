"""Loading `weights=` files: safetensors (parsed here with json + numpy) or disttorch checkpoints.

safetensors layout: an 8-byte little-endian header length, a JSON header mapping each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that follows), then the data.
"""
import json
import os
import struct

import numpy as np

from ...core.tensor import Tensor

_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def load_safetensors(path):
    """Read a .safetensors file into {name: Tensor}; bfloat16 tensors are widened to float32."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise RuntimeError(f"{path}: too short to be a safetensors file ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(_MAX_HEADER_BYTES, len(data) - 8):
        raise RuntimeError(f"{path}: safetensors header length {header_len} exceeds the file size {len(data)}")
    header = json.loads(data[8:8 + header_len])
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = Tensor._wrap(_decode(path, name, info, body))
    return tensors


def _decode(path, name, info, body):
    kind, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
    if not 0 <= begin <= end <= len(body):
        raise RuntimeError(f"{path}: tensor '{name}' has data offsets [{begin}, {end}] outside the data section "
                           f"of {len(body)} bytes")
    if kind == "BF16":
        raw = np.frombuffer(body[begin:end], dtype="<u2").astype(np.uint32) << 16
        array = raw.view(np.float32)
    elif kind in _SAFETENSORS_DTYPES:
        array = np.frombuffer(body[begin:end], dtype=np.dtype(_SAFETENSORS_DTYPES[kind]).newbyteorder("<"))
    else:
        raise RuntimeError(f"{path}: tensor '{name}' has dtype {kind}, which disttorch cannot read")
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise RuntimeError(f"{path}: tensor '{name}' holds {array.size} elements but its shape is {list(shape)}")
    return array.astype(array.dtype.newbyteorder("="), copy=True).reshape(shape)


def load_state_dict_file(path):
    """A state_dict from a safetensors file or a disttorch checkpoint (chosen by content, not name)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        prefix = f.read(9)
    if len(prefix) == 9 and prefix[8:9] == b"{":
        return load_safetensors(path)
    from ... import serialization
    state = serialization.load(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise RuntimeError(f"{path}: expected a state_dict (a dict of tensors), found {type(state).__name__}")
    return state


def build(model_class, weights, classifier_key, kwargs, *args):
    """Construct the model; with `weights`, load them (num_classes defaults to the file's classifier size)."""
    kwargs.pop("progress", None)
    if weights is None:
        return model_class(*args, **kwargs)
    state = load_state_dict_file(weights)
    if "num_classes" not in kwargs and classifier_key in state:
        kwargs["num_classes"] = state[classifier_key].shape[0]
    model = model_class(*args, **kwargs)
    model.load_state_dict(state)
    return model
