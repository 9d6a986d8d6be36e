"""One rank of the sharding tests: ``python sharding_worker.py SCENARIO[,SCENARIO...]``.

Runs under RANK/WORLD_SIZE/MASTER_* (see sharding_harness.py). Training scenarios compare a sharded
run against one process training on the full batch (every rank's slice, concatenated) from the same
initial weights, in float64. Each passed scenario prints one JSON line; any failure raises.
"""
import functools
import json
import os
import sys

import numpy as np

import disttorch as torch
import disttorch.distributed as dist
import disttorch.distributed.checkpoint as dcp
import disttorch.nn.functional as F
from disttorch import nn
from disttorch.distributed.algorithms import Join
from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks
from disttorch.distributed.fsdp import FullyShardedDataParallel as FSDP
from disttorch.distributed.fsdp import ShardingStrategy, StateDictType
from disttorch.distributed.fsdp import flat_param
from disttorch.distributed.fsdp.wrap import (ModuleWrapPolicy, size_based_auto_wrap_policy,
                                             transformer_auto_wrap_policy)
from disttorch.distributed.optim import ZeroRedundancyOptimizer
from disttorch.distributed.optim import zero_redundancy_optimizer as zero_module
from disttorch.nn.parallel import DistributedDataParallel as DDP

RANK = int(os.environ["RANK"])
WORLD = int(os.environ["WORLD_SIZE"])
WORKDIR = os.environ.get("WORKDIR", ".")
STEPS = 3
PER_RANK = 4
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def report(name, **details):
    print(json.dumps({"scenario": name, "passed": True, **details}), flush=True)


# ---- models -------------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self, width=16, depth=3):
        super().__init__()
        sizes = [6] + [width] * depth
        self.layers = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.Tanh())
                                      for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        return self.head(self.layers(x))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv2(torch.relu(self.conv1(x)))).flatten(1))


class TinyTransformer(nn.Module):
    # No biases inside the blocks: the attention key bias has an exactly zero gradient, and Adam
    # would blow its round-off up to a step of lr, making any two summation orders disagree.
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.blocks = nn.Sequential(
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, bias=False),
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, bias=False))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.blocks(self.embed(x)).mean(1))


MODELS = {"mlp": MLP, "cnn": CNN, "transformer": TinyTransformer}
INPUTS = {"mlp": (6,), "cnn": (2, 5, 5), "transformer": (4, 3)}
OPTIMIZERS = {
    "adam": (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01}),
    "sgd": (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
}


def build(kind, seed=0):
    torch.manual_seed(seed)
    return MODELS[kind]().double()


def global_batch(kind, step, rows=None):
    """Step ``step``'s batch over every rank (the same on every rank)."""
    rng = np.random.default_rng(1000 + step)
    rows = rows or PER_RANK * WORLD
    x = torch.from_numpy(rng.standard_normal((rows,) + INPUTS[kind]))
    y = torch.from_numpy(rng.integers(0, 3, rows).astype(np.int64))
    return x, y


def my_slice(batch, rank=RANK):
    return tuple(t[rank * PER_RANK:(rank + 1) * PER_RANK] for t in batch)


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def reference(kind, opt_name, steps=STEPS):
    model = build(kind)
    cls, kwargs = OPTIMIZERS[opt_name]
    optimizer = cls(model.parameters(), **kwargs)
    for step in range(steps):
        train_step(model, optimizer, *global_batch(kind, step))
    return model, optimizer


def assert_same_parameters(expected, actual, what, tolerance=TIGHT):
    for (name, want), (_, got) in zip(expected.named_parameters(), actual.named_parameters()):
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), **tolerance,
                                   err_msg=f"{what}: parameter {name} differs on rank {RANK}")


def state_bytes(state):
    return sum(value._data.nbytes for entry in state.values() for value in entry.values()
               if isinstance(value, torch.Tensor))


# ---- ZeroRedundancyOptimizer -------------------------------------------------------------------
def zero_training(kind, opt_name, steps=STEPS, **zero_kwargs):
    model = DDP(build(kind))
    cls, kwargs = OPTIMIZERS[opt_name]
    optimizer = ZeroRedundancyOptimizer(model.parameters(), cls, **zero_kwargs, **kwargs)
    for step in range(steps):
        train_step(model, optimizer, *my_slice(global_batch(kind, step)))
    return model, optimizer


def zero_matches_full_batch():
    for kind in MODELS:
        for opt_name in OPTIMIZERS:
            expected, _ = reference(kind, opt_name)
            model, _ = zero_training(kind, opt_name)
            assert_same_parameters(expected, model.module, f"ZeRO {kind} {opt_name}")
    report("zero_matches_full_batch")


def zero_bucket_view_and_comm_hook():
    expected, _ = reference("mlp", "adam")
    model = DDP(build("mlp"))
    model.register_comm_hook(None, default_hooks.allreduce_hook)
    cls, kwargs = OPTIMIZERS["adam"]
    optimizer = ZeroRedundancyOptimizer(model.parameters(), cls, parameters_as_bucket_view=True,
                                        **kwargs)
    for step in range(STEPS):
        train_step(model, optimizer, *my_slice(global_batch("mlp", step)))
    assert_same_parameters(expected, model.module, "ZeRO with bucket views and a comm hook")
    # Every parameter broadcast in place, as large ones are.
    zero_module._LONE_BROADCAST_BYTES = 0
    model, _ = zero_training("mlp", "adam")
    zero_module._LONE_BROADCAST_BYTES = 1 << 20
    assert_same_parameters(expected, model.module, "ZeRO broadcasting parameters in place")
    report("zero_bucket_view_and_comm_hook")


def zero_state_is_sharded():
    """Adam state bytes per rank = total / N within the greedy partition's bound (the largest
    parameter's state), and no parameter's state lives on two ranks."""
    model, optimizer = zero_training("mlp", "adam", steps=1)
    mine = state_bytes(optimizer.optim.state)
    everyone = [None] * WORLD
    dist.all_gather_object(everyone, mine)
    _, full = reference("mlp", "adam", steps=1)
    total = state_bytes(full.state)
    largest = max(state_bytes({0: entry}) for entry in full.state.values())
    assert sum(everyone) == total, (everyone, total)
    assert abs(mine - total / WORLD) <= largest, (mine, total, largest)
    report("zero_state_is_sharded", state_bytes=mine, total_bytes=total)


def zero_state_dict_round_trip():
    expected_model, expected_opt = reference("transformer", "adam")
    model, optimizer = zero_training("transformer", "adam")
    if RANK == 1:
        try:
            optimizer.state_dict()
        except RuntimeError as error:
            assert "consolidate_state_dict" in str(error), error
        else:
            raise AssertionError("state_dict() before consolidation must raise")
    optimizer.consolidate_state_dict(to=0)
    path = os.path.join(WORKDIR, "zero_optim.pt")
    if RANK == 0:
        state = optimizer.state_dict()
        want = expected_opt.state_dict()
        assert list(state["state"]) == list(want["state"]), (list(state["state"]), list(want["state"]))
        for index, entry in want["state"].items():
            assert set(state["state"][index]) == set(entry), (state["state"][index].keys(), entry.keys())
            for key, value in entry.items():
                np.testing.assert_allclose(state["state"][index][key].numpy(), value.numpy(), **TIGHT)
        assert [g["params"] for g in state["param_groups"]] == [g["params"] for g in want["param_groups"]]
        assert {k: v for k, v in state["param_groups"][0].items() if k != "params"} == \
            {k: v for k, v in want["param_groups"][0].items() if k != "params"}
        torch.save(state, path)
    dist.barrier()
    # A fresh optimizer on the trained weights continues exactly where the first one stopped.
    cls, kwargs = OPTIMIZERS["adam"]
    resumed = ZeroRedundancyOptimizer(model.parameters(), cls, **kwargs)
    resumed.load_state_dict(torch.load(path))
    x, y = global_batch("transformer", STEPS)
    train_step(expected_model, expected_opt, x, y)
    train_step(model, resumed, *my_slice((x, y)))
    assert_same_parameters(expected_model, model.module, "ZeRO after load_state_dict")
    report("zero_state_dict_round_trip")


# ---- Join ---------------------------------------------------------------------------------------
def my_batch_count():
    return int(os.environ["BATCHES"].split(",")[RANK])


def uneven_reference(kind, opt_name, counts):
    """One process: step k averages the gradients of the ranks that still have a batch k,
    dividing by the whole world size (what a joined rank's zeros give)."""
    model = build(kind)
    cls, kwargs = OPTIMIZERS[opt_name]
    optimizer = cls(model.parameters(), **kwargs)
    for step in range(max(counts)):
        optimizer.zero_grad()
        batch = global_batch(kind, step)
        for rank, count in enumerate(counts):
            if step < count:
                x, y = my_slice(batch, rank)
                (F.cross_entropy(model(x), y) / len(counts)).backward()
        optimizer.step()
    return model


def join_uneven_inputs():
    """Ranks with different numbers of batches (e.g. 10/7/3) finish together under Join, with
    DDP + ZeRO (Adam) and with DDP + a plain optimizer (SGD with momentum)."""
    counts = [int(n) for n in os.environ["BATCHES"].split(",")]
    for opt_name, sharded in (("adam", True), ("sgd", False)):
        model = DDP(build("mlp"))
        cls, kwargs = OPTIMIZERS[opt_name]
        optimizer = ZeroRedundancyOptimizer(model.parameters(), cls, **kwargs) if sharded \
            else cls(model.parameters(), **kwargs)
        with Join([model, optimizer] if sharded else [model]):
            for step in range(counts[RANK]):
                train_step(model, optimizer, *my_slice(global_batch("mlp", step)))
        expected = uneven_reference("mlp", opt_name, counts)
        assert_same_parameters(expected, model.module, f"Join with {opt_name}")
    report("join_uneven_inputs")


def join_missing_names_rank():
    """Without Join, the ranks still training fail naming the rank that ran out (no hang);
    that rank, now in a barrier, sees a collective mismatch. Leaves the group failed."""
    counts = [min(int(n), 4) for n in os.environ["BATCHES"].split(",")]
    model = DDP(build("mlp"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    try:
        for step in range(counts[RANK]):
            train_step(model, optimizer, *my_slice(global_batch("mlp", step)))
        dist.barrier()
    except RuntimeError as error:
        report("join_missing_names_rank", error=str(error))
        return
    raise AssertionError("uneven inputs without Join must fail")


# ---- FullyShardedDataParallel ------------------------------------------------------------------
POLICIES = {
    "mlp": ModuleWrapPolicy({nn.Linear}),
    "cnn": functools.partial(size_based_auto_wrap_policy, min_num_params=50),
    "transformer": functools.partial(transformer_auto_wrap_policy,
                                     transformer_layer_cls={nn.TransformerEncoderLayer}),
}


def fsdp_model(kind, strategy=ShardingStrategy.FULL_SHARD, seed=0, **kwargs):
    return FSDP(build(kind, seed), sharding_strategy=strategy, auto_wrap_policy=POLICIES[kind],
                **kwargs)


def full_state(model):
    with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT):
        return model.state_dict()


def assert_same_state(expected, actual, what, tolerance=TIGHT):
    assert list(actual) == list(expected), (list(actual), list(expected))
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key].numpy(), value.detach().numpy(), **tolerance,
                                   err_msg=f"{what}: {key} differs on rank {RANK}")


def fsdp_matches_full_batch():
    for strategy in (ShardingStrategy.FULL_SHARD, ShardingStrategy.SHARD_GRAD_OP):
        for kind in MODELS:
            for opt_name in OPTIMIZERS:
                expected, _ = reference(kind, opt_name)
                model = fsdp_model(kind, strategy)
                cls, kwargs = OPTIMIZERS[opt_name]
                optimizer = cls(model.parameters(), **kwargs)
                for step in range(STEPS):
                    train_step(model, optimizer, *my_slice(global_batch(kind, step)))
                assert_same_state(expected.state_dict(), full_state(model),
                                  f"FSDP {strategy.name} {kind} {opt_name}")
    report("fsdp_matches_full_batch")


def fsdp_memory_is_sharded():
    """Per rank, parameter + gradient + Adam state bytes = 1/N of the model's (plus at most one
    element of padding per unit and tensor), and gathered parameters never exceed the largest
    unit at once under FULL_SHARD; SHARD_GRAD_OP holds every unit from forward to backward."""
    unit_bytes = [8 * sum(m.weight.numel() + m.bias.numel() for m in [layer])
                  for layer in build("mlp").modules() if isinstance(layer, nn.Linear)]
    total = sum(unit_bytes)
    peaks = {}
    for strategy in (ShardingStrategy.FULL_SHARD, ShardingStrategy.SHARD_GRAD_OP):
        model = fsdp_model("mlp", strategy)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        flat_param.UNSHARDED_BYTES["peak"] = flat_param.UNSHARDED_BYTES["alive"]
        train_step(model, optimizer, *my_slice(global_batch("mlp", 0)))
        peaks[strategy.name] = flat_param.UNSHARDED_BYTES["peak"]
        params = sum(p._data.nbytes for p in model.parameters())
        grads = sum(p.grad._data.nbytes for p in model.parameters())
        state = sum(v._data.nbytes for entry in optimizer.state.values()
                    for k, v in entry.items() if k != "step")
        padding = 8 * len(unit_bytes)
        for what, measured in (("parameters", params), ("gradients", grads), ("Adam state", state / 2)):
            assert total / WORLD <= measured <= total / WORLD + padding, (what, measured, total)
    assert max(unit_bytes) <= peaks["FULL_SHARD"] <= max(unit_bytes) + 8 * WORLD, (peaks, unit_bytes)
    assert peaks["SHARD_GRAD_OP"] >= total, (peaks, total)
    report("fsdp_memory_is_sharded", peaks=peaks, unit_bytes=unit_bytes)


def fsdp_sharded_state_dict_round_trip():
    model = fsdp_model("transformer")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_step(model, optimizer, *my_slice(global_batch("transformer", 0)))
    with FSDP.state_dict_type(model, StateDictType.SHARDED_STATE_DICT):
        sharded = model.state_dict()
    key = "blocks.0.linear1.weight"
    assert tuple(sharded[key].size()) == (16, 8), sharded[key]
    assert sharded[key].local_tensor().shape[0] == len(range(16)[RANK * -(-16 // WORLD):][:-(-16 // WORLD)])
    fresh = fsdp_model("transformer", seed=5)
    with FSDP.state_dict_type(fresh, StateDictType.SHARDED_STATE_DICT):
        fresh.load_state_dict(sharded)
    assert_same_state(full_state(model), full_state(fresh), "after a sharded load_state_dict")
    report("fsdp_sharded_state_dict_round_trip")


# ---- distributed checkpoints -------------------------------------------------------------------
def sharded_state(model):
    with FSDP.state_dict_type(model, StateDictType.SHARDED_STATE_DICT):
        return model.state_dict()


def load_sharded(model, state):
    with FSDP.state_dict_type(model, StateDictType.SHARDED_STATE_DICT):
        model.load_state_dict(state)


def trained_fsdp(steps):
    model = fsdp_model("transformer")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(steps):
        train_step(model, optimizer, *my_slice(global_batch("transformer", step)))
    return model


def checkpoint_save(name="ckpt", steps=1):
    """Save this world's shards, and (rank 0) the full state the loads must reproduce."""
    model = trained_fsdp(steps)
    dcp.save({"model": sharded_state(model), "step": steps},
             checkpoint_id=os.path.join(WORKDIR, name))
    expected = full_state(model)
    if RANK == 0:
        torch.save(expected, os.path.join(WORKDIR, f"{name}_expected.pt"))
    return model


def checkpoint_save_sharded():
    checkpoint_save()
    report("checkpoint_save_sharded")


def checkpoint_reshard_and_resave():
    """Load a checkpoint saved by another world size into this one's shards, then save it again."""
    model = fsdp_model("transformer", seed=5)
    state = {"model": sharded_state(model), "step": 0}
    dcp.load(state, checkpoint_id=os.path.join(WORKDIR, "ckpt"))
    assert state["step"] == 1, state["step"]
    load_sharded(model, state["model"])
    expected = torch.load(os.path.join(WORKDIR, "ckpt_expected.pt"))
    assert_same_state(expected, full_state(model), f"resharded to {WORLD} ranks", TIGHT)
    dcp.save({"model": sharded_state(model), "step": 1},
             checkpoint_id=os.path.join(WORKDIR, f"ckpt_from_{WORLD}"))
    report("checkpoint_reshard_and_resave")


def checkpoint_load_whole():
    """One process, no FSDP: every saved checkpoint loads into a plain model's state_dict."""
    expected = torch.load(os.path.join(WORKDIR, "ckpt_expected.pt"))
    for name in ("ckpt", "ckpt_from_2"):
        model = build("transformer", seed=7)
        state = {"model": model.state_dict(), "step": 0}
        dcp.load(state, checkpoint_id=os.path.join(WORKDIR, name), no_dist=True)
        assert_same_state(expected, model.state_dict(), f"{name} into one process", TIGHT)
    report("checkpoint_load_whole")


def checkpoint_crash_mid_save():
    """Save, then die while committing a second save: the first must stay loadable."""
    model = checkpoint_save("crash", steps=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_step(model, optimizer, *my_slice(global_batch("transformer", 5)))
    report("checkpoint_crash_mid_save")
    if RANK == 0:
        # Every rank has written its file of the second save; rank 0 dies before committing.
        dcp.filesystem.commit = lambda root, metadata: os._exit(3)
    dcp.save({"model": sharded_state(model), "step": 2},
             checkpoint_id=os.path.join(WORKDIR, "crash"))
    raise AssertionError("the second save must not complete")


def checkpoint_after_crash():
    expected = torch.load(os.path.join(WORKDIR, "crash_expected.pt"))
    model = build("transformer", seed=7)
    state = {"model": model.state_dict(), "step": 0}
    dcp.load(state, checkpoint_id=os.path.join(WORKDIR, "crash"), no_dist=True)
    assert state["step"] == 1, state["step"]
    assert_same_state(expected, model.state_dict(), "the checkpoint before the crash", TIGHT)
    data_dirs = [n for n in os.listdir(os.path.join(WORKDIR, "crash")) if n.startswith("data-")]
    report("checkpoint_after_crash", data_dirs=len(data_dirs))


SCENARIOS = {name: fn for name, fn in globals().items()
             if callable(fn) and name.startswith(("zero_", "join_", "fsdp_", "checkpoint_"))
             and fn.__module__ == "__main__"}


def main():
    dist.init_process_group("gloo")
    try:
        for name in sys.argv[1].split(","):
            SCENARIOS[name]()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
