"""DDP across a simulated cluster: hosts are network namespaces with their own hostnames, joined by a veth
pair shaped with `tc ... tbf` on both ends, so gradients really cross a link of a chosen rate.

MLP 784-1024-1024-10, batch 128 per rank, SGD, one BLAS thread per process. For each layout (hosts x
ranks per host) and link rate it runs, in turn:
  compute   every rank trains alone at once (no communication): C, compute per step under the same
            core sharing as the DDP run
  comm      every rank all-reduces DDP's gradient buckets with nothing else running: M
  ddp       disttorch DDP: S, plus per-bucket timelines from every rank (--timeline)
  torch     torch DDP over gloo (GLOO_SOCKET_IFNAME=eth0): T
and prints
  cluster: step_ms=S torch_ms=T vs_torch=T/S compute_ms=C comm_ms=M overlap=O ideal_ratio=I ...
with overlap = (C + M - S) / min(C, M) (1: communication fully hidden, 0: compute and communication
in series) and ideal_ratio = S / max(C, M). Times are medians over steps after warm-up, best of --rounds
alternating rounds (this machine is shared). The line also gives link_floor_ms, the shortest step the
link allows given when DDP's first large gradient exists (see link_floor), S over it (vs_floor), the
layout, the rate and the bytes each host sent over its veth per DDP step.

--hooks none,fp16,bf16,powersgd runs the ddp step once per communication hook and prints each hook's
step time and the accuracy reached on a held-out set of a synthetic teacher task.

Needs root (namespaces, veth, tc); otherwise it says so and exits 0.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # shared helpers sit beside this file
import _timing  # noqa: E402,F401  (one BLAS thread per process, inherited by the workers)

BATCH = 128
WARMUP = 8
SIZES = (784, 1024, 1024, 10)
SUBNET = "10.232.7"
LEARNING_RATE = 0.05


# ------------------------------------------------------------------------------------- the cluster
class Cluster:
    """Namespaces `<tag>h<i>` on one veth pair (two hosts), each end shaped to `rate` by tbf."""

    def __init__(self, hosts, rate, prefix="bcl"):
        if hosts != 2:
            raise ValueError("the simulated cluster has two hosts (one veth pair)")
        self.tag = f"{prefix}{os.getpid()}"
        self.namespaces = [f"{self.tag}h{index}" for index in range(hosts)]
        self.rate = rate

    def address(self, index):
        return f"{SUBNET}.{index + 1}"

    def hostname(self, index):
        return f"node{index}"

    def create(self):
        first, second = self.namespaces
        for namespace in self.namespaces:
            _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", "eth0", "netns", first, "type", "veth", "peer", "name", "eth0", "netns", second)
        for index, namespace in enumerate(self.namespaces):
            _run("ip", "-n", namespace, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            _run("ip", "-n", namespace, "link", "set", "eth0", "up")
            _run("ip", "-n", namespace, "link", "set", "lo", "up")
            # A burst of 1 ms of traffic keeps the shaping tight; a deep queue (no drops) stands in for a
            # switch's buffers, so TCP sees a slow link rather than a lossy one.
            burst = max(64 << 10, _bits_per_second(self.rate) // 8 // 1000)
            _run("ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                 "rate", self.rate, "burst", str(burst), "latency", "200ms")
        return self

    def destroy(self):
        for namespace in self.namespaces:
            listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
            for pid in listed.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)

    def sent_bytes(self, index):
        read = subprocess.run(["ip", "netns", "exec", self.namespaces[index], "cat",
                               "/sys/class/net/eth0/statistics/tx_bytes"], capture_output=True, text=True, check=True)
        return int(read.stdout)

    def prefix(self, index):
        return ("ip", "netns", "exec", self.namespaces[index], "unshare", "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname(index))


def _bits_per_second(rate):
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, scale in units.items():
        if rate.endswith(unit):
            return int(float(rate[:-len(unit)]) * scale)
    raise ValueError(f"rate {rate!r}: use a number followed by kbit, mbit or gbit (as tc does)")


def _run(*command):
    subprocess.run(command, check=True, capture_output=True, text=True)


# -------------------------------------------------------------------------------------- the workers
def build(lib):
    nn = lib.nn
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def teacher_task(steps, rank, world_size):
    """This rank's batches and a shared held-out set: ten Gaussian classes around fixed random means,
    close enough that the accuracy after a few dozen steps shows what a compressing hook costs."""
    import numpy as np
    means = np.random.default_rng(1234).standard_normal((10, 784)).astype(np.float32) * 0.12

    def labelled(rng, count):
        y = rng.integers(0, 10, count)
        return (means[y] + rng.standard_normal((count, 784)).astype(np.float32)), y.astype(np.int64)

    xs, ys = labelled(np.random.default_rng(100 + rank), steps * BATCH)
    batches = [(xs[k * BATCH:(k + 1) * BATCH], ys[k * BATCH:(k + 1) * BATCH]) for k in range(steps)]
    return batches, labelled(np.random.default_rng(99), 2048)


def train(lib, model, batches, on_step=None):
    """Median step time (s) after warm-up. `on_step(index, marks)` gets the step's perf_counter()
    marks: start, backward returned, optimizer done."""
    opt = lib.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = lib.nn.CrossEntropyLoss()
    times = []
    for index, (x, y) in enumerate(batches):
        start = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(lib.from_numpy(x)), lib.from_numpy(y)).backward()
        backward_returned = time.perf_counter()
        opt.step()
        end = time.perf_counter()
        times.append(end - start)
        if on_step is not None:
            on_step(index, {"start": start, "backward_returned": backward_returned, "end": end})
    return _median(times[WARMUP:] or times)


def accuracy(lib, model, held_out):
    x, y = held_out
    with lib.no_grad():
        predicted = model(lib.from_numpy(x)).numpy().argmax(axis=1)
    return float((predicted == y).mean())


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def worker(kind, steps, hook):
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    batches, held_out = teacher_task(steps, rank, world_size)
    if kind == "torch":
        import torch
        import torch.distributed as dist
        torch.set_num_threads(1)
        dist.init_process_group("gloo")
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(build(torch))
        result = {"step": train(torch, model, batches), "accuracy": accuracy(torch, model, held_out)}
        dist.destroy_process_group()
    else:
        import disttorch
        import disttorch.distributed as dist
        disttorch.manual_seed(0)
        model = build(disttorch)
        if kind == "compute":
            result = {"step": train(disttorch, model, batches)}
        else:
            dist.init_process_group("zmq")
            ddp = disttorch.nn.parallel.DistributedDataParallel(model)
            if kind == "comm":
                train(disttorch, ddp, batches[:2])  # buckets in their final, rebuilt order
                result = {"step": comm_alone(dist, ddp.reducer.buckets)}
            else:
                _register_hook(ddp, hook, dist)
                timelines = []

                def keep_timeline(index, marks):
                    if index >= len(batches) - 3:
                        timeline = ddp.reducer.timeline()
                        timeline["step"] = {name: at - timeline["origin"] for name, at in marks.items()}
                        timelines.append(timeline)
                result = {"step": train(disttorch, ddp, batches, keep_timeline),
                          "accuracy": accuracy(disttorch, ddp.module, held_out), "timelines": timelines}
            dist.destroy_process_group()
    result["rank"] = rank
    print("RESULT " + json.dumps(result), flush=True)


def _register_hook(ddp, hook, dist):
    from disttorch.distributed.algorithms.ddp_comm_hooks import default_hooks
    if hook == "fp16":
        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
    elif hook == "bf16":
        ddp.register_comm_hook(None, default_hooks.bf16_compress_hook)
    elif hook == "powersgd":
        from disttorch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook
        state = powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank=4,
                                            start_powerSGD_iter=2)
        ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)


def comm_alone(dist, buckets, reps=15):
    """Seconds to all-reduce every gradient bucket, as DDP launches them, with nothing else running."""
    times = []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        works = [dist.all_reduce(bucket.buffer, async_op=True) for bucket in buckets]
        for work in works:
            work.wait()
        times.append(time.perf_counter() - start)
    return _median(times[2:])


# ------------------------------------------------------------------------------------ orchestration
def launch(cluster, ranks_per_host, kind, steps, port, hook="none", **extra_env):
    """Run one kind on every rank of the cluster; returns every rank's result, in rank order."""
    world_size = len(cluster.namespaces) * ranks_per_host
    procs = []
    for rank in range(world_size):
        host = rank // ranks_per_host
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank % ranks_per_host),
                   LOCAL_WORLD_SIZE=str(ranks_per_host), MASTER_ADDR=cluster.address(0), MASTER_PORT=str(port),
                   DISTTORCH_SECRET="bench-cluster", DISTTORCH_HOST_ADDR=cluster.address(host),
                   GLOO_SOCKET_IFNAME="eth0", **extra_env)
        if kind == "compute":
            env["WORLD_SIZE"] = "1"
        command = [*cluster.prefix(host), sys.executable, os.path.abspath(__file__), "--worker", kind,
                   "--steps", str(steps), "--hook", hook]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} worker failed with exit code {proc.returncode}")
        results += [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    results.sort(key=lambda result: result["rank"])
    return results


def launch_counting_bytes(cluster, ranks_per_host, steps, port, **extra_env):
    """DDP results and the bytes host 0 sent over its veth per step (start-up traffic included)."""
    before = cluster.sent_bytes(0)
    results = launch(cluster, ranks_per_host, "ddp", steps, port, **extra_env)
    return results, (cluster.sent_bytes(0) - before) / (steps + WARMUP)


def print_timelines(results):
    """Every rank's last-step timeline, in ms since rank 0's forward ended (all ranks share one
    clock): the step's start, each bucket's ready / sends handed to ZeroMQ / receiving and folding
    start and done, backward's end, all averages in place, all ranks past the closing barrier,
    optimizer done."""
    zero = results[0]["timelines"][-1]["origin"]

    def ms(timeline, seconds):
        return "-" if seconds is None else f"{(seconds + timeline['origin'] - zero) * 1e3:.1f}"

    for result in results:
        timeline = result["timelines"][-1]
        step = timeline["step"]
        rows = ", ".join(f"b{row['bucket']}({row['bytes'] / 1e6:.2f}MB) ready {ms(timeline, row['ready'])} "
                         f"sent {ms(timeline, row['sent'])} fold {ms(timeline, row['start'])}-{ms(timeline, row['done'])}"
                         for row in timeline["buckets"])
        print(f"    rank {result['rank']}: step start {ms(timeline, step['start'])}, forward done "
              f"{ms(timeline, 0.0)}, {rows}; backward done {ms(timeline, timeline['backward_done'])}, "
              f"averages in {ms(timeline, timeline['finalized'])}, barrier passed {ms(timeline, timeline['synced'])}, "
              f"optimizer done {ms(timeline, step['end'])}")


def link_floor(results, bytes_per_step, rate):
    """The shortest DDP step this link allows with the model's gradients arriving as they do: a host
    sends nothing before its first large gradient (>= 1 MB: fc2's weight, 57% of the bytes) is handed
    to ZeroMQ, then needs bytes_per_step / rate on the wire, and the optimizer runs after the last
    byte arrived. Medians over the recorded steps of every rank; the forward and the backward down to
    fc2 (most of the compute) can never overlap with this step's communication."""
    first_send, optimizer = [], []
    for result in results:
        for timeline in result["timelines"]:
            large = [row["sent"] for row in timeline["buckets"] if row["bytes"] >= 1 << 20 and row["sent"] is not None]
            if large:
                first_send.append(min(large) - timeline["step"]["start"])
            optimizer.append(timeline["step"]["end"] - timeline["synced"])
    wire = bytes_per_step * 8 / _bits_per_second(rate)
    return (_median(first_send) if first_send else 0.0) + wire + _median(optimizer)


def run_layout(ranks_per_host, rate, steps, hooks, show_timeline, port, rounds, netns_prefix):
    """Every kind once per round, alternating so drifts in machine load hit all alike; each kind's
    best round (the least disturbed by other work on the machine) is reported."""
    cluster = Cluster(2, rate, netns_prefix)
    best = {}
    try:
        cluster.create()
        for round_index in range(rounds):
            base = port + 20 * round_index
            measured = {"compute": launch(cluster, ranks_per_host, "compute", steps, base),
                        "comm": launch(cluster, ranks_per_host, "comm", steps, base + 1)}
            measured["ddp"], ddp_bytes = launch_counting_bytes(cluster, ranks_per_host, steps, base + 2)
            measured["torch"] = launch(cluster, ranks_per_host, "torch", steps, base + 3)
            for kind, results in measured.items():
                slowest = max(result["step"] for result in results)
                if kind not in best or slowest < best[kind][0]:
                    best[kind] = (slowest, results)
        flat_bytes = None
        if ranks_per_host > 1:
            _, flat_bytes = launch_counting_bytes(cluster, ranks_per_host, steps, port + 15,
                                                  DISTTORCH_HIERARCHICAL="0")
        hooked = {hook: launch(cluster, ranks_per_host, "ddp", steps, port + 10 + index, hook)
                  for index, hook in enumerate(hooks)}
    finally:
        cluster.destroy()
    compute_s, comm_s, step_s, torch_s = (best[kind][0] for kind in ("compute", "comm", "ddp", "torch"))
    ddp, torch_results = best["ddp"][1], best["torch"][1]
    if show_timeline:
        print_timelines(ddp)
    for hook, results in hooked.items():
        print(f"  hook {hook:>8}: step {max(r['step'] for r in results) * 1e3:.1f} ms, "
              f"accuracy {results[0]['accuracy']:.3f}")
    print(f"  accuracy after {steps} steps: torch DDP {torch_results[0]['accuracy']:.3f}, "
          f"disttorch DDP {ddp[0]['accuracy']:.3f}")
    overlap = (compute_s + comm_s - step_s) / min(compute_s, comm_s)
    floor_s = link_floor(ddp, ddp_bytes, rate)
    print(f"cluster: step_ms={step_s * 1e3:.1f} torch_ms={torch_s * 1e3:.1f} vs_torch={torch_s / step_s:.2f} "
          f"compute_ms={compute_s * 1e3:.1f} comm_ms={comm_s * 1e3:.1f} overlap={overlap:.2f} "
          f"ideal_ratio={step_s / max(compute_s, comm_s):.2f} link_floor_ms={floor_s * 1e3:.1f} "
          f"vs_floor={step_s / floor_s:.2f} layout=2x{ranks_per_host} rate={rate} "
          f"host0_sent_MB_per_step={ddp_bytes / 1e6:.2f}"
          + ("" if flat_bytes is None else f" flat_ring_MB_per_step={flat_bytes / 1e6:.2f} "
                                           f"inter_host_bytes_vs_flat={ddp_bytes / flat_bytes:.2f}"), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker")
    parser.add_argument("--hook", default="none")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rates", default="3gbit,1gbit")
    parser.add_argument("--layouts", default="1,2", help="ranks per host, comma-separated (two hosts)")
    parser.add_argument("--hooks", default="", help="also run DDP with these hooks: none,fp16,bf16,powersgd")
    parser.add_argument("--timeline", action="store_true", help="print every rank's last-step bucket timeline")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--netns-prefix", default="bcl", help="names of the namespaces this run creates")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps + WARMUP, args.hook)
        return
    missing = [tool for tool in ("ip", "tc", "unshare") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        why = "needs root" if os.geteuid() != 0 else f"needs {', '.join(missing)}"
        print(f"bench_cluster skipped: building namespaces, veth pairs and tbf shaping {why}")
        return
    # A plain SIGTERM would skip the `finally` that deletes the namespaces.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    hooks = [hook for hook in args.hooks.split(",") if hook]
    port = 29600
    for rate in args.rates.split(","):
        for ranks_per_host in (int(value) for value in args.layouts.split(",")):
            run_layout(ranks_per_host, rate, args.steps, hooks, args.timeline, port, args.rounds,
                       args.netns_prefix)
            port += 100


if __name__ == "__main__":
    main()
