import collections

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import default_collate, default_convert

Point = collections.namedtuple("Point", "x y")


def _as_numpy(value):
    """Turn a collated structure (ours or torch's) into comparable plain Python/numpy values."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        return ("tensor", str(value.dtype).replace("torch.", ""), value.numpy().tolist())
    if isinstance(value, dict):
        return {key: _as_numpy(item) for key, item in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return (type(value).__name__,) + tuple(_as_numpy(item) for item in value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_as_numpy(item) for item in value])
    return value


BATCHES = [
    [1, 2, 3],
    [1.5, 2.5],
    [True, False],
    [np.float32(1), np.float32(2)],
    [np.int32(4), np.int32(5)],
    [np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)],
    [(1, 2.0), (3, 4.0)],
    [[1, 2], [3, 4]],
    ["a", "b"],
    [b"a", b"b"],
    [{"x": 1, "y": np.arange(3)}, {"x": 2, "y": np.arange(3)}],
    [Point(1, 2.0), Point(3, 4.0)],
    [({"a": [1, (2, 3.0)]}, "s"), ({"a": [4, (5, 6.0)]}, "t")],
    [collections.OrderedDict(b=1, a=2), collections.OrderedDict(b=3, a=4)],
]


@pytest.mark.parametrize("batch", BATCHES, ids=lambda batch: type(batch[0]).__name__)
def test_default_collate_matches_torch(batch):
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    ours = default_collate(batch)
    assert _as_numpy(ours) == _as_numpy(torch_collate(batch))
    if not isinstance(ours, disttorch.Tensor):
        assert type(ours) is type(torch_collate(batch))


def test_default_collate_stacks_tensors():
    batch = [disttorch.ones(2, 3), disttorch.zeros(2, 3)]
    out = default_collate(batch)
    assert tuple(out.shape) == (2, 2, 3)
    assert out.dtype == disttorch.float32
    np.testing.assert_array_equal(out.numpy()[0], np.ones((2, 3)))


def test_default_collate_errors():
    with pytest.raises(TypeError, match="found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="numpy arrays"):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0"):
        default_collate([disttorch.ones(2), disttorch.ones(3)])


def test_default_convert_matches_torch():
    pytest.importorskip("torch")
    from torch.utils.data import default_convert as torch_convert
    sample = (np.zeros(2), 1, [np.ones(1, np.float32)], {"k": np.float64(3.0)}, "s")
    assert _as_numpy(default_convert(sample)) == _as_numpy(torch_convert(sample))
