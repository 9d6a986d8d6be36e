import collections
import io
import os
import pickle

import numpy as np
import pytest

import disttorch
from disttorch import serialization


def _checkpoint():
    return {
        "model": collections.OrderedDict(weight=disttorch.randn(4, 3), bias=disttorch.zeros(3),
                                         steps=disttorch.tensor(7), mask=disttorch.tensor([True, False])),
        "optimizer": {"state": {0: {"momentum_buffer": disttorch.ones(4, 3, dtype=disttorch.float64)}},
                      "param_groups": [{"lr": 0.1, "params": [0, 1], "nesterov": False, "betas": (0.9, 0.999)}]},
        "epoch": 12, "best": float("inf"), "name": "run-1", "blob": b"\x00\xff", "missing": None,
        "huge": 2 ** 80, "dtype": disttorch.float16, "half": disttorch.arange(5).to(disttorch.float16),
        "array": np.arange(6, dtype=np.int32).reshape(2, 3), (1, "key"): [1, (2.5, "x")],
    }


def _assert_same(saved, loaded):
    assert type(saved) is type(loaded) or (isinstance(saved, disttorch.Tensor) and isinstance(loaded, disttorch.Tensor))
    if isinstance(saved, disttorch.Tensor):
        assert saved.dtype == loaded.dtype and saved.shape == loaded.shape
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    elif isinstance(saved, np.ndarray):
        assert saved.dtype == loaded.dtype
        np.testing.assert_array_equal(saved, loaded)
    elif isinstance(saved, dict):
        assert list(saved) == list(loaded)
        for key in saved:
            _assert_same(saved[key], loaded[key])
    elif isinstance(saved, (list, tuple)):
        assert len(saved) == len(loaded)
        for a, b in zip(saved, loaded):
            _assert_same(a, b)
    else:
        assert saved == loaded


def test_round_trip_through_path(tmp_path):
    checkpoint = _checkpoint()
    path = tmp_path / "ckpt.pt"
    disttorch.save(checkpoint, path)
    _assert_same(checkpoint, disttorch.load(path))
    _assert_same(checkpoint, disttorch.load(str(path), map_location="cpu", weights_only=False))
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary file left behind


def test_round_trip_through_file_object():
    buffer = io.BytesIO()
    disttorch.save([disttorch.arange(3), {"a": 1}], buffer)
    buffer.seek(0)
    loaded = disttorch.load(buffer)
    assert loaded[0].tolist() == [0, 1, 2] and loaded[1] == {"a": 1}


def test_views_sharing_storage_are_saved_independently(tmp_path):
    base = disttorch.arange(12).reshape(3, 4)
    views = {"row": base[1], "column": base[:, 2], "transposed": base.t()}
    disttorch.save(views, tmp_path / "views.pt")
    loaded = disttorch.load(tmp_path / "views.pt")
    assert loaded["row"].tolist() == [4, 5, 6, 7]
    assert loaded["column"].tolist() == [2, 6, 10]
    assert loaded["transposed"].tolist() == base.t().tolist()


def test_map_location_forms(tmp_path):
    path = tmp_path / "m.pt"
    disttorch.save({"w": disttorch.ones(2)}, path)
    assert disttorch.load(path, map_location=disttorch.device("cpu"))["w"].device.type == "cpu"
    assert disttorch.load(path, map_location={"cuda:0": "cpu"})["w"].device.type == "cpu"
    seen = []

    def place(tensor, location):
        seen.append(location)
        return tensor * 2

    assert disttorch.load(path, map_location=place)["w"].tolist() == [2.0, 2.0]
    assert seen == ["cpu"]
    assert disttorch.load(path, map_location=lambda tensor, location: None)["w"].tolist() == [1.0, 1.0]


def test_cuda_map_location_without_cuda_is_a_clear_error(tmp_path):
    from disttorch.core.backend import cuda_available
    if cuda_available():
        pytest.skip("CUDA is available here")
    path = tmp_path / "m.pt"
    disttorch.save({"w": disttorch.ones(2)}, path)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        disttorch.load(path, map_location="cuda")


def test_unsupported_object_names_its_path(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['bad'\]\[1\] of type object"):
        disttorch.save({"bad": [1, object()]}, tmp_path / "x.pt")
    assert not os.listdir(tmp_path)


def test_crash_during_replace_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    disttorch.save({"epoch": 1, "w": disttorch.ones(3)}, path)

    def crash(src, dst):
        raise OSError("simulated power loss")

    monkeypatch.setattr(serialization.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        disttorch.save({"epoch": 2, "w": disttorch.zeros(3)}, path)
    monkeypatch.undo()
    assert disttorch.load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    disttorch.save({"epoch": 1}, path)
    real_crc = serialization.zlib.crc32
    calls = []

    def crc_then_crash(data, value=0):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_crc(data, value)

    monkeypatch.setattr(serialization.zlib, "crc32", crc_then_crash)
    with pytest.raises(KeyboardInterrupt):
        disttorch.save({"epoch": 2, "w": disttorch.ones(1000)}, path)
    monkeypatch.undo()
    assert disttorch.load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["ckpt.pt"]


@pytest.mark.parametrize("cut", [0, 5, 20, 60, -30, -5, -1])
def test_truncated_file_names_the_file(tmp_path, cut):
    path = tmp_path / "whole.pt"
    disttorch.save({"w": disttorch.randn(64), "n": 1}, path)
    content = path.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(content[:cut])
    with pytest.raises(RuntimeError, match="broken.pt"):
        disttorch.load(broken)


def test_flipped_bits_are_detected(tmp_path):
    path = tmp_path / "whole.pt"
    disttorch.save({"w": disttorch.randn(64)}, path)
    content = bytearray(path.read_bytes())
    for position in (30, len(content) - 100):
        corrupt = bytearray(content)
        corrupt[position] ^= 0x10
        (tmp_path / "corrupt.pt").write_bytes(bytes(corrupt))
        with pytest.raises(RuntimeError, match=r"corrupt.pt .*checksum"):
            disttorch.load(tmp_path / "corrupt.pt")
    (tmp_path / "long.pt").write_bytes(bytes(content) + b"x")
    with pytest.raises(RuntimeError, match="unexpected bytes"):
        disttorch.load(tmp_path / "long.pt")


class _Exploit:
    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_pickle_is_refused_and_never_executed(tmp_path):
    exploit = _Exploit()
    exploit.target = str(tmp_path / "pwned")
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"state": exploit}))
    with pytest.raises(RuntimeError, match="evil.pt looks like a Python pickle"):
        disttorch.load(path)
    assert not (tmp_path / "pwned").exists()


def test_torch_zip_checkpoint_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(RuntimeError, match="zip archive"):
        disttorch.load(path)


def test_parameters_come_back_as_parameters(tmp_path):
    nn = pytest.importorskip("disttorch.nn")
    if not hasattr(nn, "Parameter"):
        pytest.skip("disttorch.nn.Parameter not available yet")
    disttorch.save([nn.Parameter(disttorch.ones(2))], tmp_path / "p.pt")
    loaded = disttorch.load(tmp_path / "p.pt")[0]
    assert isinstance(loaded, nn.Parameter) and loaded.requires_grad


def test_whole_module_save_is_refused_with_the_state_dict_recipe(tmp_path):
    model = disttorch.nn.Linear(2, 2)
    for obj in (model, {"model": model}):
        with pytest.raises(TypeError, match=r"state_dict\(\).*load_state_dict"):
            disttorch.save(obj, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_safe_globals_are_harmless_and_load_keywords_are_accepted(tmp_path):
    from disttorch import serialization
    serialization.add_safe_globals([dict])
    try:
        assert dict in serialization.get_safe_globals()
        with serialization.safe_globals([list]):
            assert list in serialization.get_safe_globals()
        assert list not in serialization.get_safe_globals()
    finally:
        serialization.clear_safe_globals()
    path = tmp_path / "w.pt"
    disttorch.save({"w": disttorch.ones(2)}, path)
    loaded = disttorch.load(path, map_location="cpu", weights_only=False)
    assert loaded["w"].tolist() == [1.0, 1.0]
    assert disttorch.serialization is serialization
