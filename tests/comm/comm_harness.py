"""Start real worker processes on loopback for the comm tests and collect their reports."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("comm_worker.py")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_rank(scenario, rank, world_size, port, env=None):
    child_env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size),
                     MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                     PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.Popen([sys.executable, str(WORKER), scenario], env=child_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_job(scenario, world_size, env=None, port=None):
    port = port or free_port()
    return [start_rank(scenario, rank, world_size, port, env) for rank in range(world_size)], port


def finish_job(procs, timeout):
    """Wait for every worker (killing all on timeout); returns [(returncode, output)]."""
    results = []
    try:
        for proc in procs:
            output, _ = proc.communicate(timeout=timeout)
            results.append((proc.returncode, output))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        outputs = [proc.communicate()[0] for proc in procs]
        raise AssertionError(f"workers did not finish within {timeout}s:\n" + "\n---\n".join(outputs))
    return results


def run_job(scenario, world_size, env=None, timeout=90):
    procs, _ = start_job(scenario, world_size, env)
    return finish_job(procs, timeout)


def reports(output):
    """The JSON lines a worker printed (each one a dict)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def assert_all_ok(results):
    for rank, (code, output) in enumerate(results):
        assert code == 0, f"rank {rank} exited with {code}:\n{output}"


def shm_files_of(procs):
    """Shared-memory files the workers ``procs`` left in /dev/shm (names carry the pid)."""
    if not os.path.isdir("/dev/shm"):
        return []
    return [name for name in os.listdir("/dev/shm")
            if any(name.startswith(f"disttorch-{proc.pid}-") for proc in procs)]
