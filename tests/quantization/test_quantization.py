import numpy as np
import pytest

import disttorch as torch
import disttorch.nn as nn
from disttorch import quantization as tq
from disttorch.utils.data import DataLoader, TensorDataset
from disttorch.vision.datasets import Digits
from disttorch.vision.models import DigitsCNN


def _np(t):
    return t.detach().numpy()


def test_dynamic_linear_int8_per_channel_weights_and_size():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    qmodel = tq.quantize_dynamic(model, {nn.Linear}, dtype=tq.qint8)
    layer = qmodel[0]
    assert isinstance(layer, tq.DynamicQuantizedLinear)
    assert layer.weight_int8.dtype == torch.int8 and tuple(layer.weight_scale.shape) == (256,)
    # The dequantized weight is within half a step of the float weight, per output channel.
    step = layer.weight_scale.numpy()[:, None]
    assert (np.abs(_np(layer.weight()) - _np(model[0].weight)) <= step / 2 + 1e-7).all()
    x = torch.randn(8, 256)
    expected = _np(model(x))
    np.testing.assert_allclose(_np(qmodel(x)), expected, atol=0.02 * np.abs(expected).max())
    assert tq.model_size_bytes(model) / tq.model_size_bytes(qmodel) > 3.8
    assert isinstance(model[0], nn.Linear)  # not in place by default


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dynamic_quantization_matches_torch_weight_rounding():
    torch_ref = pytest.importorskip("torch")
    linear = nn.Linear(32, 16)
    qlayer = tq.quantize_dynamic(nn.Sequential(linear), {nn.Linear})[0]
    weight = torch_ref.from_numpy(_np(linear.weight).copy())
    scales = torch_ref.from_numpy(qlayer.weight_scale.numpy().astype(np.float64))
    reference = torch_ref.quantize_per_channel(weight, scales, torch_ref.zeros(16, dtype=torch_ref.long), 0,
                                               torch_ref.qint8)
    np.testing.assert_array_equal(reference.int_repr().numpy(), qlayer.weight_int8.numpy())


@pytest.mark.parametrize("batch_first,bidirectional,layers", [(False, False, 1), (True, True, 2)])
def test_dynamic_lstm_close_to_float(batch_first, bidirectional, layers):
    torch.manual_seed(1)
    lstm = nn.LSTM(6, 12, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional)
    qlstm = tq.quantize_dynamic(lstm, {nn.LSTM}, dtype=tq.qint8)
    x = torch.randn(4, 5, 6)
    out, (h, c) = lstm(x)
    qout, (qh, qc) = qlstm(x)
    for got, want in ((qout, out), (qh, h), (qc, c)):
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_allclose(_np(got), _np(want), atol=0.02)


def test_minmax_observer_matches_torch():
    torch_ref = pytest.importorskip("torch")
    data = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32) * 3 + 1
    ours = tq.MinMaxObserver(dtype=tq.quint8)
    ours(torch.from_numpy(data))
    theirs = torch_ref.ao.quantization.MinMaxObserver(dtype=torch_ref.quint8)
    theirs(torch_ref.from_numpy(data))
    scale, zero_point = ours.calculate_qparams()
    ref_scale, ref_zero = theirs.calculate_qparams()
    assert scale == pytest.approx(float(ref_scale), rel=1e-6)
    assert zero_point == int(ref_zero)


def test_observer_without_calibration_is_an_error():
    model = nn.Sequential(nn.Linear(4, 2))
    model.qconfig = tq.default_qconfig
    with pytest.raises(RuntimeError, match="calibration"):
        tq.convert(tq.prepare(model))


def test_prepare_without_qconfig_explains_the_fix():
    with pytest.raises(RuntimeError, match="qconfig"):
        tq.prepare(nn.Sequential(nn.Linear(4, 2)))


def test_quantize_dynamic_rejects_other_dtypes():
    with pytest.raises(ValueError, match="qint8"):
        tq.quantize_dynamic(nn.Linear(2, 2), {nn.Linear}, dtype=tq.quint8)


def test_quantized_modules_are_inference_only():
    qmodel = tq.quantize_dynamic(nn.Sequential(nn.Linear(3, 2)), {nn.Linear})
    x = torch.randn(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference only"):
        qmodel(x).sum().backward()


def _accuracy(model, images, labels):
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).float().mean().item())


@pytest.fixture(scope="module")
def trained_digits_cnn():
    torch.manual_seed(0)
    train, test = Digits(train=True), Digits(train=False)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(train.data, train.targets), batch_size=64, shuffle=True)
    for _ in range(6):
        for images, labels in loader:
            optimizer.zero_grad()
            loss_fn(model(images), labels).backward()
            optimizer.step()
    return model.eval(), train, test


@pytest.mark.timeout(120)
def test_static_ptq_on_digits_keeps_accuracy(trained_digits_cnn):
    model, train, test = trained_digits_cnn
    float_acc = _accuracy(model, test.data, test.targets)
    assert float_acc > 0.9
    model.qconfig = tq.get_default_qconfig()

    def calibrate(prepared):
        with torch.no_grad():
            for start in range(0, 512, 128):
                prepared(train.data[start:start + 128])
    qmodel = tq.quantize(model, calibrate)
    assert isinstance(qmodel.conv1, tq.QuantizedConv2d) and isinstance(qmodel.fc2, tq.QuantizedLinear)
    assert isinstance(model.conv1, nn.Conv2d)  # the float model is untouched
    quant_acc = _accuracy(qmodel, test.data, test.targets)
    assert float_acc - quant_acc < 0.01
    assert tq.model_size_bytes(model) / tq.model_size_bytes(qmodel) > 3.5


@pytest.mark.timeout(120)
def test_dynamic_quantization_on_digits_keeps_accuracy(trained_digits_cnn):
    model, _, test = trained_digits_cnn
    qmodel = tq.quantize_dynamic(model, {nn.Linear})
    assert _accuracy(model, test.data, test.targets) - _accuracy(qmodel, test.data, test.targets) < 0.01


def test_quantized_model_traces_and_round_trips(tmp_path, trained_digits_cnn):
    model, train, _ = trained_digits_cnn
    model.qconfig = tq.default_qconfig
    prepared = tq.prepare(model)
    prepared(train.data[:64])
    qmodel = tq.convert(prepared)
    x = train.data[:5]
    traced = torch.jit.trace(qmodel, x)
    traced.save(tmp_path / "q.pt")
    np.testing.assert_array_equal(torch.jit.load(tmp_path / "q.pt")(x).numpy(), qmodel(x).numpy())


@pytest.mark.parametrize("rows", [1, 3, 8, 9])
def test_native_int8_kernel_matches_the_numpy_path(rows, monkeypatch):
    from disttorch.quantization import _kernels
    if _kernels._NATIVE_GEMM is None:
        pytest.skip("the optional native int8 kernel was not built here")
    rng = np.random.default_rng(rows)
    weight_q, scale = _kernels.symmetric_per_channel(rng.standard_normal((37, 101)).astype(np.float32))
    x = rng.standard_normal((rows, 101)).astype(np.float32)
    bias = rng.standard_normal(37).astype(np.float32)
    native = _kernels.dynamic_int8_linear(x, weight_q, scale, bias)
    monkeypatch.setattr(_kernels, "_NATIVE_GEMM", None)
    fallback = _kernels.dynamic_int8_linear(x, weight_q, scale, bias)
    np.testing.assert_allclose(native, fallback, rtol=1e-5, atol=1e-5)
