"""Gradient accumulation over micro-batches with AdamW, linear warmup then decay (LambdaLR), clipping, a
frozen embedding, parameter groups without weight decay, and an EMA copy of the weights."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from numpy_init import init_parameters, labels, normal

ACCUMULATION_STEPS = 4
x, y = normal((128, 12), seed=111), labels(128, 5, seed=112)
ids = torch.arange(128) % 7

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(7, 12)
        self.body = nn.Sequential(nn.Linear(12, 32), nn.SiLU(), nn.LayerNorm(32), nn.Linear(32, 5))

    def forward(self, x, ids):
        return self.body(x + self.embed(ids))


model = init_parameters(Model())
model.embed.weight.requires_grad_(False)
ema = copy.deepcopy(model)
decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                              lr=5e-3)
total_updates = 128 // (8 * ACCUMULATION_STEPS) * 3
scheduler = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda step: min(1.0, (step + 1) / 3) * max(0.1, 1 - step / total_updates))

step = 0
for epoch in range(3):
    for micro, start in enumerate(range(0, 128, 8)):
        loss = F.cross_entropy(model(x[start:start + 8], ids[start:start + 8]), y[start:start + 8])
        (loss / ACCUMULATION_STEPS).backward()
        if (micro + 1) % ACCUMULATION_STEPS == 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            with torch.no_grad():
                for ema_param, param in zip(ema.parameters(), model.parameters()):
                    ema_param.mul_(0.9).add_(param, alpha=0.1)
    print(f"epoch {epoch}: lr {scheduler.get_last_lr()[0]:.6f} loss {loss.item():.4f}")
assert model.embed.weight.grad is None
with torch.no_grad():
    final = F.cross_entropy(ema(x, ids), y).item()
print(f"updates={step}")
print(f"final_loss={final:.6f}")
