"""int8 quantization benchmark: inference speed, model size and accuracy, against float32.

    python benchmarks/bench_quant.py [--hidden 8192] [--batch 1] [--repeats 25]

speed: an MLP with two hidden x hidden layers, run at a small batch (the latency case where the
weights' memory traffic bounds inference), float32 vs disttorch.quantization.quantize_dynamic.
Runs alternate between the two models so machine load affects both alike; medians are compared.
torch's own dynamic quantization of the same MLP runs alongside as the reference ratio.
size: bytes of all parameters and buffers (what a checkpoint stores), float32 / int8.
accuracy: a small CNN trained on the bundled digits, then static post-training quantization
(histogram-calibrated activations, per-channel int8 weights); the drop is in percentage points.

Last line: quant: speedup=X size_ratio=Y acc_drop=Z
"""
import argparse
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # shared helpers sit beside this file
import _timing  # noqa: E402,F401  (one BLAS thread, like every benchmark here)

import numpy as np  # noqa: E402

import disttorch  # noqa: E402
import disttorch.nn as nn  # noqa: E402
from disttorch import quantization as tq  # noqa: E402
from disttorch.utils.data import DataLoader, TensorDataset  # noqa: E402
from disttorch.vision.datasets import Digits  # noqa: E402
from disttorch.vision.models import DigitsCNN  # noqa: E402


def mlp(nn_module, hidden, in_features=1024, classes=10):
    return nn_module.Sequential(nn_module.Linear(in_features, hidden), nn_module.ReLU(),
                                nn_module.Linear(hidden, hidden), nn_module.ReLU(),
                                nn_module.Linear(hidden, hidden), nn_module.ReLU(),
                                nn_module.Linear(hidden, classes))


def interleaved_medians(fn_a, fn_b, repeats):
    fn_a(), fn_b()  # warm caches and buffers
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def bench_speed(args):
    disttorch.manual_seed(0)
    model = mlp(nn, args.hidden).eval()
    qmodel = tq.quantize_dynamic(model, {nn.Linear}, dtype=tq.qint8)
    x = disttorch.randn(args.batch, 1024)
    with disttorch.no_grad():
        error = (qmodel(x) - model(x)).abs().max().item() / model(x).abs().max().item()
        float_s, int8_s = interleaved_medians(lambda: model(x), lambda: qmodel(x), args.repeats)
    size_ratio = tq.model_size_bytes(model) / tq.model_size_bytes(qmodel)
    print(f"MLP 1024-{args.hidden}-{args.hidden}-{args.hidden}-10, batch {args.batch}: disttorch float32 "
          f"{float_s * 1e3:.2f} ms, int8 {int8_s * 1e3:.2f} ms -> speedup {float_s / int8_s:.2f}x "
          f"(max relative output error {error:.4f})")
    print(f"size: float32 {tq.model_size_bytes(model) / 2**20:.1f} MiB, int8 {tq.model_size_bytes(qmodel) / 2**20:.1f} "
          f"MiB -> ratio {size_ratio:.2f}")
    bench_torch_reference(args, x.numpy(), float_s, int8_s)
    return float_s / int8_s, size_ratio


def bench_torch_reference(args, x_np, float_s, int8_s):
    try:
        import torch
    except ImportError:
        print("torch not installed: no reference timings")
        return
    torch.manual_seed(0)
    model = mlp(torch.nn, args.hidden).eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's eager quantization API prints deprecation notices
            qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    except (RuntimeError, AttributeError) as err:
        print(f"torch dynamic quantization unavailable here: {err}")
        return
    x = torch.from_numpy(x_np)
    with torch.no_grad():
        t_float, t_int8 = interleaved_medians(lambda: model(x), lambda: qmodel(x), args.repeats)
    print(f"torch reference: float32 {t_float * 1e3:.2f} ms, int8 {t_int8 * 1e3:.2f} ms -> speedup "
          f"{t_float / t_int8:.2f}x; disttorch/torch time ratio: float32 {float_s / t_float:.2f}, "
          f"int8 {int8_s / t_int8:.2f}")


def accuracy(model, images, labels):
    with disttorch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


def bench_accuracy(args):
    disttorch.manual_seed(0)
    train, test = Digits(train=True), Digits(train=False)
    model = DigitsCNN()
    optimizer = disttorch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(train.data, train.targets), batch_size=64, shuffle=True)
    for _ in range(args.epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            loss_fn(model(images), labels).backward()
            optimizer.step()
    model.eval()
    float_acc = accuracy(model, test.data, test.targets)
    model.qconfig = tq.get_default_qconfig()

    def calibrate(prepared):
        with disttorch.no_grad():
            for start in range(0, len(train.targets), 256):
                prepared(train.data[start:start + 256])
    static = tq.quantize(model, calibrate)
    static_acc = accuracy(static, test.data, test.targets)
    dynamic_acc = accuracy(tq.quantize_dynamic(model, {nn.Linear}), test.data, test.targets)
    print(f"digits test accuracy: float32 {float_acc:.4f}, static int8 (conv+linear) {static_acc:.4f}, "
          f"dynamic int8 (linear) {dynamic_acc:.4f}; digits CNN size ratio "
          f"{tq.model_size_bytes(model) / tq.model_size_bytes(static):.2f}")
    return (float_acc - static_acc) * 100


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=8192)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=25)
    p.add_argument("--epochs", type=int, default=6)
    args = p.parse_args()
    np.random.seed(0)
    speedup, size_ratio = bench_speed(args)
    acc_drop = bench_accuracy(args)
    print(f"quant: speedup={speedup:.2f} size_ratio={size_ratio:.2f} acc_drop={acc_drop:.2f}")


if __name__ == "__main__":
    main()
