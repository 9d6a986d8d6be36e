"""Learning-rate schedules as training scripts use them: warmup with LambdaLR, then cosine, chained with
SequentialLR; OneCycleLR stepped per batch; ReduceLROnPlateau on a validation loss; MultiStepLR."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import (
    CosineAnnealingLR, LambdaLR, MultiStepLR, OneCycleLR, ReduceLROnPlateau, SequentialLR,
)

from numpy_init import init_parameters, normal

x, y = normal((64, 6), seed=61), normal((64, 1), seed=62)
x_val, y_val = normal((32, 6), seed=63), normal((32, 1), seed=64)


def make():
    model = init_parameters(nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 1)))
    return model


def run(model, optimizer, scheduler, epochs, per_batch=False, plateau=False):
    for epoch in range(epochs):
        for start in range(0, 64, 16):
            optimizer.zero_grad()
            loss = F.mse_loss(model(x[start:start + 16]), y[start:start + 16])
            loss.backward()
            optimizer.step()
            if per_batch:
                scheduler.step()
        with torch.no_grad():
            val = F.mse_loss(model(x_val), y_val).item()
        if plateau:
            scheduler.step(val)
        elif not per_batch:
            scheduler.step()
    return val, optimizer.param_groups[0]["lr"]


model = make()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
warmup = LambdaLR(optimizer, lr_lambda=lambda epoch: (epoch + 1) / 3)
cosine = CosineAnnealingLR(optimizer, T_max=6, eta_min=1e-3)
scheduler = SequentialLR(optimizer, schedulers=[warmup, cosine], milestones=[3])
val1, lr1 = run(model, optimizer, scheduler, 8)
print(f"warmup+cosine: val {val1:.5f} lr {lr1:.6f}")

model = make()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scheduler = OneCycleLR(optimizer, max_lr=0.02, total_steps=6 * 4)
val2, lr2 = run(model, optimizer, scheduler, 6, per_batch=True)
print(f"one-cycle: val {val2:.5f} lr {lr2:.8f}")

model = make()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=1)
val3, lr3 = run(model, optimizer, scheduler, 8, plateau=True)
print(f"plateau: val {val3:.5f} lr {lr3:.6f}")

model = make()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
scheduler = MultiStepLR(optimizer, milestones=[2, 4], gamma=0.3)
val4, lr4 = run(model, optimizer, scheduler, 6)
print(f"multistep: val {val4:.5f} lr {lr4:.6f} last_lr {scheduler.get_last_lr()}")
assert math.isclose(lr4, 0.05 * 0.3 * 0.3, rel_tol=1e-9), lr4
print(f"final_loss={val1 + val2 + val3 + val4:.6f}")
