"""Core engine speed against PyTorch CPU, both on one thread, in the same process.

(a) MLP 784-512-256-10, batch 128, ReLU, cross-entropy: forward + backward + SGD step.
(b) Per-op overhead: 100 x (add, mul) on 16-element tensors that require grad, then backward.

Repetitions alternate between the two libraries so drifts in machine load hit both; medians are reported.
Last line: `core: mlp_ratio=X op_overhead_ratio=Y` (disttorch time / torch time).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # shared helpers sit beside this file
from _timing import compare  # noqa: E402  (sets one BLAS thread before numpy loads)

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import disttorch  # noqa: E402

torch.set_num_threads(1)

SIZES = (784, 512, 256, 10)
BATCH = 128
LR = 0.01


def _initial_weights(rng):
    layers = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        bias = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        layers.append((weight, bias))
    return layers


def _has_disttorch_nn():
    try:
        import disttorch.nn as nn
        import disttorch.optim as optim
        return all(hasattr(nn, n) for n in ("Linear", "ReLU", "Sequential")) and \
            hasattr(nn.functional, "cross_entropy") and hasattr(optim, "SGD")
    except ImportError:
        return False


def _module_step(lib, weights):
    """The idiomatic PyTorch training step: nn.Sequential, F.cross_entropy, optim.SGD."""
    nn = lib.nn
    layers = []
    for i, (w, b) in enumerate(weights):
        linear = nn.Linear(w.shape[1], w.shape[0])
        with lib.no_grad():
            linear.weight.copy_(lib.from_numpy(w.copy()))
            linear.bias.copy_(lib.from_numpy(b.copy()))
        layers.append(linear)
        if i < len(weights) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    optimizer = lib.optim.SGD(model.parameters(), lr=LR)

    def step(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _core_step(lib, weights):
    """The same step from core tensor ops, for when disttorch.nn/optim are not available yet."""
    params = []
    for w, b in weights:
        params += [lib.from_numpy(w.copy()).requires_grad_(), lib.from_numpy(b.copy()).requires_grad_()]

    def step(x, y):
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i].t() + params[i + 1]
            if i + 2 < len(params):
                h = h.relu()
        loss = -h.log_softmax(1).gather(1, y.unsqueeze(1)).mean()
        loss.backward()
        with lib.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=LR)
                p.grad = None
        return loss

    return step


def _op_overhead(lib, a_values, b_values):
    a = lib.tensor(a_values, requires_grad=True)
    b = lib.tensor(b_values, requires_grad=True)

    def run():
        y = a
        for _ in range(100):
            y = (y + a) * b
        y.sum().backward()
        a.grad = b.grad = None

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--mlp-steps", type=int, default=10)
    parser.add_argument("--op-calls", type=int, default=50)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    weights = _initial_weights(rng)
    x_np = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y_np = rng.integers(0, SIZES[-1], BATCH).astype(np.int64)

    use_nn = _has_disttorch_nn()
    ours_step = (_module_step if use_nn else _core_step)(disttorch, weights)
    ref_step = _module_step(torch, weights)
    x_ours, y_ours = disttorch.from_numpy(x_np), disttorch.from_numpy(y_np)
    x_ref, y_ref = torch.from_numpy(x_np), torch.from_numpy(y_np)
    first = (ours_step(x_ours, y_ours).item(), ref_step(x_ref, y_ref).item())
    print(f"mlp: disttorch built from {'nn/optim' if use_nn else 'core ops'}; "
          f"first losses {first[0]:.5f} vs {first[1]:.5f}")
    mlp_ratio = compare("mlp 784-512-256-10 b128 step", lambda: ours_step(x_ours, y_ours),
                         lambda: ref_step(x_ref, y_ref), args.mlp_steps, args.rounds)

    a_values = rng.uniform(0.5, 1.0, 16).astype(np.float32)
    b_values = rng.uniform(0.9, 1.0, 16).astype(np.float32)
    op_ratio = compare("100x(add, mul) 16 elems + backward", _op_overhead(disttorch, a_values, b_values),
                        _op_overhead(torch, a_values, b_values), args.op_calls, args.rounds)
    print(f"core: mlp_ratio={mlp_ratio:.2f} op_overhead_ratio={op_ratio:.2f}")


if __name__ == "__main__":
    main()
