"""Saving and loading a general checkpoint (the recipe): model and optimizer state_dicts, epoch and loss in
one dict; load into fresh objects, continue training, and check the resumed run equals an unbroken one."""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

from numpy_init import init_parameters, labels, normal

parser = argparse.ArgumentParser()
parser.add_argument("--path", default="checkpoint.pt")
args = parser.parse_args()

x, y = normal((48, 10), seed=71), labels(48, 3, seed=72)


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = nn.Linear(10, 20, bias=False)  # BatchNorm follows; a bias there only gets rounding noise
        self.bn = nn.BatchNorm1d(20)
        self.fc2 = nn.Linear(20, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def train(net, optimizer, epochs):
    for _ in range(epochs):
        for start in range(0, 48, 12):
            optimizer.zero_grad()
            loss = F.cross_entropy(net(x[start:start + 12]), y[start:start + 12])
            loss.backward()
            optimizer.step()
    return loss


net = init_parameters(Net())
optimizer = optim.Adam(net.parameters(), lr=0.01)
loss = train(net, optimizer, 3)
torch.save({"epoch": 3, "model_state_dict": net.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
            "loss": loss.item()}, args.path)
unbroken = train(net, optimizer, 2).item()

model = Net()
optimizer = optim.Adam(model.parameters(), lr=0.01)
checkpoint = torch.load(args.path, weights_only=True)
model.load_state_dict(checkpoint["model_state_dict"])
optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
epoch = checkpoint["epoch"]
print(f"resumed at epoch {epoch} with loss {checkpoint['loss']:.4f}")
model.train()
resumed = train(model, optimizer, 2).item()
assert abs(resumed - unbroken) < 1e-6, (resumed, unbroken)

torch.save(model.state_dict(), "model_weights.pth")
inference = Net()
inference.load_state_dict(torch.load("model_weights.pth", weights_only=True))
inference.eval()
with torch.no_grad():
    eval_loss = F.cross_entropy(inference(x), y).item()
print(f"final_loss={eval_loss:.6f}")
