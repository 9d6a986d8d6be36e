"""How far sharding stretches a fixed per-process memory cap, and what it costs per step.

For DDP, DDP + ZeroRedundancyOptimizer and FSDP (FULL_SHARD, one unit per Linear), all with
Adam on a float32 MLP of DEPTH square layers: the widest MLP that still trains two steps when every
worker caps its address space (``resource.setrlimit(RLIMIT_AS)``) at its size after start-up plus
``--budget-mb``, at 2 and 4 ranks (binary search over the width, one job per try). Workers run
with MALLOC_ARENA_MAX=1: glibc would otherwise reserve 64 MiB of address space per thread that
mallocs, which counts against the cap without being used. Then, at a size
all three fit, seconds per step of DDP, FSDP FULL_SHARD and FSDP SHARD_GRAD_OP at 2 ranks, in
alternating rounds, at batch STEP_BATCH (each mode's fastest step after the first).

Last line: `sharding: zero_max_params_ratio=X fsdp_max_params_ratio=Y fsdp_step_ratio=Z`
  X, Y = largest parameter count that fits with ZeRO / FSDP over DDP's, at 2 ranks
  Z = FSDP (FULL_SHARD) seconds per step / DDP seconds per step, at 2 ranks
"""
import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # shared helpers sit beside this file
import _timing  # noqa: E402,F401  (one BLAS thread per process, inherited by the workers)

DEPTH = 8
BATCH = 16
# Step times use a larger batch, so that compute (which FULL_SHARD partly redoes) weighs as it
# would in training rather than the optimizer step alone.
STEP_BATCH = 128
MODES = ("ddp", "zero", "fsdp")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parameter_count(width):
    return DEPTH * (width * width + width)


# ---- worker side --------------------------------------------------------------------------------
def build(width):
    import disttorch as torch
    from disttorch import nn
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(DEPTH)])


def wrap(mode, model):
    import disttorch as torch
    from disttorch import nn
    from disttorch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from disttorch.distributed.fsdp import ShardingStrategy
    from disttorch.distributed.fsdp.wrap import ModuleWrapPolicy
    from disttorch.distributed.optim import ZeroRedundancyOptimizer
    from disttorch.nn.parallel import DistributedDataParallel as DDP
    if mode in ("ddp", "zero"):
        model = DDP(model)
        if mode == "zero":
            return model, ZeroRedundancyOptimizer(model.parameters(), torch.optim.Adam, lr=1e-4)
        return model, torch.optim.Adam(model.parameters(), lr=1e-4)
    strategy = ShardingStrategy.SHARD_GRAD_OP if mode == "fsdp_grad_op" else ShardingStrategy.FULL_SHARD
    model = FSDP(model, sharding_strategy=strategy, auto_wrap_policy=ModuleWrapPolicy({nn.Linear}))
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def vm_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def worker(mode, width, steps, budget_mb, batch):
    import numpy as np

    import disttorch as torch
    import disttorch.distributed as dist
    import disttorch.nn.functional as F
    dist.init_process_group("gloo")
    # OpenBLAS maps its work buffer at the first product: make that part of the start-up size.
    np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)
    if budget_mb:
        cap = vm_bytes() + budget_mb * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    rng = np.random.default_rng(dist.get_rank())
    x = torch.from_numpy(rng.standard_normal((batch, width)).astype(np.float32))
    model, optimizer = wrap(mode, build(width))
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        optimizer.zero_grad()
        F.mse_loss(model(x), x).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    print(json.dumps({"times": times}), flush=True)
    dist.destroy_process_group()


# ---- driver side --------------------------------------------------------------------------------
def run_job(mode, width, world_size, steps, budget_mb, batch=BATCH, timeout=120):
    """Per-rank step times, or None if any rank failed (ran out of memory under the cap)."""
    port = free_port()
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), DISTTORCH_SECRET="bench-sharding",
                   MALLOC_ARENA_MAX="1")
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, str(width), str(steps), str(budget_mb),
             str(batch)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            results.append((proc.returncode, out))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
            proc.communicate()
        return None
    if any(code != 0 for code, _ in results):
        return None
    return [json.loads(out.splitlines()[-1])["times"] for _, out in results]


def largest_width(mode, world_size, budget_mb, low, high, step):
    """Binary search, in multiples of ``step``, for the widest MLP that trains under the cap."""
    fits, fails = low, high
    while fails - fits > step:
        middle = (fits + fails) // 2 // step * step
        ok = run_job(mode, middle, world_size, 2, budget_mb) is not None
        print(f"  {mode} x{world_size} width {middle} ({parameter_count(middle) / 1e6:.1f}M "
              f"params): {'fits' if ok else 'out of memory'}", flush=True)
        fits, fails = (middle, fails) if ok else (fits, middle)
    return fits


def step_seconds(width, rounds, steps):
    """Best per-step time per mode over alternating rounds (each round: one job per mode)."""
    best = {}
    for _ in range(rounds):
        for mode in ("ddp", "fsdp", "fsdp_grad_op"):
            times = run_job(mode, width, 2, steps, 0, STEP_BATCH)
            if times is None:
                raise RuntimeError(f"{mode} failed at width {width} without a memory cap")
            # The least disturbed step after the first: on a shared machine the others mostly
            # measure the neighbours. A step lasts as long as its slowest rank.
            per_step = max(min(rank_times[1:]) for rank_times in times)
            best[mode] = min(best.get(mode, float("inf")), per_step)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-mb", type=int, default=256)
    parser.add_argument("--worlds", default="2,4")
    parser.add_argument("--step-width", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    print(f"MLP of {DEPTH} Linear({'{w}'}, {'{w}'}) + ReLU, float32, Adam, batch {BATCH} per rank; "
          f"address space capped at start-up size + {args.budget_mb} MiB per worker")
    widths = {}
    for world_size in map(int, args.worlds.split(",")):
        for mode in MODES:
            widths[mode, world_size] = largest_width(mode, world_size, args.budget_mb, 128, 4096, 32)
            print(f"{mode} x{world_size}: widest {widths[mode, world_size]}, "
                  f"{parameter_count(widths[mode, world_size]) / 1e6:.2f}M parameters", flush=True)
    ratios = {}
    for world_size in map(int, args.worlds.split(",")):
        base = parameter_count(widths["ddp", world_size])
        for mode in ("zero", "fsdp"):
            ratios[mode, world_size] = parameter_count(widths[mode, world_size]) / base
            print(f"{mode} x{world_size}: {ratios[mode, world_size]:.2f}x DDP's largest model")
    seconds = step_seconds(args.step_width, args.rounds, args.steps)
    for mode, value in seconds.items():
        print(f"step at width {args.step_width} ({parameter_count(args.step_width) / 1e6:.1f}M "
              f"params), batch {STEP_BATCH} per rank, x2: {mode} {value * 1e3:.1f} ms "
              f"({value / seconds['ddp']:.2f}x DDP)")
    first = int(args.worlds.split(",")[0])
    print(f"sharding: zero_max_params_ratio={ratios['zero', first]:.2f} "
          f"fsdp_max_params_ratio={ratios['fsdp', first]:.2f} "
          f"fsdp_step_ratio={seconds['fsdp'] / seconds['ddp']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
