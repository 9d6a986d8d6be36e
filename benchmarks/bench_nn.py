"""disttorch.nn training steps against PyTorch CPU, both on one thread, in the same process.

(a) CNN Conv2d(1,32,3,p=1)-ReLU-MaxPool2d(2)-Conv2d(32,64,3,p=1)-ReLU-MaxPool2d(2)-Linear(3136,128)-ReLU-
    Linear(128,10), batch 64 of 1x28x28, cross-entropy, forward + backward + SGD step.
(b) LSTM(10, 50, num_layers=2, batch_first) on batch 32 x 20 steps, Linear(50, 2) on the last step,
    cross-entropy, forward + backward + Adam step.
(c) DataLoader throughput over a TensorDataset (benchmarks/bench_loader.py's loader_ratio()).

Both libraries start from the same weights (copied through state_dict). Rounds alternate between the
libraries so drifts in machine load hit both, and each library's best round is reported: on a shared
machine the fastest round is the one least disturbed by other work, for either library.
Last line: `nn: cnn_ratio=X lstm_ratio=Y loader_ratio=Z` (time ratios disttorch / torch for X and Y,
throughput ratio disttorch / torch for Z).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # shared helpers sit beside this file
from _timing import compare  # noqa: E402  (sets one BLAS thread before numpy loads)

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import disttorch  # noqa: E402

from bench_loader import loader_ratio  # noqa: E402

torch.set_num_threads(1)


def _cnn(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def _lstm_classifier(lib):
    nn = lib.nn

    class SequenceClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(10, 50, num_layers=2, batch_first=True)
            self.head = nn.Linear(50, 2)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out[:, -1])

    return SequenceClassifier()


def _same_weights(ours, theirs):
    ours.load_state_dict({k: disttorch.from_numpy(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()})


def _train_step(lib, model, optimizer, x, y):
    def step():
        optimizer.zero_grad()
        loss = lib.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def _steps(make_model, make_optimizer, x, y):
    torch.manual_seed(0)
    theirs = make_model(torch)
    ours = make_model(disttorch)
    _same_weights(ours, theirs)
    ref = _train_step(torch, theirs, make_optimizer(torch, theirs), torch.from_numpy(x), torch.from_numpy(y))
    mine = _train_step(disttorch, ours, make_optimizer(disttorch, ours), disttorch.from_numpy(x),
                       disttorch.from_numpy(y))
    first_ref, first_mine = ref().item(), mine().item()
    if abs(first_ref - first_mine) > 1e-3 * max(1.0, abs(first_ref)):
        raise SystemExit(f"the two models disagree on the first loss: torch {first_ref}, disttorch {first_mine}")
    return mine, ref


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--cnn-steps", type=int, default=3)
    parser.add_argument("--lstm-steps", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    images = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    digits = rng.integers(0, 10, 64)
    ours, ref = _steps(_cnn, lambda lib, m: lib.optim.SGD(m.parameters(), lr=0.01), images, digits)
    cnn_ratio = compare("cnn (batch 64, fwd+bwd+SGD)", ours, ref, args.cnn_steps, args.rounds)

    sequences = rng.standard_normal((32, 20, 10)).astype(np.float32)
    classes = rng.integers(0, 2, 32)
    ours, ref = _steps(_lstm_classifier, lambda lib, m: lib.optim.Adam(m.parameters(), lr=1e-3), sequences, classes)
    lstm_ratio = compare("lstm (batch 32 x 20 steps, fwd+bwd+Adam)", ours, ref, args.lstm_steps, args.rounds)

    loader = loader_ratio()
    print(f"loader (TensorDataset, batch 128): throughput ratio {loader:.2f}")
    print(f"nn: cnn_ratio={cnn_ratio:.2f} lstm_ratio={lstm_ratio:.2f} loader_ratio={loader:.2f}")


if __name__ == "__main__":
    main()
