"""examples/vae: a fully connected VAE with the reparameterisation trick and the BCE + KLD loss."""
import argparse

import numpy as np
import torch
import torch.utils.data
from torch import nn, optim
from torch.nn import functional as F

from numpy_init import init_parameters

parser = argparse.ArgumentParser(description="VAE Example")
parser.add_argument("--batch-size", type=int, default=32, metavar="N")
parser.add_argument("--epochs", type=int, default=3, metavar="N")
parser.add_argument("--no-cuda", action="store_true", default=False)
parser.add_argument("--seed", type=int, default=1, metavar="S")
parser.add_argument("--log-interval", type=int, default=4, metavar="N")
args = parser.parse_args()
args.cuda = not args.no_cuda and torch.cuda.is_available()
torch.manual_seed(args.seed)
device = torch.device("cuda" if args.cuda else "cpu")

# Blurry blobs in [0, 1], 14x14, stand in for MNIST.
rng = np.random.default_rng(3)
grid = np.linspace(-1, 1, 14)
centres = rng.uniform(-0.5, 0.5, size=(256, 2))
images = np.exp(-((grid[None, :, None] - centres[:, None, None, 0]) ** 2
                  + (grid[None, None, :] - centres[:, None, None, 1]) ** 2) / 0.1).astype(np.float32)
train_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(images[:, None])),
                                           batch_size=args.batch_size, shuffle=False)
noise_rng = np.random.default_rng(4)


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(196, 64)
        self.fc21 = nn.Linear(64, 8)
        self.fc22 = nn.Linear(64, 8)
        self.fc3 = nn.Linear(8, 64)
        self.fc4 = nn.Linear(64, 196)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        # torch.randn_like(std) in the original; drawn from numpy so both frameworks see the same noise
        eps = torch.from_numpy(noise_rng.standard_normal(tuple(std.shape)).astype(np.float32))
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 196))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


model = init_parameters(VAE()).to(device)
optimizer = optim.Adam(model.parameters(), lr=1e-3)


def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 196), reduction="sum")
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def train(epoch):
    model.train()
    train_loss = 0
    for batch_idx, (data,) in enumerate(train_loader):
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print("Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}".format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item() / len(data)))
    average = train_loss / len(train_loader.dataset)
    print("====> Epoch: {} Average loss: {:.4f}".format(epoch, average))
    return average


for epoch in range(1, args.epochs + 1):
    final = train(epoch)
    with torch.no_grad():
        sample = torch.from_numpy(noise_rng.standard_normal((16, 8)).astype(np.float32)).to(device)
        sample = model.decode(sample).cpu()
print(f"final_loss={final:.6f}")
