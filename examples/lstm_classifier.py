"""Classify sequences with an LSTM: is the sum of a noisy sequence positive or negative?

    python examples/lstm_classifier.py --epochs 8
"""
import argparse

import disttorch as torch
import disttorch.nn as nn
from disttorch.utils.data import DataLoader, TensorDataset


class SequenceClassifier(nn.Module):
    def __init__(self, input_size=1, hidden_size=32, num_classes=2):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def make_data(n, length, generator):
    x = torch.randn(n, length, 1, generator=generator)
    y = (x.sum(dim=(1, 2)) > 0).long()
    return TensorDataset(x, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--length", type=int, default=12)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train = make_data(1024, args.length, generator)
    test = make_data(256, args.length, generator)
    model = SequenceClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for x, y in DataLoader(train, batch_size=64, shuffle=True, generator=generator):
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        with torch.no_grad():
            x, y = test.tensors
            accuracy = (model(x).argmax(1) == y).float().mean().item()
        print(f"epoch {epoch}: train_loss={total / len(train):.4f} test_accuracy={accuracy * 100:.1f}%", flush=True)
    return accuracy


if __name__ == "__main__":
    main()
