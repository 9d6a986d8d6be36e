"""RNN, LSTM and GRU against PyTorch: outputs, final states and every gradient, float64, weights copied."""
import numpy as np
import pytest

import disttorch
from disttorch import nn
from disttorch.autograd import gradcheck
from disttorch.nn.functional import rnn as rnn_fn

torch = pytest.importorskip("torch")

LAYERS = ["RNN", "LSTM", "GRU"]

CONFIGS = [
    (dict(), (4, 2, 3), False),
    (dict(num_layers=2, bidirectional=True, batch_first=True), (2, 4, 3), True),
    (dict(num_layers=2, bias=False), (4, 2, 3), True),
    (dict(bidirectional=True), (4, 3), True),
]


def _states(name, output):
    return list(output[1]) if name == "LSTM" else [output[1]]


def _initial_state(name, kwargs, input_shape, hidden, rng):
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    if len(input_shape) == 2:
        shape = (layers, hidden)
    else:
        shape = (layers, input_shape[0 if kwargs.get("batch_first") else 1], hidden)
    return [rng.standard_normal(shape) for _ in range(2 if name == "LSTM" else 1)]


def _pack(name, arrays, lib):
    tensors = [lib.tensor(a, requires_grad=True) for a in arrays]
    return tensors, (tuple(tensors) if name == "LSTM" else tensors[0])


def _compare(name, args, kwargs, input_shape, with_state, seed=0):
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(nn, name)(*args, **kwargs).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: disttorch.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_shape)
    tx, dx = torch.tensor(x, requires_grad=True), disttorch.tensor(x, requires_grad=True)
    t_inputs, d_inputs = [tx], [dx]
    t_state = d_state = []
    if with_state:
        arrays = _initial_state(name, kwargs, input_shape, args[1], rng)
        t_state, t_hx = _pack(name, arrays, torch)
        d_state, d_hx = _pack(name, arrays, disttorch)
        t_inputs.append(t_hx)
        d_inputs.append(d_hx)
    expected, got = theirs(*t_inputs), ours(*d_inputs)
    t_loss = d_loss = 0
    for t_out, d_out in zip([expected[0]] + _states(name, expected), [got[0]] + _states(name, got)):
        assert tuple(d_out.shape) == tuple(t_out.shape)
        np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-10)
        probe = rng.standard_normal(tuple(t_out.shape))
        t_loss = t_loss + (t_out * torch.tensor(probe)).sum()
        d_loss = d_loss + (d_out * disttorch.tensor(probe)).sum()
    t_loss.backward()
    d_loss.backward()
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    for t_h, d_h in zip(t_state, d_state):
        np.testing.assert_allclose(d_h.grad.numpy(), t_h.grad.numpy(), rtol=1e-9, atol=1e-10)
    ours_params = dict(ours.named_parameters())
    for key, param in theirs.named_parameters():
        np.testing.assert_allclose(ours_params[key].grad.numpy(), param.grad.numpy(), rtol=1e-9, atol=1e-10,
                                   err_msg=key)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: str(c[0]) + str(c[1]))
@pytest.mark.parametrize("name", LAYERS)
def test_matches_torch(name, config):
    kwargs, input_shape, with_state = config
    _compare(name, (3, 5), kwargs, input_shape, with_state)


def test_relu_rnn_matches_torch():
    _compare("RNN", (3, 5), dict(nonlinearity="relu", num_layers=2, bidirectional=True), (4, 2, 3), True)


@pytest.mark.parametrize("name", LAYERS)
def test_state_dict_keys_shapes_and_init(name):
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[name]
    ours = getattr(nn, name)(10, 20, num_layers=2, bidirectional=True)
    theirs = getattr(torch.nn, name)(10, 20, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert tuple(ours.state_dict()[key].shape) == tuple(value.shape), key
    assert tuple(ours.weight_ih_l1_reverse.shape) == (gates * 20, 40)
    bound = 1 / np.sqrt(20)
    values = np.concatenate([p.detach().numpy().ravel() for p in ours.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.95 * bound


@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=2, dropout=0.5), dict(bias=False, batch_first=True),
                                    dict(bidirectional=True)], ids=str)
def test_repr_matches_torch(kwargs):
    for name in LAYERS:
        assert repr(getattr(nn, name)(3, 4, **kwargs)) == repr(getattr(torch.nn, name)(3, 4, **kwargs))


def test_dropout_between_layers_only_in_training():
    lstm = nn.LSTM(4, 6, num_layers=2, dropout=0.5)
    x = disttorch.randn(5, 3, 4)
    lstm.eval()
    first, _ = lstm(x)
    second, _ = lstm(x)
    np.testing.assert_array_equal(first.detach().numpy(), second.detach().numpy())
    lstm.train()
    disttorch.manual_seed(0)
    dropped, _ = lstm(x)
    assert not np.allclose(dropped.detach().numpy(), first.detach().numpy())


def test_lstm_cell_state_gradient_alone():
    """c_n is packed into the layer's single output; its gradient must reach inputs and weights."""
    torch.manual_seed(1)
    theirs = torch.nn.LSTM(2, 3).double()
    ours = nn.LSTM(2, 3).double()
    ours.load_state_dict({k: disttorch.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((4, 1, 2))
    tx, dx = torch.tensor(x, requires_grad=True), disttorch.tensor(x, requires_grad=True)
    theirs(tx)[1][1].sum().backward()
    ours(dx)[1][1].sum().backward()
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def _weights(rng, gates, inputs, hidden):
    shapes = [(gates * hidden, inputs), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,)]
    return [disttorch.tensor(rng.standard_normal(s) * 0.5, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("reverse", [False, True])
def test_layer_functions_gradcheck(reverse):
    rng = np.random.default_rng(2)
    x = disttorch.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    h0 = disttorch.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    c0 = disttorch.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    lstm_weights = _weights(rng, 4, 2, 2)
    assert gradcheck(lambda x, a, b, c, d, h, s: rnn_fn.LSTMLayer.apply(x, a, b, c, d, h, s, reverse),
                     (x, *lstm_weights, h0, c0))
    gru_weights = _weights(rng, 3, 2, 2)
    assert gradcheck(lambda x, a, b, c, d, h: rnn_fn.GRULayer.apply(x, a, b, c, d, h, reverse),
                     (x, *gru_weights, h0))
    rnn_weights = _weights(rng, 1, 2, 2)
    assert gradcheck(lambda x, a, b, c, d, h: rnn_fn.RNNTanhReluLayer.apply(x, a, b, c, d, h, reverse, "tanh"),
                     (x, *rnn_weights, h0))


def test_float32_stays_float32():
    gru = nn.GRU(3, 4, batch_first=True)
    out, h_n = gru(disttorch.randn(2, 5, 3))
    out.sum().backward()
    assert out.dtype == disttorch.float32 and gru.weight_hh_l0.grad.dtype == disttorch.float32


def test_errors_name_expected_and_actual():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 3, got 5"):
        lstm(disttorch.randn(2, 1, 5))
    bad = (disttorch.zeros(1, 1, 4), disttorch.zeros(2, 1, 4))
    with pytest.raises(RuntimeError, match="Expected hidden size \\(2, 1, 4\\), got \\[1, 1, 4\\]"):
        lstm(disttorch.randn(2, 1, 3), bad)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.GRU(3, 4, dropout=1.5)
