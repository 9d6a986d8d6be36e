"""examples/regression: fit a random polynomial with a single Linear layer and a hand-written update."""
import argparse

import numpy as np
import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--poly-degree", type=int, default=4)
parser.add_argument("--steps", type=int, default=200)
args = parser.parse_args()

rng = np.random.default_rng(7)
W_target = torch.from_numpy(rng.standard_normal((args.poly_degree, 1)).astype(np.float32)) * 5
b_target = torch.from_numpy(rng.standard_normal(1).astype(np.float32)) * 5


def make_features(x):
    """Builds features i.e. a matrix with columns [x, x^2, x^3, x^4]."""
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, args.poly_degree + 1)], 1)


def f(x):
    """Approximated function."""
    return x.mm(W_target) + b_target.item()


def poly_desc(W, b):
    """Creates a string description of a polynomial."""
    result = "y = "
    for i, w in enumerate(W):
        result += "{:+.2f} x^{} ".format(w, i + 1)
    result += "{:+.2f}".format(b[0])
    return result


def get_batch(step, batch_size=32):
    """Builds a batch i.e. (x, f(x)) pair."""
    random = torch.from_numpy(np.random.default_rng(100 + step).standard_normal(batch_size).astype(np.float32))
    x = make_features(random)
    y = f(x)
    return x, y


fc = torch.nn.Linear(W_target.size(0), 1)
with torch.no_grad():
    fc.weight.zero_()
    fc.bias.zero_()

for batch_idx in range(1, args.steps + 1):
    batch_x, batch_y = get_batch(batch_idx)
    fc.zero_grad()
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()
    output.backward()
    for param in fc.parameters():
        param.data.add_(-0.1 * param.grad)

print("Loss: {:.6f} after {} batches".format(loss, batch_idx))
# Judged on one fixed large batch: the last training batch's loss alone swings with float32 rounding.
with torch.no_grad():
    eval_x, eval_y = get_batch(0, batch_size=256)
    eval_loss = F.smooth_l1_loss(fc(eval_x), eval_y).item()
print("==> Learned function:\t" + poly_desc(fc.weight.view(-1), fc.bias))
print("==> Actual function:\t" + poly_desc(W_target.view(-1), b_target))
print(f"final_loss={eval_loss:.6f}")
