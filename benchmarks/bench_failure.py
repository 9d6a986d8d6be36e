"""How long a rank's failure takes to reach the launcher's failure summary, vs torchrun + gloo.

Two workers; after a barrier, one of them raises while the other waits for it in the next
barrier. Measured: from the failing rank's raise (it prints time.time() right before) to the
launcher's "job FAILED" summary line, and to the launcher's exit; torchrun is timed to its exit
(its summary is the last thing it prints). Median of --repeats runs for each failing rank.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = "bench-failure-raise-at"

WORKER = """
import os, sys, time
import {module} as dist
dist.init_process_group("{backend}")
dist.barrier()
if int(os.environ["RANK"]) == int(os.environ["BENCH_FAIL_RANK"]):
    print("{marker}", time.time(), file=sys.stderr, flush=True)
    raise RuntimeError("this rank fails on purpose")
dist.barrier()
"""


def _run(command, env, summary_text):
    """(seconds from the raise to the summary line or None, seconds from the raise to exit)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = {}

    def read():
        for line in proc.stdout:
            now = time.time()
            if MARKER in line:
                seen["raise"] = float(line.split(MARKER, 1)[1].split()[0])
            if summary_text and summary_text in line and "summary" not in seen:
                seen["summary"] = now
    reader = threading.Thread(target=read)
    reader.start()
    proc.wait(timeout=120)
    ended = time.time()
    reader.join()
    if "raise" not in seen:
        raise RuntimeError(f"{command}: the failing rank never reported its raise")
    summary = seen.get("summary")
    return (None if summary is None else summary - seen["raise"]), ended - seen["raise"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                                     os.environ.get("PYTHONPATH")])))
    env.pop("DISTTORCH_SECRET", None)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-failure-") as tmp:
        ours = Path(tmp, "ours.py")
        ours.write_text(WORKER.format(module="disttorch.distributed", backend="zmq", marker=MARKER))
        theirs = Path(tmp, "theirs.py")
        theirs.write_text(WORKER.format(module="torch.distributed", backend="gloo", marker=MARKER))
        for fail_rank in (0, 1):
            run_env = dict(env, BENCH_FAIL_RANK=str(fail_rank))
            for name, command, summary_text in (
                    ("disttorch", [sys.executable, "-m", "launcher", "--nproc", "2", str(ours)],
                     "job FAILED"),
                    ("torchrun", [sys.executable, "-m", "torch.distributed.run",
                                  "--nproc-per-node", "2", str(theirs)], None)):
                runs = [_run(command, run_env, summary_text) for _ in range(args.repeats)]
                results[(name, fail_rank)] = runs
                summary = [s for s, _ in runs if s is not None]
                summary_text_out = (f"summary {statistics.median(summary):.2f}s  "
                                    if summary else "")
                print(f"rank {fail_rank} fails, {name:9}: {summary_text_out}"
                      f"exit {statistics.median(e for _, e in runs):.2f}s  "
                      f"(runs: {', '.join(f'{e:.2f}' for _, e in runs)})", flush=True)

    def median_summary(fail_rank):
        return statistics.median(s for s, _ in results[("disttorch", fail_rank)])

    def median_exit(name, fail_rank):
        return statistics.median(e for _, e in results[(name, fail_rank)])
    print(f"failure surfacing: rank0_fails={median_summary(0):.2f}s rank1_fails={median_summary(1):.2f}s "
          f"to the summary (exit {median_exit('disttorch', 0):.2f}s/{median_exit('disttorch', 1):.2f}s; "
          f"torchrun exit {median_exit('torchrun', 0):.2f}s/{median_exit('torchrun', 1):.2f}s)")


if __name__ == "__main__":
    main()
