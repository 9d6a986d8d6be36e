"""DataLoader throughput over a TensorDataset (MNIST-shaped, batch 128, shuffled), disttorch vs torch.

Run: python benchmarks/bench_loader.py
Last line: `loader: ratio=X` with X = disttorch samples/s / torch samples/s (higher is better).
bench_nn.py imports loader_ratio() from here.
"""
import time

import numpy as np

SAMPLES = 20000
BATCH_SIZE = 128
REPEATS = 3


def _samples_per_second(make_loader):
    """Best of REPEATS full epochs, so a one-off stall does not decide the result."""
    best = float("inf")
    for _ in range(REPEATS):
        loader = make_loader()
        start = time.perf_counter()
        seen = 0
        for _, labels in loader:
            seen += labels.shape[0]
        best = min(best, time.perf_counter() - start)
    assert seen == SAMPLES
    return SAMPLES / best


def _data():
    rng = np.random.default_rng(0)
    images = rng.random((SAMPLES, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, SAMPLES)
    return images, labels


def disttorch_rate(images, labels):
    import disttorch
    from disttorch.utils.data import DataLoader, TensorDataset
    dataset = TensorDataset(disttorch.from_numpy(images), disttorch.from_numpy(labels))
    return _samples_per_second(lambda: DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True))


def torch_rate(images, labels):
    import torch
    torch.set_num_threads(1)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    return _samples_per_second(lambda: torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True))


class _ArrayRows:
    """A plain map-style dataset (numpy row + int label per item), for the per-sample collate path."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


def generic_rates(images, labels):
    """(disttorch, torch) samples/s when every sample goes through __getitem__ and default_collate."""
    import torch
    from disttorch.utils.data import DataLoader
    dataset = _ArrayRows(images, labels)
    ours = _samples_per_second(lambda: DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True))
    theirs = _samples_per_second(lambda: torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True))
    return ours, theirs


def loader_ratio():
    """disttorch samples/s divided by torch samples/s for the same loader configuration."""
    images, labels = _data()
    return disttorch_rate(images, labels) / torch_rate(images, labels)


def main():
    images, labels = _data()
    ours = disttorch_rate(images, labels)
    theirs = torch_rate(images, labels)
    generic_ours, generic_theirs = generic_rates(images, labels)
    print(f"per-sample Dataset (numpy rows), same settings: disttorch {generic_ours:,.0f} samples/s   torch "
          f"{generic_theirs:,.0f} samples/s   ratio={generic_ours / generic_theirs:.2f}")
    print(f"TensorDataset {SAMPLES} x 1x28x28, batch {BATCH_SIZE}, shuffle, num_workers=0")
    print(f"disttorch: {ours:,.0f} samples/s   torch: {theirs:,.0f} samples/s")
    print(f"loader: ratio={ours / theirs:.2f}")


if __name__ == "__main__":
    main()
