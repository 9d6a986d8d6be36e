"""The DDP tutorial program, as written for torch, on disttorch: mp.spawn + env rendezvous + gloo."""
import os
import sys

import disttorch as torch
import disttorch.distributed as dist
import disttorch.multiprocessing as mp
import disttorch.nn as nn
import disttorch.optim as optim
from disttorch.nn.parallel import DistributedDataParallel as DDP


def setup(rank, world_size):
    os.environ["MASTER_ADDR"] = "localhost"
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


class ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def demo_basic(rank, world_size, out_dir):
    setup(rank, world_size)
    torch.manual_seed(0)
    model = ToyModel()
    ddp_model = DDP(model)
    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.1)
    torch.manual_seed(100 + rank)
    inputs, labels = torch.randn(20, 10), torch.randn(20, 5)
    for _ in range(3):
        optimizer.zero_grad()
        loss_fn(ddp_model(inputs), labels).backward()
        optimizer.step()
    torch.save({"inputs": inputs, "labels": labels, "state": model.state_dict()},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ["MASTER_PORT"] = sys.argv[2]
    world_size = 2
    mp.spawn(demo_basic, args=(world_size, sys.argv[1]), nprocs=world_size, join=True)
