import io

import numpy as np
import pytest

import disttorch as torch
import disttorch.nn as nn
from disttorch.vision import models

ort = pytest.importorskip("onnxruntime")


def _export(model, args, **kwargs):
    buffer = io.BytesIO()
    torch.onnx.export(model, args, buffer, **kwargs)
    data = buffer.getvalue()
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean._data[...] = rng.standard_normal(m.num_features) * 0.1
            m.running_var._data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight._data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias._data[...] = rng.standard_normal(m.num_features) * 0.1


def _eager(model, x):
    with torch.no_grad():
        return model(x).numpy()


def test_mlp_with_dynamic_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 8),
                          nn.GELU(), nn.LeakyReLU(0.2), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 4),
                          nn.Tanh(), nn.Softmax(dim=1)).eval()
    _randomize_bn(model)
    session = _export(model, (torch.randn(2, 6),), input_names=["x"], output_names=["probs"],
                      dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}})
    x = torch.randn(7, 6)
    (out,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(out, _eager(model, x), rtol=1e-5, atol=1e-6)
    assert session.get_inputs()[0].shape == ["batch", 6]


def test_lenet5():
    torch.manual_seed(1)
    model = models.lenet5(num_classes=10, input_size=28).eval()
    x = torch.randn(3, 1, 28, 28)
    session = _export(model, x)
    np.testing.assert_allclose(session.run(None, {"input.0": x.numpy()})[0], _eager(model, x), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.timeout(90)
def test_resnet18():
    torch.manual_seed(2)
    model = models.resnet18(num_classes=10).eval()
    _randomize_bn(model)
    x = torch.randn(2, 3, 32, 32)
    session = _export(model, x, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": [0], "logits": [0]})
    x1 = torch.randn(1, 3, 32, 32)
    np.testing.assert_allclose(session.run(None, {"image": x1.numpy()})[0], _eager(model, x1), rtol=1e-4,
                               atol=1e-4)


class PoolMix(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.avg = nn.AvgPool2d(2, padding=1, count_include_pad=False)
        self.adaptive = nn.AdaptiveAvgPool2d((2, 2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        y = self.adaptive(self.avg(self.conv(x)))
        return torch.log_softmax(self.fc(self.flatten(y)) * 2.0 - 1.0, dim=1)


def test_pooling_and_functional_ops():
    torch.manual_seed(3)
    model = PoolMix().eval()
    x = torch.randn(2, 3, 14, 14)
    session = _export(model, x)
    np.testing.assert_allclose(session.run(None, {"input.0": x.numpy()})[0], _eager(model, x), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("batch_first,bidirectional,layers", [(False, False, 1), (True, True, 2)])
def test_lstm(batch_first, bidirectional, layers):
    torch.manual_seed(4)
    lstm = nn.LSTM(5, 7, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional).eval()
    x = torch.randn(3, 4, 5)
    session = _export(lstm, (x,), output_names=["out", "h", "c"])
    out, h, c = session.run(None, {"input.0": x.numpy()})
    with torch.no_grad():
        e_out, (e_h, e_c) = lstm(x)
    for got, want in ((out, e_out), (h, e_h), (c, e_c)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_training_model_exports_in_eval_mode_and_keeps_its_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    _randomize_bn(model)
    session = _export(model, torch.randn(2, 3))
    assert model.training and model[1].training
    x = torch.randn(2, 3)
    model.eval()
    np.testing.assert_allclose(session.run(None, {"input.0": x.numpy()})[0], _eager(model, x), rtol=1e-5,
                               atol=1e-6)


def test_batchnorm_exported_with_training_true_is_refused():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with pytest.raises(RuntimeError, match="eval"):
        torch.onnx.export(model, torch.randn(2, 3), io.BytesIO(), training=True)


def test_unsupported_op_names_itself():
    class Cumulative(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    with pytest.raises(NotImplementedError, match="Cumsum"):
        torch.onnx.export(Cumulative(), torch.randn(2, 3), io.BytesIO())


def test_export_to_path(tmp_path):
    model = nn.Linear(3, 2)
    path = tmp_path / "linear.onnx"
    torch.onnx.export(model, torch.randn(1, 3), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3)
    np.testing.assert_allclose(session.run(None, {"input.0": x.numpy()})[0], _eager(model, x), rtol=1e-6)
