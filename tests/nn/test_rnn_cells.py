"""RNNCell, LSTMCell and GRUCell against torch: parameter names, shapes and init range, forward values and
gradients (batched and unbatched, with and without a given state); Dropout2d/3d's warnings as torch's."""
import warnings

import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")

CELLS = [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("RNNCell", {"bias": False}),
         ("LSTMCell", {}), ("GRUCell", {}), ("GRUCell", {"bias": False})]


def _pair(name, kwargs):
    ours = getattr(disttorch.nn, name)(3, 5, **kwargs).double()
    ref = getattr(torch.nn, name)(3, 5, **kwargs).double()
    ours.load_state_dict({k: disttorch.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    return ours, ref


@pytest.mark.parametrize("name,kwargs", CELLS)
def test_parameters_match_torch(name, kwargs):
    ours = getattr(disttorch.nn, name)(3, 5, **kwargs)
    ref = getattr(torch.nn, name)(3, 5, **kwargs)
    assert [(k, tuple(v.shape)) for k, v in ours.named_parameters()] == [
        (k, tuple(v.shape)) for k, v in ref.named_parameters()]
    bound = 1 / np.sqrt(5)
    assert all(float(abs(p).max()) <= bound for p in ours.parameters())
    assert repr(ours) == repr(ref)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("name,kwargs", CELLS)
def test_forward_and_gradients_match_torch(name, kwargs, batched, with_state):
    ours, ref = _pair(name, kwargs)
    rng = np.random.default_rng(0)
    shape = (4,) if batched else ()
    x = rng.standard_normal(shape + (3,))
    states = [rng.standard_normal(shape + (5,)) for _ in range(2 if name == "LSTMCell" else 1)]
    outputs = []
    for lib, cell in ((disttorch, ours), (torch, ref)):
        inp = lib.tensor(x, requires_grad=True)
        hx = None
        if with_state:
            hx = tuple(lib.tensor(s) for s in states)
            hx = hx if name == "LSTMCell" else hx[0]
        out = cell(inp, hx)
        out = out if isinstance(out, tuple) else (out,)
        total = sum(((o * (i + 1)) ** 2).sum() for i, o in enumerate(out))
        total.backward()
        outputs.append(([o.detach().numpy() for o in out], inp.grad.numpy(),
                        {k: p.grad.numpy() for k, p in cell.named_parameters()}))
    (values, x_grad, p_grads), (ref_values, ref_x_grad, ref_p_grads) = outputs
    for v, r in zip(values, ref_values):
        np.testing.assert_allclose(v, r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x_grad, ref_x_grad, rtol=1e-9, atol=1e-12)
    for k in ref_p_grads:
        np.testing.assert_allclose(p_grads[k], ref_p_grads[k], rtol=1e-9, atol=1e-12)


def test_cell_input_rank_is_checked():
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D"):
        disttorch.nn.GRUCell(3, 2)(disttorch.ones(2, 2, 3))


def _warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught]


@pytest.mark.parametrize("layer,shape", [("Dropout2d", (3, 4, 5)), ("Dropout2d", (2, 3)), ("Dropout2d", (2, 3, 4, 5)),
                                         ("Dropout2d", (2, 3, 2, 2, 2)), ("Dropout3d", (3, 4, 5)),
                                         ("Dropout3d", (3, 4, 5, 6)), ("Dropout3d", (2, 3, 4, 5, 6))])
def test_channel_dropout_warns_like_torch_and_drops_whole_channels(layer, shape):
    out, our_warnings = _warnings(lambda: getattr(disttorch.nn, layer)(0.5)(disttorch.ones(*shape)))
    _, ref_warnings = _warnings(lambda: getattr(torch.nn, layer)(0.5)(torch.ones(*shape)))
    assert our_warnings == ref_warnings
    assert out.shape == shape
    # torch's mask: one draw per (N, C) for Dropout2d; Dropout3d treats a 4-D input as one unbatched sample.
    per_mask = shape[:2] if layer == "Dropout2d" or len(shape) == 5 else shape[:1]
    grouped = out.numpy().reshape(int(np.prod(per_mask)), -1)
    assert all(len(set(row.tolist())) == 1 for row in grouped)
