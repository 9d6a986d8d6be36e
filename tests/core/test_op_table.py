"""Every row of the op table: forward and gradients against PyTorch, and a finite-difference gradient check."""
import numpy as np
import pytest

import disttorch
from disttorch.autograd import gradcheck

from core_samples import SAMPLES, make_inputs

IDS = [s.name for s in SAMPLES]


def _seeded_inputs(sample, lib):
    return make_inputs(sample, lib, np.random.default_rng(sum(map(ord, sample.name))))


def _as_numpy(t):
    return t.detach().numpy()


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_forward_and_grads_match_torch(sample):
    torch = pytest.importorskip("torch")
    ours_in = _seeded_inputs(sample, disttorch)
    ref_in = _seeded_inputs(sample, torch)
    ours = sample.fn(disttorch, *ours_in)
    ref = sample.fn(torch, *ref_in)
    assert tuple(ours.shape) == tuple(ref.shape)
    assert ours.dtype.name == str(ref.dtype).removeprefix("torch.")
    np.testing.assert_allclose(_as_numpy(ours), _as_numpy(ref), rtol=1e-7, atol=1e-10)

    probe = np.random.default_rng(1).standard_normal(tuple(ref.shape))
    ours.backward(disttorch.tensor(probe))
    ref.backward(torch.tensor(probe))
    for i, (a, b) in enumerate(zip(ours_in, ref_in)):
        if isinstance(b, torch.Tensor) and b.requires_grad:
            assert a.grad is not None, f"input {i} got no gradient"
            assert a.grad.shape == a.shape
            np.testing.assert_allclose(_as_numpy(a.grad), _as_numpy(b.grad), rtol=1e-6, atol=1e-9,
                                       err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_gradcheck(sample):
    inputs = _seeded_inputs(sample, disttorch)
    assert gradcheck(lambda *xs: sample.fn(disttorch, *xs), inputs)


def test_gradcheck_catches_a_wrong_backward():
    class WrongSquare(disttorch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x  # should be 2 * g * x

    x = disttorch.tensor(np.linspace(0.5, 1.5, 4), requires_grad=True)
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        gradcheck(WrongSquare.apply, (x,))
    assert not gradcheck(WrongSquare.apply, (x,), raise_exception=False)


def test_gradcheck_requires_float64():
    x = disttorch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        gradcheck(lambda t: t * 2, (x,))
