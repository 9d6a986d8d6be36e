"""One DDP rank: ``python ddp_worker.py SCENARIO[,SCENARIO...]`` under RANK/WORLD_SIZE/MASTER_* env.

Every scenario trains with DDP and compares against a single-process reference computed on this rank
from the same data (the concatenation of every rank's slice). Each scenario prints one JSON line
{"scenario": name, "passed": true}; any failure raises, which exits non-zero.
"""
import gc
import json
import os
import sys
import weakref

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
from disttorch import nn
from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook
from disttorch.nn.parallel import DistributedDataParallel as DDP
from disttorch.nn.parallel import comm_hooks
from disttorch.utils.data import DataLoader, TensorDataset
from disttorch.utils.data.distributed import DistributedSampler

RANK = int(os.environ["RANK"])
WORLD = int(os.environ["WORLD_SIZE"])
STEPS = 3
PER_RANK = 4
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def report(name):
    print(json.dumps({"scenario": name, "passed": True}), flush=True)


# ---- models -------------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self, hidden=16):
        super().__init__()
        self.fc1 = nn.Linear(6, hidden)
        self.fc2 = nn.Linear(hidden, 12)
        self.fc3 = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(torch.relu(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


class RNNClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class Branchy(nn.Module):
    """`extra` joins the computation only on even steps; `never` never does."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(6, 8)
        self.extra = nn.Linear(8, 8)
        self.never = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x, use_extra):
        h = torch.relu(self.trunk(x))
        if use_extra:
            h = h + self.extra(h)
        return self.head(h)


class Scale(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(size, dtype=torch.float64))

    def forward(self, coefficients):
        return (self.weight * coefficients).sum()


INPUTS = {MLP: (6,), CNN: (2, 5, 5), RNNClassifier: (4, 3), Branchy: (6,)}


def build(kind, seed=0):
    torch.manual_seed(seed)
    model = kind().double()
    return model


# ---- data: every rank's slice of the global batch via DistributedSampler ------------------------
def dataset(kind, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    n = steps * PER_RANK * WORLD
    x = torch.from_numpy(rng.standard_normal((n,) + INPUTS[kind]))
    y = torch.from_numpy(rng.integers(0, 3, n).astype(np.int64))
    return TensorDataset(x, y)


def my_batches(data):
    sampler = DistributedSampler(data, shuffle=True, seed=3)
    return list(DataLoader(data, batch_size=PER_RANK, sampler=sampler))


def global_batches(data):
    """What one process would see: step k's batch is every rank's k-th batch, concatenated."""
    per_rank = [list(DistributedSampler(data, num_replicas=WORLD, rank=r, shuffle=True, seed=3))
                for r in range(WORLD)]
    steps = len(per_rank[0]) // PER_RANK
    batches = []
    for k in range(steps):
        idx = [i for r in range(WORLD) for i in per_rank[r][k * PER_RANK:(k + 1) * PER_RANK]]
        batches.append((data.tensors[0][idx], data.tensors[1][idx]))
    return batches


def optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def step(model, opt, x, y, **forward_kwargs):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x, **forward_kwargs), y).backward()
    opt.step()


def train(model, batches):
    opt = optimizer(model)
    for x, y in batches:
        step(model, opt, x, y)
    return model


def _unprefixed(state):
    return {k.removeprefix("module."): v for k, v in state.items()}


def assert_same(model_a, model_b, what, **tolerance):
    """Same state_dict values (a DDP wrapper's `module.` prefix ignored)."""
    tolerance = tolerance or TIGHT
    expected = _unprefixed(model_b.state_dict())
    for name, value in _unprefixed(model_a.state_dict()).items():
        np.testing.assert_allclose(value.numpy(), expected[name].numpy(), err_msg=f"{what}: {name}", **tolerance)


def equivalence(kind, **ddp_kwargs):
    data = dataset(kind)
    reference = train(build(kind), global_batches(data))
    model = build(kind)
    if kind is CNN:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = train(DDP(model, **ddp_kwargs), my_batches(data))
    assert_same(ddp, reference, f"{kind.__name__} {ddp_kwargs}")


# ---- scenarios ----------------------------------------------------------------------------------
def scenario_mlp():
    equivalence(MLP)


def scenario_rewrapped_model():
    """A model wrapped again (as an in-process restart does) trains as with one wrapper, and the
    first wrapper's reducer, hooks and buckets are gone with it."""
    data = dataset(MLP)
    reference = train(build(MLP), global_batches(data))
    model = build(MLP)
    first = DDP(model)
    first_reducer = weakref.ref(first.reducer)
    del first
    gc.collect()
    assert first_reducer() is None, "the first DDP's reducer outlived it"
    assert all(not p._post_acc_hooks for p in model.parameters()), "the first DDP's hooks stayed"
    assert_same(train(DDP(model), my_batches(data)), reference, "MLP wrapped twice")


def scenario_cnn_syncbn():
    equivalence(CNN)


def scenario_lstm():
    equivalence(RNNClassifier)


def scenario_small_buckets():
    """Several buckets (one per parameter: reduced in place), with and without gradient_as_bucket_view."""
    data = dataset(MLP)
    reference = train(build(MLP), global_batches(data))
    for as_view in (False, True):
        ddp = DDP(build(MLP), bucket_cap_mb=0.0005, gradient_as_bucket_view=as_view)
        train(ddp, my_batches(data))
        assert len(ddp.reducer.buckets) >= 3, f"expected several buckets, got {len(ddp.reducer.buckets)}"
        for p in ddp.parameters():
            in_bucket = any(np.shares_memory(p.grad.numpy(), b.buffer.numpy()) for b in ddp.reducer.buckets)
            assert in_bucket == as_view, f"gradient_as_bucket_view={as_view} but .grad in bucket: {in_bucket}"
        assert_same(ddp, reference, f"small buckets, gradient_as_bucket_view={as_view}")


def scenario_wide_mlp():
    """Buckets of a few hundred KiB: large enough for the shared-memory and multi-host paths."""
    data = dataset(MLP)
    torch.manual_seed(0)
    reference = train(MLP(hidden=2048).double(), global_batches(data))
    torch.manual_seed(0)
    ddp = train(DDP(MLP(hidden=2048).double(), bucket_cap_mb=0.25), my_batches(data))
    assert max(b.buffer.numpy().nbytes for b in ddp.reducer.buckets) >= 128 << 10
    assert_same(ddp, reference, "wide MLP")


def scenario_no_sync():
    """Two micro-batches per optimizer step: the first under no_sync, the second synchronised."""
    data = dataset(MLP, steps=2 * STEPS)
    reference, ddp = build(MLP), DDP(build(MLP))
    for model, batches in ((reference, global_batches(data)), (ddp, my_batches(data))):
        opt = optimizer(model)
        for k in range(0, len(batches), 2):
            opt.zero_grad()
            (x1, y1), (x2, y2) = batches[k], batches[k + 1]
            if model is ddp:
                with ddp.no_sync():
                    nn.functional.cross_entropy(ddp(x1), y1).backward()
            else:
                nn.functional.cross_entropy(model(x1), y1).backward()
            nn.functional.cross_entropy(model(x2), y2).backward()
            opt.step()
    assert_same(ddp, reference, "no_sync accumulation")


def scenario_unused_parameters():
    data = dataset(Branchy, steps=4)
    reference, ddp = build(Branchy), DDP(build(Branchy), find_unused_parameters=True)
    for model, batches in ((reference, global_batches(data)), (ddp, my_batches(data))):
        opt = optimizer(model)
        for k, (x, y) in enumerate(batches):
            step(model, opt, x, y, use_extra=(k % 2 == 0))
    assert_same(ddp, reference, "find_unused_parameters")
    assert ddp.module.never.weight.grad is None, "a parameter unused on every rank keeps grad None"


def scenario_unused_parameters_with_no_sync():
    """`extra` is used only in the no_sync micro-step: its accumulated gradient must still be averaged."""
    data = dataset(Branchy, steps=4)
    reference, ddp = build(Branchy), DDP(build(Branchy), find_unused_parameters=True)
    for model, batches in ((reference, global_batches(data)), (ddp, my_batches(data))):
        opt = optimizer(model)
        for k in range(0, len(batches), 2):
            opt.zero_grad()
            (x1, y1), (x2, y2) = batches[k], batches[k + 1]
            if model is ddp:
                with ddp.no_sync():
                    nn.functional.cross_entropy(ddp(x1, use_extra=True), y1).backward()
            else:
                nn.functional.cross_entropy(model(x1, use_extra=True), y1).backward()
            nn.functional.cross_entropy(model(x2, use_extra=False), y2).backward()
            opt.step()
    assert_same(ddp, reference, "find_unused_parameters with no_sync")


def scenario_unused_without_detection_raises():
    data = dataset(Branchy)
    ddp = DDP(build(Branchy))
    opt = optimizer(ddp)
    (x, y), (x2, y2) = my_batches(data)[:2]
    step(ddp, opt, x, y, use_extra=True)
    try:
        step(ddp, opt, x2, y2, use_extra=True)
    except RuntimeError as err:
        message = str(err)
        assert "never.weight" in message and "never.bias" in message, message
        assert "find_unused_parameters=True" in message, message
        assert "extra.weight" not in message and f"rank {RANK}" in message, message
    else:
        raise AssertionError("an unused parameter without find_unused_parameters must raise")


def scenario_parameters_broadcast_from_rank0():
    rank0_model = build(MLP, seed=100)
    ddp = DDP(build(MLP, seed=100 + RANK))
    assert_same(ddp, rank0_model, "parameters after construction")


def scenario_shape_mismatch_names_parameter_and_ranks():
    hidden = 16 if RANK == 0 else 17
    torch.manual_seed(0)
    model = MLP(hidden).double()
    try:
        DDP(model)
    except RuntimeError as err:
        message = str(err)
        assert "fc1.weight" in message and "rank 0" in message and f"rank {WORLD - 1}" in message, message
        assert "[16, 6]" in message and "[17, 6]" in message, message
    else:
        raise AssertionError("different parameter shapes across ranks must raise")


def _hooked_training(hook_state, hook):
    data = dataset(MLP)
    ddp = DDP(build(MLP))
    if hook is not None:
        ddp.register_comm_hook(hook_state, hook)
    return train(ddp, my_batches(data)), train(build(MLP), global_batches(data))


def scenario_comm_hooks():
    """The explicit all-reduce hook matches the built-in average; fp16/bf16 are close, not exact."""
    ddp, reference = _hooked_training(None, default_hooks.allreduce_hook)
    assert_same(ddp, reference, "allreduce_hook")
    for hook in (default_hooks.fp16_compress_hook, default_hooks.bf16_compress_hook):
        ddp, reference = _hooked_training(None, hook)
        assert_same(ddp, reference, hook.__name__, rtol=2e-2, atol=2e-3)


def scenario_powersgd():
    """At full rank PowerSGD rebuilds the exact average (P orthonormal and square), so training matches
    the single process once it takes over at step 3; error feedback residuals cancel across ranks."""
    data = dataset(MLP, steps=6)
    state = powerSGD_hook.PowerSGDState(None, matrix_approximation_rank=64, start_powerSGD_iter=2,
                                        min_compression_rate=0, random_seed=7)
    ddp = DDP(build(MLP))
    ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
    train(ddp, my_batches(data))
    assert_same(ddp, train(build(MLP), global_batches(data)), "full-rank PowerSGD", rtol=1e-8, atol=1e-10)
    assert state.iter == 6 and set(state.error_dict) == {0}
    residual = torch.from_numpy(state.error_dict[0].copy())
    dist.all_reduce(residual)
    np.testing.assert_allclose(residual.numpy(), 0, atol=1e-10)
    # Rank 1 really compresses: several times fewer numbers than the gradients hold.
    low = powerSGD_hook.PowerSGDState(None, matrix_approximation_rank=1, start_powerSGD_iter=2)
    ddp = DDP(build(MLP))
    ddp.register_comm_hook(low, powerSGD_hook.powerSGD_hook)
    train(ddp, my_batches(data))
    assert low.compression_stats()[0] > 2, low.compression_stats()
    try:
        powerSGD_hook.PowerSGDState(None, start_powerSGD_iter=1)
    except ValueError as err:
        assert "start_powerSGD_iter" in str(err)
    else:
        raise AssertionError("start_powerSGD_iter <= 1 with error feedback must raise")


def scenario_error_feedback():
    """A constant gradient that fp16 cannot represent: with error feedback the rounding errors cancel
    over the steps instead of adding up."""
    steps = 40
    exact = np.full(64, 1 / 3 + 1e-4) * np.linspace(1, 2, 64)

    def drift(hook):
        model = Scale(64)
        ddp = DDP(model)
        ddp.register_comm_hook(comm_hooks.ErrorFeedbackState(), hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=1.0)
        for _ in range(steps):
            opt.zero_grad()
            ddp(torch.from_numpy(exact)).backward()
            opt.step()
        return np.abs(model.weight.detach().numpy() + steps * exact).max()

    plain = drift(lambda state, bucket: comm_hooks.fp16_compress_hook(state.process_group, bucket))
    corrected = drift(comm_hooks.with_error_feedback(comm_hooks.fp16_compress_hook))
    assert corrected < plain / 5, (corrected, plain)


def scenario_checkpoint_resume():
    """Save on rank 0 after K steps, rebuild on every rank from the file, continue: identical to never
    stopping. The DDP state_dict has `module.` prefixes and loads into a bare model once stripped."""
    data = dataset(MLP, steps=2 * STEPS)
    batches = my_batches(data)
    straight = train(DDP(build(MLP)), batches)

    first = DDP(build(MLP))
    opt = optimizer(first)
    for x, y in batches[:STEPS]:
        step(first, opt, x, y)
    assert all(k.startswith("module.") for k in first.state_dict())
    path = os.path.join(os.environ["CHECKPOINT_DIR"], "ddp.pt")
    if RANK == 0:
        torch.save({"model": first.module.state_dict(), "optim": opt.state_dict()}, path)
    dist.barrier()

    bare = build(MLP, seed=55)
    bare.load_state_dict({k.removeprefix("module."): v for k, v in first.state_dict().items()})
    assert_same(bare, first, "stripped DDP state_dict")

    checkpoint = torch.load(path)
    resumed_model = build(MLP, seed=77 + RANK)
    resumed_model.load_state_dict(checkpoint["model"])
    resumed = DDP(resumed_model)
    opt = optimizer(resumed)
    opt.load_state_dict(checkpoint["optim"])
    for x, y in batches[STEPS:]:
        step(resumed, opt, x, y)
    assert_same(resumed, straight, "resumed training")


def scenario_raise_in_forward():
    """Rank 1 fails in forward; the others' next collective must name it instead of hanging."""
    ddp = DDP(build(MLP))
    x, y = my_batches(dataset(MLP))[0]
    if RANK == 1:
        raise ValueError("deliberate failure in forward on rank 1")
    nn.functional.cross_entropy(ddp(x), y).backward()
    dist.barrier()


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")}


def main():
    dist.init_process_group("zmq")
    for name in sys.argv[1].split(","):
        SCENARIOS[name]()
        report(name)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
