"""A torchrun-style DDP script: env:// rendezvous, DistributedSampler, DDP, rank-0 reporting."""
import argparse
import os

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from numpy_init import init_parameters, labels, normal

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=16)
args = parser.parse_args()

dist.init_process_group(backend="gloo")
rank = dist.get_rank()
world_size = dist.get_world_size()
local_rank = int(os.environ["LOCAL_RANK"])
device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")

dataset = TensorDataset(normal((128, 20), seed=21), labels(128, 4, seed=22))
sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)

model = init_parameters(nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 4))).to(device)
model = DistributedDataParallel(model)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    total = torch.zeros(2)
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        total += torch.tensor([loss.item() * len(y), len(y)])
    dist.all_reduce(total)
    if rank == 0:
        print(f"epoch {epoch}: mean loss {total[0].item() / total[1].item():.4f}")

if rank == 0:
    print(f"final_loss={total[0].item() / total[1].item():.6f}")
dist.destroy_process_group()
