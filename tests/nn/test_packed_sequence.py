"""PackedSequence, pack/pad helpers and the recurrent layers on packed input, compared with torch."""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

LENGTHS = [3, 5, 1, 5, 2]


def _padded(seed=0, steps=5, batch=len(LENGTHS), features=3):
    return np.random.default_rng(seed).standard_normal((steps, batch, features))


def _assert_close(ours, theirs, rtol=1e-10):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_pack_and_pad_round_trip_match_torch(batch_first, enforce_sorted):
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    values = _padded()
    if batch_first:
        values = values.transpose(1, 0, 2).copy()
    results = {}
    for lib in (disttorch, torch):
        rnn_utils = lib.nn.utils.rnn
        x = lib.tensor(values, requires_grad=True)
        packed = rnn_utils.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
        padded, out_lengths = rnn_utils.pad_packed_sequence(packed, batch_first=batch_first, padding_value=-2.0,
                                                            total_length=6)
        (padded * padded).sum().backward()
        results[lib] = packed, padded, out_lengths, x.grad
    (ours, padded_o, lengths_o, grad_o), (theirs, padded_t, lengths_t, grad_t) = results[disttorch], results[torch]
    assert type(ours).__name__ == "PackedSequence" and ours._fields == theirs._fields
    _assert_close(ours.data, theirs.data)
    assert ours.batch_sizes.tolist() == theirs.batch_sizes.tolist()
    for name in ("sorted_indices", "unsorted_indices"):
        mine, reference = getattr(ours, name), getattr(theirs, name)
        assert (mine is None) == (reference is None)
        assert mine is None or mine.tolist() == reference.tolist()
    _assert_close(padded_o, padded_t)
    assert lengths_o.tolist() == lengths_t.tolist() and str(lengths_o.dtype) == str(lengths_t.dtype)
    _assert_close(grad_o, grad_t)


def test_pack_sequence_and_unpack_sequence():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((n, 2)) for n in LENGTHS]
    ours = disttorch.nn.utils.rnn.pack_sequence([disttorch.tensor(a) for a in arrays], enforce_sorted=False)
    theirs = torch.nn.utils.rnn.pack_sequence([torch.tensor(a) for a in arrays], enforce_sorted=False)
    _assert_close(ours.data, theirs.data)
    for a, b in zip(disttorch.nn.utils.rnn.unpack_sequence(ours), arrays):
        np.testing.assert_array_equal(a.numpy(), b)


def _errors(lib):
    rnn_utils = lib.nn.utils.rnn
    x = lib.zeros(4, 3, 2)
    packed = rnn_utils.pack_padded_sequence(x, [4, 2, 1])
    return [
        lambda: rnn_utils.pack_padded_sequence(x, [2, 4, 1]),
        lambda: rnn_utils.pack_padded_sequence(x, [0, 2, 1], enforce_sorted=False),
        lambda: rnn_utils.pad_packed_sequence(packed, total_length=3),
    ]


@pytest.mark.parametrize("index", range(3))
def test_errors_match_torch(index):
    with pytest.raises(Exception) as theirs:
        _errors(torch)[index]()
    with pytest.raises(type(theirs.value)) as ours:
        _errors(disttorch)[index]()
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("name,kwargs", [
    ("LSTM", dict(num_layers=2)),
    ("LSTM", dict(bidirectional=True, batch_first=True)),
    ("GRU", dict(bidirectional=True, num_layers=2)),
    ("RNN", dict(nonlinearity="relu", batch_first=True)),
])
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_layers_on_packed_input_match_torch(name, kwargs, with_state):
    batch_first = kwargs.get("batch_first", False)
    values = _padded(2)
    if batch_first:
        values = values.transpose(1, 0, 2).copy()
    directions = 2 if kwargs.get("bidirectional") else 1
    state_shape = (kwargs.get("num_layers", 1) * directions, len(LENGTHS), 4)
    states = np.random.default_rng(3).standard_normal((2,) + state_shape)
    torch.manual_seed(0)
    theirs = getattr(torch.nn, name)(3, 4, **kwargs).double()
    ours = getattr(disttorch.nn, name)(3, 4, **kwargs).double()
    ours.load_state_dict({k: disttorch.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    results = {}
    for lib, layer in ((disttorch, ours), (torch, theirs)):
        x = lib.tensor(values, requires_grad=True)
        packed = lib.nn.utils.rnn.pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False)
        hx = None
        if with_state:
            hx = lib.tensor(states[0], requires_grad=True)
            hx = (hx, lib.tensor(states[1])) if name == "LSTM" else hx
        output, final = layer(packed, hx)
        assert type(output).__name__ == "PackedSequence"
        padded, _ = lib.nn.utils.rnn.pad_packed_sequence(output, batch_first=batch_first)
        finals = final if isinstance(final, tuple) else (final,)
        loss = (padded * padded).sum() + sum((f * f * (i + 2)).sum() for i, f in enumerate(finals))
        loss.backward()
        results[lib] = (padded, finals, x.grad, layer.weight_hh_l0.grad,
                        (hx[0] if name == "LSTM" else hx).grad if with_state else None)
    for ours_value, their_value in zip(results[disttorch][:1] + results[disttorch][2:],
                                       results[torch][:1] + results[torch][2:]):
        if their_value is not None:
            _assert_close(ours_value, their_value, rtol=1e-8)
    for ours_final, their_final in zip(results[disttorch][1], results[torch][1]):
        _assert_close(ours_final, their_final, rtol=1e-8)
