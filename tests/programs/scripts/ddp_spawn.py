"""The DDP tutorial's basic example: mp.spawn, setup/cleanup with MASTER_ADDR/PORT, a ToyModel under DDP."""
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP

from numpy_init import init_parameters, normal


def setup(rank, world_size, port):
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


def cleanup():
    dist.destroy_process_group()


class ToyModel(nn.Module):
    def __init__(self):
        super(ToyModel, self).__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def demo_basic(rank, world_size, port):
    print(f"Running basic DDP example on rank {rank}.")
    setup(rank, world_size, port)

    model = init_parameters(ToyModel()).to(rank if torch.cuda.is_available() else "cpu")
    ddp_model = DDP(model)

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.05)

    for step in range(10):
        inputs = normal((20, 10), seed=100 * rank + step)
        targets = normal((20, 5), seed=1000 + 100 * rank + step)
        optimizer.zero_grad()
        loss = loss_fn(ddp_model(inputs), targets)
        loss.backward()
        optimizer.step()

    # Every rank holds the same parameters after DDP; report a loss on shared data.
    with torch.no_grad():
        check = loss_fn(ddp_model(normal((64, 10), seed=7)), normal((64, 5), seed=8))
    if rank == 0:
        print(f"final_loss={check.item():.6f}")
        sys.stdout.flush()
    cleanup()
    print(f"Finished running basic DDP example on rank {rank}.")


def run_demo(demo_fn, world_size):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(demo_fn, args=(world_size, port), nprocs=world_size, join=True)


if __name__ == "__main__":
    n_gpus = torch.cuda.device_count()
    world_size = 2 if n_gpus < 2 else n_gpus
    run_demo(demo_basic, world_size)
