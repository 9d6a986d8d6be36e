"""Layers against PyTorch: same state_dict keys, outputs and parameter gradients (float64), repr strings."""
import numpy as np
import pytest
from nn_testing import assert_close, assert_same_grads, pair_inputs, torch_state_to_ours

import disttorch
from disttorch import nn

torch = pytest.importorskip("torch")

# (name, constructor taking the nn namespace, input shape)
LAYERS = [
    ("linear", lambda m: m.Linear(5, 3), (4, 5)),
    ("linear_3d_input", lambda m: m.Linear(5, 3), (2, 4, 5)),
    ("linear_1d_input", lambda m: m.Linear(5, 3), (5,)),
    ("linear_no_bias", lambda m: m.Linear(5, 3, bias=False), (4, 5)),
    ("relu", lambda m: m.ReLU(), (4, 6)),
    ("leaky_relu", lambda m: m.LeakyReLU(0.2), (4, 6)),
    ("elu", lambda m: m.ELU(alpha=0.7), (4, 6)),
    ("selu", lambda m: m.SELU(), (4, 6)),
    ("celu", lambda m: m.CELU(alpha=0.5), (4, 6)),
    ("gelu", lambda m: m.GELU(), (4, 6)),
    ("gelu_tanh", lambda m: m.GELU(approximate="tanh"), (4, 6)),
    ("silu", lambda m: m.SiLU(), (4, 6)),
    ("mish", lambda m: m.Mish(), (4, 6)),
    ("sigmoid", lambda m: m.Sigmoid(), (4, 6)),
    ("tanh", lambda m: m.Tanh(), (4, 6)),
    ("softmax", lambda m: m.Softmax(dim=1), (4, 6)),
    ("softmin", lambda m: m.Softmin(dim=0), (4, 6)),
    ("log_softmax", lambda m: m.LogSoftmax(dim=-1), (4, 6)),
    ("softplus", lambda m: m.Softplus(beta=2.0, threshold=3.0), (4, 6)),
    ("softsign", lambda m: m.Softsign(), (4, 6)),
    ("logsigmoid", lambda m: m.LogSigmoid(), (4, 6)),
    ("hardtanh", lambda m: m.Hardtanh(-0.5, 0.5), (4, 6)),
    ("relu6", lambda m: m.ReLU6(), (4, 6)),
    ("hardswish", lambda m: m.Hardswish(), (4, 6)),
    ("hardsigmoid", lambda m: m.Hardsigmoid(), (4, 6)),
    ("prelu", lambda m: m.PReLU(3), (4, 3, 5)),
    ("glu", lambda m: m.GLU(), (4, 6)),
    ("softmax2d", lambda m: m.Softmax2d(), (2, 3, 2, 2)),
    ("hardshrink", lambda m: m.Hardshrink(0.7), (4, 6)),
    ("softshrink", lambda m: m.Softshrink(0.3), (4, 6)),
    ("tanhshrink", lambda m: m.Tanhshrink(), (4, 6)),
    ("layer_norm", lambda m: m.LayerNorm(6), (4, 6)),
    ("layer_norm_2d", lambda m: m.LayerNorm([3, 5]), (2, 3, 5)),
    ("layer_norm_no_affine", lambda m: m.LayerNorm(6, elementwise_affine=False), (4, 6)),
    ("group_norm", lambda m: m.GroupNorm(2, 4), (3, 4, 5)),
    ("rms_norm", lambda m: m.RMSNorm([2, 3], eps=1e-6), (4, 2, 3)),
    ("rms_norm_default_eps", lambda m: m.RMSNorm(3), (4, 3)),
    ("batch_norm_1d", lambda m: m.BatchNorm1d(6), (8, 6)),
    ("batch_norm_1d_3d_input", lambda m: m.BatchNorm1d(3), (4, 3, 5)),
    ("batch_norm_2d", lambda m: m.BatchNorm2d(3), (4, 3, 2, 5)),
    ("batch_norm_2d_no_affine", lambda m: m.BatchNorm2d(3, affine=False), (4, 3, 2, 2)),
    ("instance_norm_1d", lambda m: m.InstanceNorm1d(3), (2, 3, 5)),
    ("instance_norm_2d_affine", lambda m: m.InstanceNorm2d(3, affine=True), (2, 3, 4, 4)),
    ("instance_norm_2d_unbatched", lambda m: m.InstanceNorm2d(3, affine=True), (3, 4, 4)),
    ("instance_norm_tracked", lambda m: m.InstanceNorm1d(3, track_running_stats=True), (2, 3, 5)),
    ("flatten", lambda m: m.Flatten(), (2, 3, 4)),
    ("unflatten", lambda m: m.Unflatten(1, (2, 3)), (4, 6)),
    ("identity", lambda m: m.Identity(), (4, 6)),
    ("mlp", lambda m: m.Sequential(m.Linear(6, 8), m.ReLU(), m.Linear(8, 2)), (4, 6)),
]


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[row[0] for row in LAYERS])
def test_layer_matches_torch(name, make, shape):
    ref = make(torch.nn).double()
    ours = make(nn).double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    torch_state_to_ours(ref, ours)
    array = np.random.default_rng(0).standard_normal(shape)
    x, x_ref = pair_inputs(torch, array)
    out, out_ref = ours(x), ref(x_ref)
    assert tuple(out.shape) == tuple(out_ref.shape)
    assert_close(out, out_ref)
    probe = np.random.default_rng(1).standard_normal(tuple(out_ref.shape))
    out.backward(disttorch.tensor(probe))
    out_ref.backward(torch.tensor(probe))
    assert_close(x.grad, x_ref.grad, err_msg="input gradient")
    assert_same_grads(ours, ref)
    for key, value in ref.state_dict().items():
        assert_close(ours.state_dict()[key], value, err_msg=key)


def test_bilinear_matches_torch():
    ref = torch.nn.Bilinear(3, 4, 2).double()
    ours = nn.Bilinear(3, 4, 2).double()
    torch_state_to_ours(ref, ours)
    rng = np.random.default_rng(0)
    a, a_ref = pair_inputs(torch, rng.standard_normal((5, 3)))
    b, b_ref = pair_inputs(torch, rng.standard_normal((5, 4)))
    out, out_ref = ours(a, b), ref(a_ref, b_ref)
    assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    assert_close(a.grad, a_ref.grad)
    assert_close(b.grad, b_ref.grad)
    assert_same_grads(ours, ref)


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_embedding_matches_torch(padding_idx):
    ref = torch.nn.Embedding(10, 4, padding_idx=padding_idx).double()
    ours = nn.Embedding(10, 4, padding_idx=padding_idx).double()
    if padding_idx is not None:
        assert float(ours.weight[padding_idx].abs().sum()) == 0.0
    torch_state_to_ours(ref, ours)
    idx = np.array([[1, 2, 2], [9, 1, 0]])
    out, out_ref = ours(disttorch.tensor(idx)), ref(torch.tensor(idx))
    assert_close(out, out_ref)
    probe = np.random.default_rng(0).standard_normal((2, 3, 4))
    out.backward(disttorch.tensor(probe))
    out_ref.backward(torch.tensor(probe))
    assert_same_grads(ours, ref)


def test_embedding_max_norm_renormalises_looked_up_rows():
    ours = nn.Embedding(5, 3, max_norm=1.0)
    ours(disttorch.tensor([0, 2]))
    norms = np.linalg.norm(ours.weight.detach().numpy(), axis=1)
    assert norms[0] <= 1.0 + 1e-6 and norms[2] <= 1.0 + 1e-6


def test_embedding_rejects_out_of_range_and_float_indices():
    emb = nn.Embedding(4, 2)
    with pytest.raises(IndexError, match="index out of range"):
        emb(disttorch.tensor([4]))
    with pytest.raises(RuntimeError, match="indices"):
        emb(disttorch.tensor([1.0]))


def test_embedding_from_pretrained_is_frozen():
    weights = disttorch.randn(3, 2)
    emb = nn.Embedding.from_pretrained(weights)
    assert not emb.weight.requires_grad
    assert np.array_equal(emb(disttorch.tensor([2])).numpy()[0], weights.numpy()[2])


def test_batch_norm_running_stats_match_torch_over_steps():
    ref = torch.nn.BatchNorm2d(3, momentum=None).double()
    ours = nn.BatchNorm2d(3, momentum=None).double()
    rng = np.random.default_rng(0)
    for _ in range(3):
        array = rng.standard_normal((4, 3, 2, 2)) * 3 + 1
        ours(disttorch.tensor(array))
        ref(torch.tensor(array))
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert_close(ours.state_dict()[key], ref.state_dict()[key], err_msg=key)
    ours.eval()
    ref.eval()
    array = rng.standard_normal((2, 3, 2, 2))
    x, x_ref = pair_inputs(torch, array)
    out, out_ref = ours(x), ref(x_ref)
    assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    assert_close(x.grad, x_ref.grad)
    assert_same_grads(ours, ref)


def test_batch_norm_without_running_stats_uses_batch_stats_in_eval():
    ref = torch.nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    ours = nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight", "bias"]
    array = np.random.default_rng(0).standard_normal((5, 3))
    assert_close(ours(disttorch.tensor(array)), ref(torch.tensor(array)))


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(disttorch.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(disttorch.randn(1, 3))


def test_batch_norm_state_dict_keys():
    assert list(nn.BatchNorm2d(4).state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                                   "num_batches_tracked"]
    assert nn.BatchNorm2d(4).num_batches_tracked.dtype == disttorch.int64


def test_dropout_train_and_eval():
    drop = nn.Dropout(p=0.25)
    x = disttorch.ones(200, 100, requires_grad=True)
    out = drop(x)
    values = out.detach().numpy()
    kept = values != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(values[kept], 1 / 0.75, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), values)
    drop.eval()
    assert drop(x) is x


def test_dropout_extremes_and_validation():
    x = disttorch.randn(10, 10)
    assert float(nn.Dropout(1.0)(x).abs().sum()) == 0.0
    assert nn.Dropout(0.0)(x) is x
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout2d_zeroes_whole_channels():
    out = nn.Dropout2d(0.5)(disttorch.ones(8, 16, 3, 3)).numpy()
    per_channel = out.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(axis=2) | (per_channel == 2.0).all(axis=2))


def test_inplace_relu_modifies_input():
    x = disttorch.tensor([-1.0, 2.0])
    out = nn.ReLU(inplace=True)(x)
    assert out is x and x.tolist() == [0.0, 2.0]


def test_inplace_leaky_relu_keeps_gradient():
    leaf = disttorch.tensor([-1.0, 2.0], requires_grad=True)
    y = leaf * 1
    nn.LeakyReLU(0.1, inplace=True)(y)
    y.sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), [0.1, 1.0])


def test_linear_errors_name_both_shapes():
    with pytest.raises(RuntimeError, match=r"\(2x4 and 5x3\)"):
        nn.Linear(5, 3)(disttorch.randn(2, 4))
    with pytest.raises(RuntimeError, match="same dtype"):
        nn.Linear(5, 3)(disttorch.randn(2, 5).double())


def test_default_inits_follow_pytorch_bounds():
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    w = layer.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    assert np.abs(layer.bias.detach().numpy()).max() <= bound
    emb = nn.Embedding(1000, 50).weight.detach().numpy()
    assert abs(emb.mean()) < 0.02 and abs(emb.std() - 1) < 0.02
    norm = nn.LayerNorm(5)
    assert norm.weight.tolist() == [1.0] * 5 and norm.bias.tolist() == [0.0] * 5


REPRS = [
    lambda m: m.Linear(3, 4),
    lambda m: m.Linear(3, 4, bias=False),
    lambda m: m.ReLU(inplace=True),
    lambda m: m.LeakyReLU(0.2),
    lambda m: m.ELU(),
    lambda m: m.GELU(approximate="tanh"),
    lambda m: m.Softmax(dim=1),
    lambda m: m.Softplus(),
    lambda m: m.Hardtanh(),
    lambda m: m.PReLU(),
    lambda m: m.Dropout(0.3),
    lambda m: m.BatchNorm1d(4),
    lambda m: m.BatchNorm2d(4, momentum=None, affine=False),
    lambda m: m.LayerNorm([4, 5]),
    lambda m: m.GroupNorm(2, 4),
    lambda m: m.RMSNorm(4),
    lambda m: m.InstanceNorm2d(3),
    lambda m: m.CosineSimilarity(),
    lambda m: m.Softshrink(0.3),
    lambda m: m.Softmax2d(),
    lambda m: m.PairwiseDistance(),
    lambda m: m.TripletMarginLoss(),
    lambda m: m.MultiheadAttention(4, 2, kdim=3),
    lambda m: m.Embedding(10, 3, padding_idx=0),
    lambda m: m.Flatten(),
    lambda m: m.Unflatten(1, (2, 3)),
    lambda m: m.Identity(),
    lambda m: m.CrossEntropyLoss(),
    lambda m: m.Bilinear(2, 3, 4),
    lambda m: m.Sequential(m.Linear(2, 3), m.Sequential(m.ReLU(), m.Dropout()), m.Linear(3, 1)),
    lambda m: m.ModuleList([m.Linear(2, 2), m.Linear(2, 2), m.Linear(2, 2), m.ReLU()]),
    lambda m: m.ModuleDict({"a": m.Tanh(), "b": m.Linear(1, 1)}),
    lambda m: m.ModuleList(),
    lambda m: m.ParameterList([m.Parameter(disttorch_or_torch(m).ones(2, 3)), disttorch_or_torch(m).ones(1)]),
    lambda m: m.ParameterDict({"a": m.Parameter(disttorch_or_torch(m).ones(2, 3))}),
    lambda m: m.ParameterDict({"a": disttorch_or_torch(m).ones(2), "b": disttorch_or_torch(m).ones(1)}),
]


def disttorch_or_torch(nn_namespace):
    return disttorch if nn_namespace is nn else torch


@pytest.mark.parametrize("make", REPRS, ids=range(len(REPRS)))
def test_repr_matches_torch(make):
    assert repr(make(nn)) == repr(make(torch.nn))


def test_mlp_learns_xor_with_plain_sgd():
    disttorch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    x = disttorch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = disttorch.tensor([0, 1, 1, 0])
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for _ in range(300):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        first = first if first is not None else loss.item()
        loss.backward()
        with disttorch.no_grad():
            for p in model.parameters():
                p.sub_(p.grad * 0.5)
    assert loss.item() < 0.05 < first
    assert model(x).argmax(dim=1).tolist() == [0, 1, 1, 0]
