"""Train ResNet-18 on CIFAR-10 (or a synthetic CIFAR-shaped set when the real files are absent).

    python examples/train_resnet_cifar.py --data ./data --epochs 1          # real CIFAR-10 binary batches
    python examples/train_resnet_cifar.py --steps 20                         # synthetic data, 20 steps

Without the CIFAR-10 files under --data (and without --download) the script trains on random 3x32x32
images whose class is encoded in their per-channel mean, so the loss visibly falls within a few steps.
At the end the model is evaluated, traced with disttorch.jit and the traced program checked against it.
"""
import argparse
import time

import numpy as np

import disttorch as torch
import disttorch.nn as nn
from disttorch.utils.data import DataLoader, TensorDataset
from disttorch.vision import datasets, models, transforms

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="./data", help="folder holding cifar-10-batches-bin")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: full epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--synthetic-size", type=int, default=512, help="images in the synthetic set")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def synthetic_cifar(count, seed):
    """Random images whose label shifts the channel means: learnable, CIFAR-shaped, instant."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count)
    shifts = np.linspace(-1.0, 1.0, 10, dtype=np.float32)
    images = rng.standard_normal((count, 3, 32, 32)).astype(np.float32) * 0.5
    images[:, 0] += shifts[labels][:, None, None]
    images[:, 2] -= shifts[labels][:, None, None]
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def load_data(args):
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])
    try:
        train = datasets.CIFAR10(args.data, train=True, transform=train_tf, download=args.download)
        test = datasets.CIFAR10(args.data, train=False, transform=test_tf, download=args.download)
        return train, test, "CIFAR-10"
    except (RuntimeError, OSError) as err:
        print(f"CIFAR-10 not available ({str(err).splitlines()[0]}); using a synthetic CIFAR-shaped set")
    return synthetic_cifar(args.synthetic_size, args.seed), synthetic_cifar(128, args.seed + 1), "synthetic"


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += labels.shape[0]
    return correct / max(total, 1)


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    train_set, test_set, source = load_data(args)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    test_loader = DataLoader(test_set, batch_size=64)
    model = models.resnet18(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    step, started = 0, time.time()
    for epoch in range(args.epochs):
        model.train()
        for images, labels in train_loader:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            print(f"epoch {epoch} step {step} loss {loss.item():.4f} ({time.time() - started:.1f}s)", flush=True)
            if args.steps and step >= args.steps:
                break
        if args.steps and step >= args.steps:
            break
    accuracy = evaluate(model, test_loader)
    example = next(iter(test_loader))[0][:2]
    traced = torch.jit.trace(model.eval(), example)
    with torch.no_grad():
        drift = (traced(example) - model(example)).abs().max().item()
    print(f"{source}: {step} steps, test accuracy {accuracy:.3f}, traced-vs-eager max diff {drift:.2e}")
    return accuracy


if __name__ == "__main__":
    main()
