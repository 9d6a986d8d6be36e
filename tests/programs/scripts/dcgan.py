"""A small DCGAN (examples/dcgan shape): ConvTranspose2d generator, strided-conv discriminator, BatchNorm,
LeakyReLU, BCELoss, Adam(betas=(0.5, 0.999)), weights_init via Module.apply."""
import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

parser = argparse.ArgumentParser()
parser.add_argument("--nz", type=int, default=8)
parser.add_argument("--ngf", type=int, default=8)
parser.add_argument("--ndf", type=int, default=8)
parser.add_argument("--iters", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=16)
opt = parser.parse_args()

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
nz, ngf, ndf, nc = opt.nz, opt.ngf, opt.ndf, 1
init_rng = np.random.default_rng(5)
noise_rng = np.random.default_rng(6)


def weights_init(m):
    classname = m.__class__.__name__
    with torch.no_grad():
        if classname.find("Conv") != -1:
            m.weight.copy_(torch.from_numpy(init_rng.normal(0.0, 0.02, tuple(m.weight.shape)).astype(np.float32)))
        elif classname.find("BatchNorm") != -1:
            m.weight.copy_(torch.from_numpy(init_rng.normal(1.0, 0.02, tuple(m.weight.shape)).astype(np.float32)))
            m.bias.fill_(0)


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


netG = Generator().to(device)
netG.apply(weights_init)
netD = Discriminator().to(device)
netD.apply(weights_init)
print(netG)

criterion = nn.BCELoss()
fixed_noise = torch.from_numpy(noise_rng.standard_normal((16, nz, 1, 1)).astype(np.float32))
real_label = 1.
fake_label = 0.
optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

# "Real" 16x16 images: smooth stripes in [-1, 1].
xs = np.linspace(0, 2 * np.pi, 16)
phases = np.random.default_rng(7).uniform(0, 2 * np.pi, size=(opt.iters, opt.batch_size))
for i in range(opt.iters):
    real_cpu = torch.from_numpy(np.sin(xs[None, None, :] + phases[i][:, None, None]).astype(np.float32)
                                [:, None].repeat(16, axis=2))
    batch_size = real_cpu.size(0)
    netD.zero_grad()
    label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=device)
    output = netD(real_cpu)
    errD_real = criterion(output, label)
    errD_real.backward()
    D_x = output.mean().item()

    noise = torch.from_numpy(noise_rng.standard_normal((batch_size, nz, 1, 1)).astype(np.float32))
    fake = netG(noise)
    label.fill_(fake_label)
    output = netD(fake.detach())
    errD_fake = criterion(output, label)
    errD_fake.backward()
    D_G_z1 = output.mean().item()
    errD = errD_real + errD_fake
    optimizerD.step()

    netG.zero_grad()
    label.fill_(real_label)
    output = netD(fake)
    errG = criterion(output, label)
    errG.backward()
    D_G_z2 = output.mean().item()
    optimizerG.step()
    print("[%d/%d] Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f"
          % (i, opt.iters, errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))

print(f"final_loss={errD.item() + errG.item():.6f}")
