"""The DDP tutorial's checkpoint demo under torchrun-style launch: rank 0 saves the DDP model's state_dict,
a barrier, every rank loads it with map_location, trains on, and rank 0 reports the all-reduced loss."""
import os
import tempfile

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP

from numpy_init import init_parameters, normal


class ToyModel(nn.Module):
    def __init__(self):
        super(ToyModel, self).__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def demo_checkpoint():
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    print(f"Running DDP checkpoint example on rank {rank}.")
    model = init_parameters(ToyModel())
    ddp_model = DDP(model)
    CHECKPOINT_PATH = os.path.join(os.getcwd(), "model.checkpoint")
    if rank == 0:
        torch.save(ddp_model.state_dict(), CHECKPOINT_PATH)
    dist.barrier()
    map_location = {"cuda:0": "cpu"}
    ddp_model.load_state_dict(torch.load(CHECKPOINT_PATH, map_location=map_location, weights_only=True))

    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.01, momentum=0.9)
    for step in range(8):
        optimizer.zero_grad()
        outputs = ddp_model(normal((20, 10), seed=300 + 10 * rank + step))
        labels = normal((20, 5), seed=400 + 10 * rank + step)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()
    total = torch.tensor([loss.item()])
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    dist.barrier()
    if rank == 0:
        os.remove(CHECKPOINT_PATH)
        print(f"final_loss={total.item() / dist.get_world_size():.6f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    demo_checkpoint()
