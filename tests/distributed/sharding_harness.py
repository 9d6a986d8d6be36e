"""Start one worker process per rank on loopback, run scenarios in it, and read what passed.

Each job runs several scenarios inside one process group to keep the suite fast; every scenario
prints one JSON line {"scenario": name, ...} when it passed, and any failure exits non-zero.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("sharding_worker.py")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_job(scenarios, world_size, workdir, timeout=120, env=None, batches=None):
    """One worker per rank; returns [(returncode, output)] or fails showing every rank's output.

    ``batches`` (one count per rank) is handed to scenarios that train on uneven inputs.
    """
    port = free_port()
    procs = []
    for rank in range(world_size):
        child_env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size),
                         MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                         DISTTORCH_SECRET="sharding-tests", WORKDIR=str(workdir),
                         PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                         BATCHES=",".join(map(str, batches or [])), **(env or {}))
        procs.append(subprocess.Popen([sys.executable, str(WORKER), ",".join(scenarios)],
                                      env=child_env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        return [(proc.wait(timeout=timeout), proc.stdout.read()) for proc in procs]
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        outputs = [proc.communicate()[0] for proc in procs]
        raise AssertionError(f"workers did not finish within {timeout}s:\n"
                             + "\n---\n".join(outputs)) from None


def reports(output):
    return {entry["scenario"]: entry for entry in
            (json.loads(line) for line in output.splitlines() if line.startswith("{"))}


def check_scenario(results, scenario, clean_exit=True):
    """Every rank reported ``scenario`` as passed (and, with ``clean_exit``, exited with 0);
    returns the reports."""
    for rank, (code, output) in enumerate(results):
        assert scenario in reports(output), \
            f"rank {rank} (exit code {code}) did not pass {scenario}:\n{output}"
    for rank, (code, output) in enumerate(results):
        assert code == 0 or not clean_exit, f"rank {rank} exited with {code}:\n{output}"
    return [reports(output)[scenario] for _, output in results]
