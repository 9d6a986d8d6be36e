"""Convolution layers against PyTorch: outputs and input/parameter gradients, float64, weights copied."""
import numpy as np
import pytest

import disttorch
from disttorch.autograd import gradcheck
from disttorch.nn.functional import conv as F
from disttorch.nn.modules import conv as layers

torch = pytest.importorskip("torch")


def _copy_from_torch(ours, theirs):
    ours.load_state_dict({k: disttorch.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})


def _compare_layer(name, args, kwargs, input_shape, seed=0, **forward_kwargs):
    """Run the same layer in both libraries on the same float64 input; compare output and all grads."""
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(layers, name)(*args, **kwargs).double()
    _copy_from_torch(ours, theirs)
    x = np.random.default_rng(seed).standard_normal(input_shape)
    tx = torch.tensor(x, requires_grad=True)
    dx = disttorch.tensor(x, requires_grad=True)
    expected = theirs(tx, **forward_kwargs)
    got = ours(dx, **forward_kwargs)
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    probe = np.random.default_rng(seed + 1).standard_normal(tuple(expected.shape))
    expected.backward(torch.tensor(probe))
    got.backward(disttorch.tensor(probe))
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    ours_params = dict(ours.named_parameters())
    for key, param in theirs.named_parameters():
        np.testing.assert_allclose(ours_params[key].grad.numpy(), param.grad.numpy(), rtol=1e-10, atol=1e-10,
                                   err_msg=key)


CONV2D_CASES = [
    dict(),
    dict(padding=1),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(0, 2)),
    dict(dilation=2, padding=2),
    dict(dilation=(1, 2), stride=(1, 2)),
    dict(groups=2, padding=1),
    dict(groups=4, bias=False),
    dict(padding="same"),
    dict(padding="same", dilation=2),
    dict(padding="valid", stride=3),
]


@pytest.mark.parametrize("kwargs", CONV2D_CASES, ids=str)
def test_conv2d_matches_torch(kwargs):
    _compare_layer("Conv2d", (4, 8, 3), kwargs, (2, 4, 9, 8))


def test_conv2d_rectangular_even_kernel_same_padding():
    _compare_layer("Conv2d", (2, 6, (4, 2)), dict(padding="same", dilation=(1, 3)), (3, 2, 7, 9))


def test_conv2d_unbatched_input():
    _compare_layer("Conv2d", (3, 5, 2), dict(stride=2), (3, 6, 7))


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1), dict(dilation=2, groups=2),
                                    dict(padding="same")], ids=str)
def test_conv1d_matches_torch(kwargs):
    _compare_layer("Conv1d", (4, 6, 3), kwargs, (2, 4, 11))


CONV_TRANSPOSE_CASES = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(3, 2), padding=(1, 0), output_padding=(2, 1)),
    dict(dilation=2, padding=1),
    dict(groups=2, stride=2, bias=False),
]


@pytest.mark.parametrize("kwargs", CONV_TRANSPOSE_CASES, ids=str)
def test_conv_transpose2d_matches_torch(kwargs):
    _compare_layer("ConvTranspose2d", (4, 6, 3), kwargs, (2, 4, 5, 6))


def test_conv_transpose2d_output_size():
    _compare_layer("ConvTranspose2d", (2, 3, 3), dict(stride=2, padding=1), (1, 2, 4, 4), output_size=(8, 8))


def test_conv_transpose1d_matches_torch():
    _compare_layer("ConvTranspose1d", (3, 2, 4), dict(stride=2, padding=1), (2, 3, 7))


def test_conv2d_gradcheck():
    rng = np.random.default_rng(3)
    x = disttorch.tensor(rng.standard_normal((1, 2, 5, 4)), requires_grad=True)
    w = disttorch.tensor(rng.standard_normal((4, 1, 2, 3)), requires_grad=True)
    b = disttorch.tensor(rng.standard_normal(4), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
                     (x, w, b))
    # Stride 1 takes the padded-grid input gradient; an even kernel makes 'same' padding asymmetric.
    x = disttorch.tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding="same", dilation=(2, 1), groups=2), (x, w, b))


@pytest.mark.parametrize("chunk", [1, 216, 5184, 1 << 17], ids=["per-sample", "uneven-weight-chunks",
                                                                 "uneven-input-chunks", "one-chunk"])
def test_backward_in_chunks_of_samples(monkeypatch, chunk):
    # Per sample, the weight gradient's products take 108 elements (both layers below) and Conv2d's
    # input-gradient columns 2592: 216 and 5184 split a batch of 5 into 2 + 2 + 1 for one or the other.
    monkeypatch.setattr(F, "_CHUNK_ELEMENTS", chunk)
    _compare_layer("Conv2d", (4, 6, 3), dict(groups=2, padding=1), (5, 4, 6, 7))
    _compare_layer("ConvTranspose2d", (4, 6, 3), dict(groups=2, stride=2), (5, 4, 4, 5))


def test_conv_transpose2d_gradcheck():
    rng = np.random.default_rng(4)
    x = disttorch.tensor(rng.standard_normal((1, 2, 3, 3)), requires_grad=True)
    w = disttorch.tensor(rng.standard_normal((2, 2, 3, 2)), requires_grad=True)
    b = disttorch.tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
                     (x, w, b))


def test_float32_stays_float32():
    conv = layers.Conv2d(1, 4, 3, padding=1)
    x = disttorch.randn(2, 1, 6, 6, requires_grad=True)
    out = conv(x)
    out.sum().backward()
    assert out.dtype == disttorch.float32
    assert x.grad.dtype == disttorch.float32 and conv.weight.grad.dtype == disttorch.float32


def test_default_init_bounds_and_state_dict_keys():
    conv = layers.Conv2d(3, 16, 5)
    bound = 1 / np.sqrt(3 * 25)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert tuple(conv.weight.shape) == (16, 3, 5, 5)
    assert np.abs(conv.weight.detach().numpy()).max() <= bound
    assert np.abs(conv.weight.detach().numpy()).max() > bound * 0.9
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    transposed = layers.ConvTranspose2d(3, 8, 3, groups=1)
    assert tuple(transposed.weight.shape) == (3, 8, 3, 3)


@pytest.mark.parametrize("name,args,kwargs", [
    ("Conv2d", (1, 32, 3), dict(padding=1)),
    ("Conv2d", (4, 8, (3, 2)), dict(stride=2, dilation=2, groups=2, bias=False)),
    ("Conv2d", (4, 8, 3), dict(padding="same")),
    ("Conv1d", (4, 8, 3), dict(padding=1, stride=2)),
    ("ConvTranspose2d", (4, 8, 3), dict(stride=2, output_padding=1, groups=2)),
])
def test_repr_matches_torch(name, args, kwargs):
    assert repr(getattr(layers, name)(*args, **kwargs)) == repr(getattr(torch.nn, name)(*args, **kwargs))


def test_channel_mismatch_names_both_sides():
    conv = layers.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError, match=r"expected input\[2, 5, 8, 8\] to have 3 channels, but got 5"):
        conv(disttorch.randn(2, 5, 8, 8))


def test_bad_arguments_raise_torch_exception_types():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        layers.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided convolutions"):
        layers.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        layers.Conv2d(1, 1, 5)(disttorch.randn(1, 1, 3, 3))
    with pytest.raises(RuntimeError, match="Expected 3D \\(unbatched\\) or 4D \\(batched\\) input to conv2d"):
        layers.Conv2d(1, 1, 1)(disttorch.randn(1, 1))
