"""nn.utils: gradient clipping and parameter/vector conversion, against PyTorch."""
import numpy as np
import pytest

import disttorch
from disttorch import nn
from disttorch.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)


def _model_with_grads(lib, scale):
    lib.manual_seed(0)
    model = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Linear(4, 2))
    for i, p in enumerate(model.parameters()):
        p.grad = lib.tensor(np.arange(p.numel(), dtype=np.float32).reshape(tuple(p.shape)) * scale - i)
    return model


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    ours, ref = _model_with_grads(disttorch, 0.3), _model_with_grads(torch, 0.3)
    total = clip_grad_norm_(ours.parameters(), 1.5, norm_type=norm_type)
    total_ref = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.5, norm_type=norm_type)
    assert total.item() == pytest.approx(total_ref.item(), rel=1e-5)
    for p, q in zip(ours.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_leaves_small_grads_and_flags_nonfinite():
    p = nn.Parameter(disttorch.ones(2))
    p.grad = disttorch.tensor([0.1, 0.1])
    clip_grad_norm_(p, 10.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.1, 0.1])
    p.grad = disttorch.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([nn.Parameter(disttorch.ones(1))], 1.0).item() == 0.0


def test_clip_grad_value():
    model = _model_with_grads(disttorch, 1.0)
    clip_grad_value_(model.parameters(), 2.5)
    assert all(float(p.grad.abs().max()) <= 2.5 for p in model.parameters())


def test_parameters_vector_round_trip():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    vec = parameters_to_vector(model.parameters())
    assert vec.shape == (sum(p.numel() for p in model.parameters()),)
    vector_to_parameters(disttorch.arange(vec.numel(), dtype=disttorch.float32), model.parameters())
    assert model[0].weight.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert model[1].bias.tolist() == [10.0]
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        vector_to_parameters([1.0], model.parameters())
