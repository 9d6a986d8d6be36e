"""Mixed precision on the CPU, against torch: autocast's output dtypes and values, and its warnings."""
import warnings

import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")


def _mlp(lib):
    lib.manual_seed(0)
    return lib.nn.Sequential(lib.nn.Linear(8, 16), lib.nn.ReLU(), lib.nn.Linear(16, 4))


def _copy_weights(ours, ref):
    ours.load_state_dict({k: disttorch.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})


def test_linear_stack_under_cpu_autocast_matches_torch():
    ours, ref = _mlp(disttorch), _mlp(torch)
    _copy_weights(ours, ref)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    target = np.array([0, 3, 1, 2, 0])
    results = []
    for lib, model in ((disttorch, ours), (torch, ref)):
        with lib.autocast("cpu", dtype=lib.bfloat16):
            logits = model(lib.tensor(x))
            loss = lib.nn.functional.cross_entropy(logits, lib.tensor(target))
        loss.backward()
        results.append((logits, loss, model[0].weight.grad))
    (logits, loss, grad), (ref_logits, ref_loss, ref_grad) = results
    assert logits.dtype is disttorch.bfloat16 and ref_logits.dtype == torch.bfloat16
    assert loss.dtype is disttorch.float32 and grad.dtype is disttorch.float32
    np.testing.assert_allclose(logits.float().detach().numpy(), ref_logits.float().detach().numpy(), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-2)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=5e-2, atol=5e-3)


@pytest.mark.parametrize("op", [
    lambda lib, a, b: a @ b,
    lambda lib, a, b: lib.mm(a, b),
    lambda lib, a, b: lib.nn.functional.linear(a, b.t()),
    lambda lib, a, b: lib.nn.functional.conv2d(a.reshape(1, 1, 4, 4), b[:, :2].reshape(2, 1, 2, 2)),
], ids=["matmul", "mm", "linear", "conv2d"])
def test_lower_precision_ops_round_like_torch(op):
    a = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    b = np.random.default_rng(2).standard_normal((4, 4)).astype(np.float32)
    with disttorch.autocast("cpu"):
        ours = op(disttorch, disttorch.tensor(a), disttorch.tensor(b))
    with torch.autocast("cpu"):
        ref = op(torch, torch.tensor(a), torch.tensor(b))
    assert ours.dtype is disttorch.bfloat16 and ref.dtype == torch.bfloat16
    np.testing.assert_allclose(ours.float().numpy(), ref.float().numpy(), rtol=1e-2, atol=1e-2)


def test_elementwise_ops_and_float64_are_left_alone():
    with disttorch.autocast("cpu"):
        assert (disttorch.ones(2) + 1).dtype is disttorch.float32
        d = disttorch.ones(2, 2, dtype=disttorch.float64)
        assert (d @ d).dtype is disttorch.float64
        assert disttorch.is_autocast_enabled("cpu") and disttorch.get_autocast_dtype("cpu") is disttorch.bfloat16
    assert not disttorch.is_autocast_enabled("cpu")


def test_autocast_nests_and_works_as_a_decorator():
    @disttorch.autocast("cpu")
    def product(a):
        return a @ a

    a = disttorch.ones(2, 2)
    assert product(a).dtype is disttorch.bfloat16
    with disttorch.autocast("cpu"):
        with disttorch.autocast("cpu", enabled=False):
            assert (a @ a).dtype is disttorch.float32
        assert (a @ a).dtype is disttorch.bfloat16


def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [(w.category.__name__, str(w.message)) for w in caught]


def _enter(factory):
    def run():
        with factory():
            pass
    return run


@pytest.mark.skipif(disttorch.cuda.is_available(), reason="checks the no-GPU warnings")
@pytest.mark.parametrize("make", [
    lambda lib: lib.autocast(device_type="cuda"),
    lambda lib: lib.autocast(device_type="cuda", enabled=False),
    lambda lib: lib.cuda.amp.autocast(),
    lambda lib: lib.cpu.amp.autocast(),
    lambda lib: lib.amp.autocast("cpu", dtype=lib.float64),
], ids=["cuda", "cuda_disabled", "cuda_amp", "cpu_amp", "cpu_float64"])
def test_autocast_warnings_match_torch(make):
    assert _warnings_of(_enter(lambda: make(disttorch))) == _warnings_of(_enter(lambda: make(torch)))


def test_unknown_device_type_is_refused():
    with pytest.raises(RuntimeError, match="unsupported autocast device_type"):
        disttorch.autocast("tpu")
