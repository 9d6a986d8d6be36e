"""nn.init: gains, fans, and the statistics of every initialiser; all run without recording grads."""
import math

import numpy as np
import pytest

import disttorch
from disttorch import nn
from disttorch.nn import init


def _param(*shape):
    return nn.Parameter(disttorch.empty(*shape))


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name in ("linear", "conv2d", "sigmoid", "tanh", "relu", "selu"):
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    for slope in (None, 0.2, 1):
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swishy")


def test_fan_in_and_fan_out():
    assert init._calculate_fan_in_and_fan_out(disttorch.empty(8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(disttorch.empty(3))


def test_initialisers_run_on_parameters_without_grad_errors():
    p = _param(200, 300)
    for fn in (init.uniform_, init.normal_, init.zeros_, init.ones_, init.xavier_uniform_, init.xavier_normal_,
               init.kaiming_uniform_, init.kaiming_normal_, init.orthogonal_, init.trunc_normal_, init.eye_):
        assert fn(p) is p
        assert p.grad_fn is None and p.requires_grad


def test_distribution_statistics():
    p = _param(400, 500)
    init.uniform_(p, -2, 3)
    values = p.detach().numpy()
    assert values.min() >= -2 and values.max() <= 3 and abs(values.mean() - 0.5) < 0.05
    init.normal_(p, 1.0, 0.5)
    assert abs(p.detach().numpy().mean() - 1.0) < 0.01 and abs(p.detach().numpy().std() - 0.5) < 0.01
    init.constant_(p, 0.25)
    assert np.all(p.detach().numpy() == 0.25)
    init.xavier_uniform_(p, gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / 900)
    assert np.abs(p.detach().numpy()).max() <= bound
    assert abs(p.detach().numpy().std() - bound / math.sqrt(3)) < 0.02 * bound
    init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
    assert abs(p.detach().numpy().std() - math.sqrt(2.0 / 400)) < 0.02 * math.sqrt(2.0 / 400)
    init.kaiming_uniform_(p, a=math.sqrt(5))
    assert np.abs(p.detach().numpy()).max() <= 1 / math.sqrt(500)
    init.trunc_normal_(p, mean=0.0, std=1.0, a=-0.5, b=1.0)
    assert p.detach().numpy().min() >= -0.5 and p.detach().numpy().max() <= 1.0


def test_orthogonal_and_eye():
    for shape in ((6, 4), (4, 6), (3, 2, 2)):
        p = _param(*shape)
        init.orthogonal_(p, gain=1.5)
        flat = p.detach().numpy().reshape(shape[0], -1)
        gram = flat @ flat.T if shape[0] <= flat.shape[1] else flat.T @ flat
        np.testing.assert_allclose(gram, 2.25 * np.eye(gram.shape[0]), atol=1e-5)
    p = _param(3, 4)
    init.eye_(p)
    np.testing.assert_array_equal(p.detach().numpy(), np.eye(3, 4))
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        init.eye_(_param(2, 2, 2))


def test_generator_makes_init_reproducible():
    a, b = _param(5, 5), _param(5, 5)
    init.normal_(a, generator=disttorch.Generator().manual_seed(3))
    init.normal_(b, generator=disttorch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_manual_seed_makes_layers_reproducible():
    disttorch.manual_seed(7)
    first = nn.Linear(4, 4).weight.detach().numpy().copy()
    disttorch.manual_seed(7)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight.detach().numpy(), first)


def test_init_keeps_dtype():
    p = nn.Parameter(disttorch.empty(3, 3, dtype=disttorch.float64))
    init.xavier_normal_(p)
    assert p.dtype == disttorch.float64
