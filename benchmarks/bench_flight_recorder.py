"""What the flight recorder costs per collective: small all_reduces with it on and off.

Two ranks on loopback run --steps all_reduces of 16 float32 values; jobs with the recorder on
(DISTTORCH_TRACE_BUFFER_SIZE=2000) and off (0) alternate for --rounds rounds, and rank 0 reports the
mean time per all_reduce. Also timed in this process: the recorder's own bookkeeping per collective
(record, started, completed). Ends with one summary line of medians.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORKER = """
import sys, time
import numpy as np
from disttorch import comm
from disttorch.comm import ReduceOp
comm.init()
values = np.ones(16, dtype=np.float32)
for _ in range(200):
    comm.all_reduce(values, op=ReduceOp.MAX)
steps = int(sys.argv[1])
began = time.perf_counter()
for _ in range(steps):
    comm.all_reduce(values, op=ReduceOp.MAX)
elapsed = time.perf_counter() - began
comm.barrier()
if comm.world().rank == 0:
    print("per-op-us", elapsed / steps * 1e6)
comm.shutdown()
"""


def _free_port():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _job(buffer_size, steps):
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   PYTHONPATH=str(REPO), DISTTORCH_TRACE_BUFFER_SIZE=str(buffer_size), OMP_NUM_THREADS="1")
        env.pop("DISTTORCH_TRACE_DUMP_DIR", None)
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(steps)], env=env,
                                      stdout=subprocess.PIPE, text=True))
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a worker failed: {outputs}")
    return float(outputs[0].split("per-op-us", 1)[1])


def _bookkeeping_us(count=200_000):
    import numpy as np

    from disttorch.comm import flight_recorder
    ring = flight_recorder.FlightRecorder(2000)
    ranks, shape, dtypes = [0, 1], ((16,),), (np.dtype(np.float32),)
    began = time.perf_counter()
    for seq in range(count):
        entry = ring.record(0, ranks, seq, "all_reduce", shape, dtypes, "sum")
        flight_recorder.started(entry)
        flight_recorder.completed(entry)
    return (time.perf_counter() - began) / count * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    on, off = [], []
    for round_index in range(args.rounds):
        # Alternate which goes first, so a drift in machine load hits both alike.
        order = ((2000, on), (0, off)) if round_index % 2 == 0 else ((0, off), (2000, on))
        for buffer_size, times in order:
            times.append(_job(buffer_size, args.steps))
        print(f"round {round_index}: on {on[-1]:.1f} us, off {off[-1]:.1f} us", flush=True)
    bookkeeping = statistics.median(_bookkeeping_us() for _ in range(3))
    on_median, off_median = statistics.median(on), statistics.median(off)
    print(f"flight recorder: all_reduce(16 x float32, 2 ranks) {on_median:.1f} us with it on vs {off_median:.1f} us "
          f"off (ratio {on_median / off_median:.3f}); bookkeeping {bookkeeping:.2f} us per collective")


if __name__ == "__main__":
    main()
