"""Device/runtime introspection that scripts run first: honest CPU answers, flags recorded, torch's shapes."""
import warnings

import pytest

import disttorch
from disttorch.core import backend


def test_backend_flags_are_recorded_and_read_back():
    import disttorch.backends.cudnn as cudnn
    before = (cudnn.benchmark, cudnn.deterministic, disttorch.backends.cuda.matmul.allow_tf32)
    try:
        cudnn.benchmark = True
        cudnn.deterministic = True
        disttorch.backends.cuda.matmul.allow_tf32 = True
        assert disttorch.backends.cudnn.benchmark is True
        assert disttorch.backends.cudnn.deterministic is True
        assert disttorch.backends.cuda.matmul.allow_tf32 is True
    finally:
        cudnn.benchmark, cudnn.deterministic, disttorch.backends.cuda.matmul.allow_tf32 = before


def test_backend_answers_are_honest():
    b = disttorch.backends
    assert b.cudnn.is_available() is False and b.cudnn.version() is None
    assert b.mps.is_available() is False and b.mps.is_built() is False
    assert b.mkldnn.is_available() is False and b.openmp.is_available() is False
    assert b.cuda.is_built() == (backend._cupy is not None)


def test_backend_defaults_match_torch():
    torch = pytest.importorskip("torch")
    ours, ref = disttorch.backends, torch.backends
    assert (ours.cudnn.enabled, ours.cudnn.benchmark, ours.cudnn.deterministic, ours.cudnn.allow_tf32) == (
        ref.cudnn.enabled, ref.cudnn.benchmark, ref.cudnn.deterministic, ref.cudnn.allow_tf32)
    assert ours.cuda.matmul.allow_tf32 == ref.cuda.matmul.allow_tf32
    assert ours.cuda.flash_sdp_enabled() == ref.cuda.flash_sdp_enabled()


def test_accelerator_on_this_machine():
    acc = disttorch.accelerator
    assert acc.is_available() == disttorch.cuda.is_available()
    assert acc.device_count() == disttorch.cuda.device_count()
    if not acc.is_available():
        assert acc.current_accelerator() is None
        with pytest.raises(RuntimeError, match="none is available"):
            acc.current_device_index()
    else:
        assert acc.current_accelerator() == disttorch.device("cuda")


def test_device_selection_boilerplate_lands_on_cpu():
    use_accel = disttorch.accelerator.is_available()
    device = disttorch.accelerator.current_accelerator() if use_accel else disttorch.device("cpu")
    if disttorch.backends.mps.is_available() or disttorch.xpu.is_available():
        pytest.fail("no MPS/XPU backend exists")
    assert disttorch.zeros(2, device=device).device == device


def test_default_device_applies_to_factories():
    assert disttorch.get_default_device() == disttorch.device("cpu")
    disttorch.set_default_device("cpu")
    try:
        assert disttorch.randn(2).device.type == "cpu"
        assert disttorch.get_default_device() == disttorch.device("cpu")
    finally:
        disttorch.set_default_device(None)
    if not disttorch.cuda.is_available():
        return
    disttorch.set_default_device("cuda")
    try:
        assert disttorch.ones(3).is_cuda and disttorch.tensor([1.0]).is_cuda
        assert not disttorch.ones(3, device="cpu").is_cuda
    finally:
        disttorch.set_default_device("cpu")


def test_tensor_backend_properties():
    t = disttorch.zeros(2)
    assert t.is_cpu and not t.is_cuda
    assert not (t.is_xpu or t.is_mps or t.is_meta or t.is_sparse or t.is_quantized or t.is_mkldnn)
    assert t.layout is disttorch.strided and repr(t.layout) == "torch.strided"


def test_runtime_switches_record_and_validate():
    assert disttorch.are_deterministic_algorithms_enabled() is False
    disttorch.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert disttorch.are_deterministic_algorithms_enabled()
        assert disttorch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        disttorch.use_deterministic_algorithms(False)
    assert disttorch.get_float32_matmul_precision() == "highest"
    disttorch.set_float32_matmul_precision("high")
    try:
        assert disttorch.get_float32_matmul_precision() == "high"
    finally:
        disttorch.set_float32_matmul_precision("highest")
    with pytest.raises(RuntimeError):
        disttorch.set_float32_matmul_precision("fastest")
    before = disttorch.get_num_threads()
    disttorch.set_num_threads(3)
    try:
        assert disttorch.get_num_threads() == 3
    finally:
        disttorch._runtime._state["threads"] = None
    assert disttorch.get_num_threads() == before


def test_compile_passes_the_model_through_with_one_note():
    disttorch._runtime._state["compile_noted"] = False
    model = disttorch.nn.Linear(3, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert disttorch.compile(model) is model
        assert disttorch.compile(model, mode="max-autotune") is model
    assert len([w for w in caught if "eagerly" in str(w.message)]) == 1

    @disttorch.compile(fullgraph=True)
    def double(x):
        return x * 2

    assert double(disttorch.ones(2)).tolist() == [2.0, 2.0]


def test_cpu_and_cuda_device_modules():
    assert disttorch.cpu.is_available() and disttorch.cpu.device_count() == 1
    assert disttorch.cuda.memory_allocated() >= 0
    disttorch.cuda.empty_cache()
    if not disttorch.cuda.is_available():
        assert disttorch.cuda.memory_allocated() == 0
        assert disttorch.cuda.is_bf16_supported() is False
