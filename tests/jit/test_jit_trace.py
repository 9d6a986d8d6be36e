import io
import json
import warnings
import zipfile

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn as nn
import disttorch.nn.functional as F
from disttorch import jit
from disttorch.vision import models


def _np(t):
    return t.detach().numpy()


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        x = x.view(x.size(0), -1)
        x += 0.5  # in-place on an intermediate: must be recorded, not lost
        return F.log_softmax(self.fc(x), dim=1)


def _randomize_bn(model):
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean._data[...] = rng.standard_normal(m.num_features)
            m.running_var._data[...] = rng.uniform(0.5, 1.5, m.num_features)


def test_trace_matches_eager_and_follows_batch_size():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    _randomize_bn(model)
    traced = jit.trace(model, torch.randn(2, 1, 8, 8))
    for batch in (1, 2, 5):
        x = torch.randn(batch, 1, 8, 8)
        np.testing.assert_array_equal(_np(traced(x)), _np(model(x)))
    assert "Conv2dFunction" in traced.graph


def test_trace_of_plain_function_with_tuple_output():
    weight = torch.randn(5, 3)

    def fn(x, y):
        h = torch.tanh(x @ weight.t())
        return h.sum(1), torch.cat([h, y], dim=1)

    x, y = torch.randn(4, 3), torch.randn(4, 2)
    traced = jit.trace(fn, (x, y))
    a, b = traced(x, y)
    ea, eb = fn(x, y)
    np.testing.assert_array_equal(a.numpy(), ea.numpy())
    np.testing.assert_array_equal(b.numpy(), eb.numpy())


def test_save_load_round_trip_without_pickle(tmp_path):
    torch.manual_seed(1)
    model = SmallCNN().eval()
    _randomize_bn(model)
    path = tmp_path / "cnn.pt"
    jit.trace(model, torch.randn(2, 1, 8, 8)).save(path)
    with np.load(path, allow_pickle=False) as archive:  # loads only without pickle support
        assert "__program__" in archive.files
    loaded = jit.load(path)
    x = torch.randn(3, 1, 8, 8)
    np.testing.assert_array_equal(_np(loaded(x)), _np(model(x)))
    assert set(loaded.state_dict()) >= {"conv.weight", "fc.bias"}


def _rewrite_program(path, edit):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays["__program__"].tobytes())
    edit(header)
    arrays["__program__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_load_refuses_ops_outside_disttorch(tmp_path):
    path = tmp_path / "evil.pt"
    jit.trace(lambda x: torch.relu(x), torch.randn(2, 2)).save(path)

    def point_at_os(header):
        header["nodes"][0][0] = "os.system"
    _rewrite_program(path, point_at_os)
    with pytest.raises(RuntimeError, match="outside disttorch's op modules"):
        jit.load(path)


def test_saved_file_is_a_plain_zip_of_arrays(tmp_path):
    buffer = io.BytesIO()
    jit.trace(nn.Linear(3, 2), torch.randn(1, 3)).save(buffer)
    names = zipfile.ZipFile(io.BytesIO(buffer.getvalue())).namelist()
    assert all(n.endswith(".npy") for n in names)


def test_data_dependent_branch_is_reported():
    def branchy(x):
        if x.sum() > 0:
            return x * 2
        return x - 1

    with pytest.warns(jit.TracerWarning, match="__bool__"):
        jit.trace(branchy, torch.ones(2, 2))


def test_item_on_traced_value_is_reported():
    def scale_by_max(x):
        return x / x.abs().max().item()

    with pytest.warns(jit.TracerWarning, match="item"):
        jit.trace(scale_by_max, torch.randn(3, 3), check_trace=False)


def test_tensor_created_from_input_shape_is_reported():
    def add_zeros(x):
        return x + torch.ones(x.shape[0], 3)

    with pytest.warns(jit.TracerWarning, match="batch size"):
        jit.trace(add_zeros, torch.randn(4, 3))


def test_clean_trace_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jit.trace(SmallCNN().eval(), torch.randn(2, 1, 8, 8))


def test_rank_mismatch_is_an_error():
    traced = jit.trace(nn.Linear(3, 2), torch.randn(4, 3))
    with pytest.raises(RuntimeError, match="rank 2"):
        traced(torch.randn(3))


def test_gradients_flow_through_traced_module():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    x = torch.randn(5, 4)
    traced = jit.trace(model, x)
    model(x).pow(2).sum().backward()
    traced(x).pow(2).sum().backward()
    grads = dict(traced.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.timeout(60)
def test_resnet18_trace_round_trip(tmp_path):
    torch.manual_seed(3)
    model = models.resnet18(num_classes=4).eval()
    _randomize_bn(model)
    x = torch.randn(2, 3, 32, 32)
    traced = jit.trace(model, x)
    traced.save(tmp_path / "r18.pt")
    loaded = jit.load(tmp_path / "r18.pt")
    x2 = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_array_equal(_np(loaded(x2)), _np(model(x2)))


def test_in_place_edit_through_a_view_updates_its_base():
    def edit_half(x):
        y = x * 1.0
        y[:, :2] += 10.0  # writes through a view into y, which is read afterwards
        return y.sum(1)

    x = torch.randn(3, 4)
    # The view's positions in its base are recorded for this batch size, which the trace reports.
    with pytest.warns(jit.TracerWarning, match="batch size"):
        traced = jit.trace(edit_half, x)
    np.testing.assert_allclose(traced(x).numpy(), edit_half(x).numpy(), rtol=1e-6)


def test_unsupported_output_type_is_a_clear_error():
    with pytest.raises(TypeError, match="must return Tensors"):
        jit.trace(lambda x: {"y": x * 2}, torch.randn(2))


def test_unrecorded_in_place_write_is_reported():
    def fill_in_place(x):
        y = x.detach() * 1  # detached: the in-place fill below takes the raw-memory path
        y.fill_(3.0)
        return x + y

    with pytest.warns(jit.TracerWarning, match="fill_"):
        jit.trace(fill_in_place, torch.randn(2, 2), check_trace=False)
