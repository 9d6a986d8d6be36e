"""The "Datasets & DataLoaders" tutorial: a custom map-style Dataset reading files from a folder, a transform
and target_transform, a DataLoader with worker processes, a custom collate_fn and a Subset split."""
import csv
import os

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from numpy_init import init_parameters


class CustomSignalDataset(Dataset):
    def __init__(self, annotations_file, data_dir, transform=None, target_transform=None):
        with open(annotations_file) as handle:
            self.rows = list(csv.reader(handle))
        self.data_dir = data_dir
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, idx):
        name, label = self.rows[idx]
        signal = np.load(os.path.join(self.data_dir, name))
        label = int(label)
        if self.transform:
            signal = self.transform(signal)
        if self.target_transform:
            label = self.target_transform(label)
        return signal, label


def to_tensor(signal):
    return torch.from_numpy(signal.astype(np.float32))


def pad_collate(batch):
    """Signals of different lengths, zero-padded to the longest in the batch."""
    longest = max(signal.shape[0] for signal, _ in batch)
    padded = torch.zeros(len(batch), longest)
    for row, (signal, _) in enumerate(batch):
        padded[row, :signal.shape[0]] = signal
    return padded, torch.tensor([label for _, label in batch])


def write_dataset(folder, count=60):
    rng = np.random.default_rng(51)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "labels.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        for index in range(count):
            label = index % 2
            length = int(rng.integers(12, 20))
            signal = np.sin(np.arange(length) * (0.3 + 0.5 * label)) + 0.1 * rng.standard_normal(length)
            np.save(os.path.join(folder, f"signal_{index}.npy"), signal)
            writer.writerow([f"signal_{index}.npy", label])


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(19, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x):
        return self.net(nn.functional.pad(x, (0, 19 - x.shape[1])))


if __name__ == "__main__":
    write_dataset("signals")
    dataset = CustomSignalDataset("signals/labels.csv", "signals", transform=to_tensor)
    train_set, val_set = Subset(dataset, range(0, 48)), Subset(dataset, range(48, 60))
    train_loader = DataLoader(train_set, batch_size=8, shuffle=False, num_workers=2, collate_fn=pad_collate)
    val_loader = DataLoader(val_set, batch_size=12, num_workers=0, collate_fn=pad_collate)
    model = init_parameters(Classifier())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(4):
        for signals, targets in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(signals), targets)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val_loss = sum(loss_fn(model(s), t).item() for s, t in val_loader)
        print(f"epoch {epoch}: val loss {val_loss:.4f}")
    print(f"final_loss={val_loss:.6f}")
