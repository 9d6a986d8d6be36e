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
        for images, labels in loader:
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


def loader_ratio():
    """disttorch samples/s divided by torch samples/s for the same loader configuration."""
    images, labels = _data()
    return disttorch_rate(images, labels) / torch_rate(images, labels)


def main():
    images, labels = _data()
    ours = disttorch_rate(images, labels)
    theirs = torch_rate(images, labels)
    print(f"TensorDataset {SAMPLES} x 1x28x28, batch {BATCH_SIZE}, shuffle, num_workers=0")
    print(f"disttorch: {ours:,.0f} samples/s   torch: {theirs:,.0f} samples/s")
    print(f"loader: ratio={ours / theirs:.2f}")


if __name__ == "__main__":
    main()
