"""disttorch.load on damaged and hostile files: whatever the bytes, a RuntimeError that names the file.

The hostile headers carry valid checksums, so every check past the checksum is exercised: msgpack
decoding, the header's fields, the tensor table and the object tree.
"""

import io
import struct
import zlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import disttorch
from disttorch import serialization

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2 ** 63, max_value=2 ** 64 - 1)
           | st.floats(allow_nan=True) | st.text(max_size=12) | st.binary(max_size=12)
           | st.sampled_from(["dict", "odict", "list", "tuple", "tensor", "ndarray", "dtype", "device", "bigint",
                              "float32", "int64", "cpu", "cuda:0", "<f4", "O", "U3", "V8", "M8", "(2,)i4"]))
MSGPACK_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SCALARS, inner, max_size=4),
    max_leaves=20)


def _valid_file():
    buffer = io.BytesIO()
    disttorch.save({"w": disttorch.arange(6.0).reshape(2, 3), "step": 3, "names": ("a", [1, 2.5]),
                    "dtype": disttorch.float16, "device": disttorch.device("cpu"), "big": 2 ** 80,
                    "ints": disttorch.tensor([1, 2], dtype=disttorch.int32)}, buffer)
    return buffer.getvalue()


VALID = _valid_file()
_, VALID_HEADER_LENGTH, _ = serialization._PREFIX.unpack(VALID[:serialization._PREFIX.size])
VALID_HEADER = msgpack.unpackb(VALID[serialization._PREFIX.size:serialization._PREFIX.size + VALID_HEADER_LENGTH],
                               raw=False, strict_map_key=False)
VALID_BODY = VALID[serialization._PREFIX.size + VALID_HEADER_LENGTH:]


def _with_header(header_bytes, body=VALID_BODY):
    prefix = serialization._PREFIX.pack(serialization.MAGIC, len(header_bytes), zlib.crc32(header_bytes))
    return prefix + header_bytes + body


def _loads_or_names_the_file(path, content):
    path.write_bytes(content)
    try:
        disttorch.load(path)
    except RuntimeError as error:
        assert str(path) in str(error)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


def test_every_single_bit_flip_in_the_prefix_names_the_file(folder):
    path = folder / "flipped.pt"
    for position in range(serialization._PREFIX.size):  # magic, header length, header checksum
        for bit in range(8):
            corrupt = bytearray(VALID)
            corrupt[position] ^= 1 << bit
            path.write_bytes(bytes(corrupt))
            with pytest.raises(RuntimeError, match="flipped.pt"):
                disttorch.load(path)


@SETTINGS
@given(position=st.integers(0, len(VALID) - 1), bit=st.integers(0, 7))
def test_a_bit_flip_anywhere_names_the_file(folder, position, bit):
    corrupt = bytearray(VALID)
    corrupt[position] ^= 1 << bit
    path = folder / "flipped_anywhere.pt"
    path.write_bytes(bytes(corrupt))
    with pytest.raises(RuntimeError, match="flipped_anywhere.pt"):
        disttorch.load(path)


@pytest.mark.parametrize("length", [2 ** 63, 2 ** 64 - 1, 2 ** 40, VALID_HEADER_LENGTH + 1])
def test_a_huge_header_length_is_refused_before_reading_it(folder, length):
    path = folder / "long_header.pt"
    path.write_bytes(struct.pack("<8sQI", serialization.MAGIC, length, 0) + VALID[16:])
    with pytest.raises(RuntimeError, match="long_header.pt.*header"):
        disttorch.load(path)


class _Stream(io.RawIOBase):
    """A pipe-like source: no size, no seeking."""

    def __init__(self, content):
        self.source = io.BytesIO(content)

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.source.readinto(buffer)


def test_a_huge_header_length_in_a_stream_runs_into_its_end():
    content = struct.pack("<8sQI", serialization.MAGIC, 2 ** 63, 0) + VALID[16:]
    with pytest.raises(RuntimeError, match="BufferedReader.*ends early while reading the header"):
        disttorch.load(io.BufferedReader(_Stream(content)))


@SETTINGS
@given(header=MSGPACK_VALUES)
def test_any_msgpack_header_with_a_valid_checksum(folder, header):
    _loads_or_names_the_file(folder / "any.pt", _with_header(msgpack.packb(header, use_bin_type=True)))


@SETTINGS
@given(header_bytes=st.binary(max_size=64), body=st.binary(max_size=64))
def test_any_header_bytes_with_a_valid_checksum(folder, header_bytes, body):
    _loads_or_names_the_file(folder / "bytes.pt", _with_header(header_bytes, body))


def _slots(node, slots):
    """Every (container, key) inside a decoded header, so one can be swapped for a hostile value."""
    keys = range(len(node)) if isinstance(node, list) else list(node) if isinstance(node, dict) else []
    for key in keys:
        slots.append((node, key))
        _slots(node[key], slots)
    return slots


def _copy(node):
    return msgpack.unpackb(msgpack.packb(node, use_bin_type=True), raw=False, strict_map_key=False)


@SETTINGS
@given(data=st.data())
def test_a_real_header_with_one_part_replaced(folder, data):
    header = _copy(VALID_HEADER)
    slots = _slots(header, [])
    container, key = slots[data.draw(st.integers(0, len(slots) - 1), label="slot")]
    container[key] = data.draw(MSGPACK_VALUES, label="replacement")
    _loads_or_names_the_file(folder / "mutated.pt", _with_header(msgpack.packb(header, use_bin_type=True)))


@pytest.mark.parametrize("hostile, complaint", [
    ({"dtype": "O"}, "dtype"),
    ({"dtype": "U3"}, "dtype"),
    ({"shape": [2 ** 40, 2 ** 40]}, "bytes"),
    ({"shape": [-1, 3]}, "shape"),
    ({"shape": [0] + [1] * 70}, "shape"),
    ({"nbytes": 2 ** 64 - 1}, "bytes"),
    ({"nbytes": "48"}, "bytes"),
    ({"device": "toaster"}, "device"),
    ({"device": ["cpu"]}, "device"),
    ({"requires_grad": True}, "gradients"),
    ({"parameter": "yes"}, "flags"),
    ({"requires_grad": 1}, "flags"),
])
def test_hostile_tensor_descriptions(folder, hostile, complaint):
    header = _copy(VALID_HEADER)
    [integers] = [entry for entry in header["tensors"] if entry["dtype"] == "i4"]
    integers.update(hostile)
    path = folder / "table.pt"
    path.write_bytes(_with_header(msgpack.packb(header, use_bin_type=True)))
    with pytest.raises(RuntimeError, match=f"table.pt.*{complaint}"):
        disttorch.load(path)


def test_a_deeply_nested_tree_names_the_file(folder):
    tree = 1
    for _ in range(500):
        tree = ["list", [tree]]
    header = dict(_copy(VALID_HEADER), tree=tree)
    path = folder / "deep.pt"
    path.write_bytes(_with_header(msgpack.packb(header, use_bin_type=True)))
    try:
        disttorch.load(path)
    except RuntimeError as error:
        assert "deep.pt" in str(error)


@pytest.mark.parametrize("tree, complaint", [
    (["dict", [[["list", []], 1]]], "key"),
    (["dict", 5], "list"),
    (["list", [["tensor", True]]], "missing tensor"),
    (["bigint", "12x"], "integer"),
    (["dtype", "complex512"], "dtype"),
    (["device", "toaster"], "device"),
    ({"raw": "map"}, "malformed"),
    (msgpack.ExtType(5, b"x"), "malformed"),
])
def test_hostile_object_trees(folder, tree, complaint):
    header = dict(_copy(VALID_HEADER), tree=tree)
    path = folder / "tree.pt"
    path.write_bytes(_with_header(msgpack.packb(header, use_bin_type=True)))
    with pytest.raises(RuntimeError, match=f"tree.pt.*{complaint}"):
        disttorch.load(path)
