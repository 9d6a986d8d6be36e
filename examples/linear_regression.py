"""Fit y = 3x + 1 from noisy samples with one nn.Linear and SGD.

    python examples/linear_regression.py --steps 300
"""
import argparse

import disttorch as torch
import disttorch.nn as nn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    x = torch.rand(256, 1) * 4 - 2
    y = 3 * x + 1 + 0.1 * torch.randn(256, 1)

    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if step % max(args.steps // 5, 1) == 0:
            print(f"step {step}: loss={loss.item():.5f}", flush=True)
    weight, bias = model.weight.item(), model.bias.item()
    print(f"learned y = {weight:.3f}x + {bias:.3f} (true: y = 3x + 1)")
    return weight, bias


if __name__ == "__main__":
    main()
