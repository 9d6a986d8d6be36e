"""Devices: a clean CPU-only answer without a GPU, and GPU behaviour that runs only where one is visible."""
import numpy as np
import pytest

import disttorch

requires_gpu = pytest.mark.skipif(not disttorch.cuda.is_available(), reason="needs cupy and a visible GPU")


def test_cuda_queries_answer_without_error():
    available = disttorch.cuda.is_available()
    assert isinstance(available, bool)
    assert disttorch.cuda.device_count() >= (1 if available else 0)
    if not available:
        assert disttorch.cuda.device_count() == 0
    disttorch.cuda.manual_seed(3)
    disttorch.cuda.manual_seed_all(3)
    disttorch.cuda.synchronize()


def test_device_objects():
    assert disttorch.device("cuda:1").index == 1
    assert disttorch.device("cuda", 0) == "cuda:0"
    assert disttorch.device("cuda") == disttorch.device("cuda:0")
    assert str(disttorch.device("cuda", 2)) == "cuda:2"
    assert disttorch.device("cpu") != disttorch.device("cuda")
    assert repr(disttorch.device("cpu")) == "device(type='cpu')"


@pytest.mark.skipif(disttorch.cuda.is_available(), reason="checks the CPU-only error")
def test_to_cuda_without_gpu_raises_clear_error():
    t = disttorch.ones(2)
    for move in (lambda: t.to("cuda"), lambda: t.cuda(), lambda: disttorch.zeros(2, device="cuda")):
        with pytest.raises(RuntimeError, match="CUDA is not available.*cpu"):
            move()
    with pytest.raises(RuntimeError, match="not available"):
        disttorch.cuda.current_device()


@requires_gpu
def test_cupy_round_trip():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    gpu = disttorch.tensor(data).to("cuda")
    assert gpu.device == disttorch.device("cuda:0") and gpu.is_cuda
    back = gpu.cpu()
    assert back.device == disttorch.device("cpu")
    np.testing.assert_array_equal(back.numpy(), data)
    assert gpu.tolist() == data.tolist()


@requires_gpu
def test_op_forward_and_backward_on_cuda():
    x_cpu = disttorch.randn(4, 3, requires_grad=True)
    w_cpu = disttorch.randn(3, 2, requires_grad=True)
    x = x_cpu.detach().cuda().requires_grad_()
    w = w_cpu.detach().cuda().requires_grad_()
    loss = (x @ w).relu().log_softmax(1).sum()
    loss.backward()
    (x_cpu @ w_cpu).relu().log_softmax(1).sum().backward()
    assert x.grad.device == disttorch.device("cuda:0")
    np.testing.assert_allclose(x.grad.cpu().numpy(), x_cpu.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w.grad.cpu().numpy(), w_cpu.grad.numpy(), rtol=1e-4, atol=1e-5)


@requires_gpu
def test_gradient_flows_back_across_devices():
    x = disttorch.ones(3, requires_grad=True)
    (x.cuda() * 2).sum().backward()
    assert x.grad.device == disttorch.device("cpu")
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


@requires_gpu
def test_device_mismatch_names_both_devices():
    with pytest.raises(RuntimeError, match="cuda:0 and cpu|cpu and cuda:0"):
        disttorch.ones(2, device="cuda") + disttorch.ones(2)
    with pytest.raises(RuntimeError, match="same device"):
        disttorch.ones(2, 2, device="cuda") @ disttorch.ones(2, 2)
