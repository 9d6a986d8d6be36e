"""Graph size and memory: a very deep graph backpropagates without recursion, and graphs are freed."""
import gc
import os
import sys

import numpy as np
import pytest

import disttorch


@pytest.mark.timeout(60)
def test_chain_of_100k_nodes_backward_without_recursion_error():
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # a recursive walk would fail long before 100k nodes
    try:
        x = disttorch.tensor([1.0, 2.0], requires_grad=True)
        y = x
        for _ in range(100_000):
            y = y * 1.0
        y.sum().backward()
        del y
    finally:
        sys.setrecursionlimit(old_limit)
    assert x.grad.tolist() == [1.0, 1.0]


@pytest.mark.timeout(60)
def test_wide_fan_in_graph():
    x = disttorch.ones(3, requires_grad=True)
    total = disttorch.stack([x * float(i) for i in range(5000)]).sum()
    total.backward()
    assert x.grad.tolist() == [float(sum(range(5000)))] * 3


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _training_step(w1, b1, w2, x, target):
    hidden = (x @ w1.t() + b1).relu()
    logits = hidden @ w2.t()
    loss = -logits.log_softmax(1).gather(1, target).mean()
    loss.backward()
    with disttorch.no_grad():
        for p in (w1, b1, w2):
            p.sub_(p.grad * 0.01)
            p.grad = None
    return loss.item()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc to read RSS")
@pytest.mark.timeout(60)
def test_graph_is_freed_after_backward_rss_flat():
    disttorch.manual_seed(0)
    w1 = disttorch.randn(64, 32).mul_(0.1).requires_grad_()
    b1 = disttorch.zeros(64, requires_grad=True)
    w2 = disttorch.randn(10, 64).mul_(0.1).requires_grad_()
    x = disttorch.randn(32, 32)
    target = disttorch.randint(0, 10, (32, 1))
    for _ in range(1000):
        _training_step(w1, b1, w2, x, target)
    gc.collect()
    warm = _rss_bytes()
    for _ in range(10_000):
        last = _training_step(w1, b1, w2, x, target)
    gc.collect()
    grown = _rss_bytes() - warm
    # One step's graph holds about 100 KiB of arrays; 10k leaked graphs would add about 1 GiB.
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 10k steps"
    assert np.isfinite(last)


def test_saved_arrays_released_after_backward():
    x = disttorch.ones(1000, requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert node._saved == ()


def test_graph_freed_by_reference_counting_alone():
    """No reference cycles: nodes die as soon as the last tensor goes, without waiting for the gc."""
    import weakref
    gc.disable()
    try:
        x = disttorch.ones(4, requires_grad=True)
        y = (x * 2).sin()
        y.retain_grad()
        y.register_hook(lambda g: g)
        view = y[1:]
        view.mul_(3.0)
        loss = (y.softmax(0) * x).sum()
        nodes = [weakref.ref(loss.grad_fn), weakref.ref(y.grad_fn)]
        loss.backward()
        del y, view, loss
        assert all(ref() is None for ref in nodes)
    finally:
        gc.enable()
