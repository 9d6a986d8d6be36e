"""GradScaler: disabled-but-working for 'cuda' without a GPU, and the CPU scaler's arithmetic, as torch."""
import warnings

import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")


def _make_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = fn()
    return scaler, [(w.category.__name__, str(w.message)) for w in caught]


@pytest.mark.skipif(disttorch.cuda.is_available(), reason="checks the no-GPU behaviour")
@pytest.mark.parametrize("make", [
    lambda lib: lib.amp.GradScaler(),
    lambda lib: lib.cuda.amp.GradScaler(),
    lambda lib: lib.amp.GradScaler("cuda", enabled=False),
], ids=["amp", "cuda_amp", "disabled"])
def test_cuda_scaler_without_gpu_disables_itself_like_torch(make):
    ours, our_warnings = _make_warnings(lambda: make(disttorch))
    ref, ref_warnings = _make_warnings(lambda: make(torch))
    assert our_warnings == ref_warnings
    assert ours.is_enabled() is ref.is_enabled() is False
    assert ours.get_scale() == ref.get_scale() == 1.0
    assert ours.state_dict() == ref.state_dict() == {}

    w = disttorch.nn.Parameter(disttorch.ones(2))
    opt = disttorch.optim.SGD([w], lr=0.5)
    loss = (w * 3).sum()
    assert ours.scale(loss) is loss
    loss.backward()
    ours.unscale_(opt)
    ours.step(opt)
    ours.update()
    assert w.tolist() == [-0.5, -0.5]
    ours.load_state_dict({})


def _train(lib, grads):
    w = lib.nn.Parameter(lib.ones(3))
    opt = lib.optim.SGD([w], lr=0.1)
    scaler = lib.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    history = []
    for g in grads:
        opt.zero_grad()
        scaler.scale((w * lib.tensor(g)).sum()).backward()
        if len(history) == 1:
            scaler.unscale_(opt)  # explicit unscale (gradient clipping would go here) must not unscale twice
        scaler.step(opt)
        scaler.update()
        history.append((scaler.get_scale(), w.detach().numpy().copy()))
    return history, scaler.state_dict()


def test_cpu_scaler_scales_skips_and_grows_like_torch():
    grads = [np.ones(3), np.full(3, 2.0), np.array([np.inf, 1.0, 1.0]), np.ones(3), np.ones(3), np.ones(3)]
    ours, our_state = _train(disttorch, grads)
    ref, ref_state = _train(torch, grads)
    assert our_state == ref_state
    for (our_scale, our_w), (ref_scale, ref_w) in zip(ours, ref):
        assert our_scale == ref_scale
        np.testing.assert_allclose(our_w, ref_w, rtol=1e-6)


def test_scaler_misuse_errors():
    w = disttorch.nn.Parameter(disttorch.ones(2))
    opt = disttorch.optim.SGD([w], lr=0.1)
    scaler = disttorch.amp.GradScaler("cpu")
    scaler.scale(w.sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    scaler.update()
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=lambda: None)
    with pytest.raises(RuntimeError, match="empty"):
        scaler.load_state_dict({})
