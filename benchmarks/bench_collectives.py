"""all_reduce float32 SUM: disttorch's ZeroMQ collectives vs torch.distributed gloo.

Both backends are initialised in the same worker processes and measured in
alternating rounds at each size, so they see the same machine load; a size's
ratio is the median of the per-round ratios. Workers use one torch intra-op
thread, as torchrun sets for multi-process jobs. Prints time, algbw and busbw
(algbw * 2(n-1)/n) per size for world sizes 2 and 4. Then two fresh ranks each
all-reduce a 256 MiB float32 tensor three times with either backend (disttorch
takes shared memory) and report their peak RSS during it as a multiple of the
tensor, which itself counts as 1x. The last line compares the two at world size 2:

    collectives: ratio_4k=A ratio_256k=B ratio_4m=C ratio_32m=D shm_peak_rss_ratio=E
    gloo_peak_rss_ratio=F   (ratios: gloo time / disttorch time)
"""
import argparse
import os
import re
import socket
import statistics
import sys
import time

import numpy as np
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SIZES = [("4k", 4 << 10), ("256k", 256 << 10), ("4m", 4 << 20), ("32m", 32 << 20)]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _time_per_op(run, budget_s, agree):
    """Seconds per call of ``run``, over about ``budget_s``; ``agree`` makes ranks use one count."""
    start = time.perf_counter()
    run()
    run()
    estimate = (time.perf_counter() - start) / 2
    iterations = agree(max(3, min(2000, int(budget_s / max(estimate, 1e-6)))))
    start = time.perf_counter()
    for _ in range(iterations):
        run()
    return (time.perf_counter() - start) / iterations


def _worker(rank, world_size, ports, rounds, budget_s, torch_threads, results):
    import torch
    import torch.distributed as gloo
    import disttorch.comm as comm

    # One intra-op thread per worker, as torchrun sets for multi-process jobs: idle
    # OpenMP threads spinning after gloo's calls would otherwise steal the CPU.
    torch.set_num_threads(torch_threads)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(ports[0]))
    comm.init("env://", rank=rank, world_size=world_size, timeout=120)
    gloo.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{ports[1]}", rank=rank,
                            world_size=world_size)

    def agree(count):
        shared = np.array([count], dtype=np.int64)
        comm.broadcast(shared, src=0)
        return int(shared[0])

    for label, nbytes in SIZES:
        ours = np.zeros(nbytes // 4, np.float32)
        theirs = torch.zeros(nbytes // 4)
        timings = {"disttorch": [], "gloo": []}
        for _ in range(rounds):
            comm.barrier()
            timings["disttorch"].append(_time_per_op(lambda: comm.all_reduce(ours), budget_s, agree))
            gloo.barrier()
            timings["gloo"].append(_time_per_op(lambda: gloo.all_reduce(theirs), budget_s, agree))
        if rank == 0:
            # Rounds alternate, so each round's ratio compares the two under the same
            # machine load; the median round resists other processes' bursts.
            ratios = [theirs_s / ours_s
                      for ours_s, theirs_s in zip(timings["disttorch"], timings["gloo"])]
            results[(world_size, label)] = {
                "disttorch": statistics.median(timings["disttorch"]),
                "gloo": statistics.median(timings["gloo"]),
                "ratio": statistics.median(ratios)}
    gloo.destroy_process_group()
    comm.shutdown()


def _rss_kib(field):
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1))


def _peak_rss_ratio(all_reduce, tensor, nbytes):
    """Peak RSS over three all_reduces of ``tensor`` (filled, so already resident), as a
    multiple of its ``nbytes``; None where the kernel does not let a process reset its peak."""
    # Connects and warms up with a small slice, so buffers sized by the tensor count.
    all_reduce(tensor[:1 << 16])
    try:
        # Resets VmHWM to the current RSS, which already holds the tensor.
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return None
    before_kib = _rss_kib("VmRSS")
    for _ in range(3):
        all_reduce(tensor)
    return 1 + (_rss_kib("VmHWM") - before_kib) * 1024 / nbytes


def _peak_rss_worker(rank, name, port, nbytes, results):
    """One fresh process per backend, so neither inherits the other's peak or free lists."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if name == "disttorch":
        import disttorch.comm as comm
        comm.init("env://", rank=rank, world_size=2, timeout=120)
        ratio = _peak_rss_ratio(comm.all_reduce, np.ones(nbytes // 4, np.float32), nbytes)
        comm.shutdown()
    else:
        import torch
        import torch.distributed as gloo
        torch.set_num_threads(1)
        gloo.init_process_group("gloo", rank=rank, world_size=2)
        ratio = _peak_rss_ratio(gloo.all_reduce, torch.ones(nbytes // 4), nbytes)
        gloo.destroy_process_group()
    results[(name, rank)] = ratio


def _peak_rss_ratios(results, nbytes=256 << 20):
    """The larger of the two ranks' peak RSS ratios for each backend (None: not measurable)."""
    ratios = {}
    for name in ("disttorch", "gloo"):
        mp.spawn(_peak_rss_worker, args=(name, _free_port(), nbytes, results), nprocs=2)
        ranks = [results[(name, rank)] for rank in range(2)]
        ratios[name] = None if None in ranks else max(ranks)
    return ratios


def _report(world_size, results):
    factor = 2 * (world_size - 1) / world_size
    print(f"world size {world_size}")
    for label, nbytes in SIZES:
        row = results[(world_size, label)]
        cells = []
        for name in ("disttorch", "gloo"):
            seconds = row[name]
            cells.append(f"{name} {seconds * 1e6:9.1f} us busbw {nbytes / seconds * factor / 1e9:5.2f} GB/s")
        print(f"  {label:>5}: " + " | ".join(cells) + f" | ratio {row['ratio']:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads per worker (torchrun's default is 1)")
    args = parser.parse_args()
    manager = mp.Manager()
    results = manager.dict()
    for world_size in args.world_sizes:
        ports = (_free_port(), _free_port())
        mp.spawn(_worker, args=(world_size, ports, args.rounds, args.budget, args.torch_threads,
                                results),
                 nprocs=world_size)
        _report(world_size, results)
    rss = _peak_rss_ratios(results)
    print("peak RSS during a 256 MiB all_reduce, world size 2 (tensor = 1x): "
          + " | ".join(f"{name} {_ratio_text(ratio)}x" for name, ratio in rss.items()))
    if (2, "4k") in results:
        ratios = " ".join(f"ratio_{label}={results[(2, label)]['ratio']:.2f}" for label, _ in SIZES)
        print(f"collectives: {ratios} shm_peak_rss_ratio={_ratio_text(rss['disttorch'])} "
              f"gloo_peak_rss_ratio={_ratio_text(rss['gloo'])}")


def _ratio_text(ratio):
    return "n/a" if ratio is None else f"{ratio:.2f}"


if __name__ == "__main__":
    main()
