"""The TensorBoard tutorial's loop: SummaryWriter in a `with`, running loss as add_scalar, train/val pairs
with add_scalars, weight histograms, an image of the inputs, text and hparams."""
import argparse
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from numpy_init import init_parameters, labels, normal

parser = argparse.ArgumentParser()
parser.add_argument("--log-dir", default="runs/tutorial")
parser.add_argument("--epochs", type=int, default=4)
args = parser.parse_args()

x_train, y_train = normal((96, 1, 8, 8), seed=31), labels(96, 3, seed=32)
x_val, y_val = normal((32, 1, 8, 8), seed=33), labels(32, 3, seed=34)
model = init_parameters(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

with SummaryWriter(args.log_dir) as writer:
    grid = (x_train[:8] - x_train[:8].min()) / (x_train[:8].max() - x_train[:8].min())
    writer.add_image("inputs/first", grid[0], 0)
    writer.add_text("config", f"epochs={args.epochs}, lr=0.05")
    running_loss = 0.0
    step = 0
    for epoch in range(args.epochs):
        for start in range(0, len(x_train), 16):
            inputs, targets = x_train[start:start + 16], y_train[start:start + 16]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            step += 1
            if step % 3 == 0:
                writer.add_scalar("training loss", running_loss / 3, step)
                running_loss = 0.0
        with torch.no_grad():
            val_loss = F.cross_entropy(model(x_val), y_val).item()
            train_loss = F.cross_entropy(model(x_train), y_train).item()
        writer.add_scalars("loss", {"train": train_loss, "val": val_loss}, epoch)
        for name, param in model.named_parameters():
            writer.add_histogram(name, param, epoch)
    writer.add_hparams({"lr": 0.05, "momentum": 0.9, "epochs": args.epochs}, {"hparam/val_loss": val_loss},
                       run_name="hparams")
    writer.flush()

events = [name for root, _, files in os.walk(args.log_dir) for name in files if name.startswith("events.out")]
print(f"wrote {len(events)} event files under {args.log_dir}")
assert len(events) == 4, events  # the run, loss_train, loss_val, hparams
print(f"final_loss={val_loss:.6f}")
