"""grad_fn.next_functions, name() and node hooks, compared with torch's graph for the same expressions."""
import numpy as np
import pytest

import disttorch

torch = pytest.importorskip("torch")


def _describe(node, depth=3):
    """A comparable picture of the graph: its (child, input_nr) structure, leaves by name.

    Op node names are left out: disttorch composes some ops from others (mean is a sum times 1/n), so
    the op names differ where the structure does not."""
    if node is None:
        return None
    name = node.name() if node.name().endswith("AccumulateGrad") else "op"
    if depth == 0:
        return name
    return (name, tuple((_describe(child, depth - 1), nr) for child, nr in node.next_functions))


def _graphs(fn):
    ours = [disttorch.tensor(np.ones((2, 2)), requires_grad=True), disttorch.tensor(np.ones((2, 2)))]
    ref = [torch.tensor(np.ones((2, 2)), requires_grad=True), torch.tensor(np.ones((2, 2)))]
    return _describe(fn(disttorch, *ours).grad_fn), _describe(fn(torch, *ref).grad_fn)


@pytest.mark.parametrize("fn", [
    lambda lib, w, c: w + c,
    lambda lib, w, c: c * w,
    lambda lib, w, c: (w @ c).sum(),
    lambda lib, w, c: lib.exp(w * w).sum(),
    lambda lib, w, c: lib.cat([w, c], 0),
    lambda lib, w, c: lib.where(c > 0, w, c),
], ids=["add", "mul_non_grad_first", "matmul_sum", "exp_mean", "cat", "where"])
def test_next_functions_have_torchs_shape(fn):
    ours, ref = _graphs(fn)
    assert ours == ref


def test_leaves_appear_as_accumulate_grad_with_their_variable():
    w = disttorch.ones(3, requires_grad=True)
    b = disttorch.ones(3, requires_grad=True)
    out = w * 2 + b
    (mul_node, nr), (acc_b, nr_b) = out.grad_fn.next_functions
    assert (nr, nr_b) == (0, 0)
    assert acc_b.name() == "torch::autograd::AccumulateGrad" and acc_b.variable is b
    assert mul_node.next_functions[0][0].variable is w
    assert acc_b.next_functions == ()
    assert out.grad_fn.next_functions[1][0] is (b * 1).grad_fn.next_functions[0][0]  # one sink per leaf


def test_custom_function_node_name():
    class Double(disttorch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    out = Double.apply(disttorch.ones(2, requires_grad=True))
    assert out.grad_fn.name() == "DoubleBackward"
    assert out.grad_fn.next_functions[0][0].name() == "torch::autograd::AccumulateGrad"


def test_node_hooks_see_and_replace_gradients():
    x = disttorch.ones(3, requires_grad=True)
    y = x * 3
    out = y.sum()
    seen = []
    handle = y.grad_fn.register_hook(lambda grad_inputs, grad_outputs: seen.append(
        (grad_inputs[0].tolist(), grad_outputs[0].tolist())))
    y.grad_fn.register_prehook(lambda grad_outputs: (grad_outputs[0] * 10,))
    out.backward()
    assert seen == [([30.0, 30.0, 30.0], [10.0, 10.0, 10.0])]
    assert x.grad.tolist() == [30.0, 30.0, 30.0]
    handle.remove()
    x.grad = None
    z = x * 2
    z.grad_fn.register_hook(lambda grad_inputs, grad_outputs: (grad_inputs[0] + 1,))
    z.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0, 3.0]
