"""DistributedDataParallel against a single process on the full batch, with real ranks on loopback.

Each world size runs every scenario inside one process group (one job) to keep the suite fast; the
tests below then read which scenarios each rank reported as passed.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
JOB_TIMEOUT = 120

EVERY_WORLD = ["mlp", "cnn_syncbn", "lstm", "no_sync", "unused_parameters", "unused_parameters_with_no_sync",
               "small_buckets", "wide_mlp", "rewrapped_model"]
TWO_RANKS_ONLY = ["parameters_broadcast_from_rank0", "shape_mismatch_names_parameter_and_ranks",
                  "unused_without_detection_raises", "comm_hooks", "powersgd",
                  "error_feedback", "checkpoint_resume"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_job(scenarios, world_size, checkpoint_dir, overlap, timeout=JOB_TIMEOUT):
    """Start one worker per rank; returns [(returncode, output)] or fails naming the stuck ranks.

    `overlap` pins DDP's choice between background and inline all-reduces, so both paths are tested
    whatever the machine's core count.
    """
    port = free_port()
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), DISTTORCH_SECRET="ddp-tests", CHECKPOINT_DIR=str(checkpoint_dir),
                   PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   DISTTORCH_DDP_OVERLAP="1" if overlap else "0")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), ",".join(scenarios)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        return [(proc.wait(timeout=timeout), proc.stdout.read()) for proc in procs]
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        outputs = [proc.communicate()[0] for proc in procs]
        raise AssertionError(f"DDP workers did not finish within {timeout}s:\n" + "\n---\n".join(outputs))


def passed(output):
    return {json.loads(line)["scenario"] for line in output.splitlines() if line.startswith("{")}


def check_scenario(results, scenario):
    for rank, (code, output) in enumerate(results):
        assert scenario in passed(output), f"rank {rank} (exit code {code}) did not pass {scenario}:\n{output}"
    for rank, (code, output) in enumerate(results):
        assert code == 0, f"rank {rank} exited with {code}:\n{output}"


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return run_job(EVERY_WORLD + TWO_RANKS_ONLY, 2, tmp_path_factory.mktemp("ckpt2"), overlap=False)


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory):
    return run_job(EVERY_WORLD, 3, tmp_path_factory.mktemp("ckpt3"), overlap=True)


@pytest.mark.parametrize("scenario", EVERY_WORLD + TWO_RANKS_ONLY)
def test_two_ranks(two_ranks, scenario):
    check_scenario(two_ranks, scenario)


@pytest.mark.parametrize("scenario", EVERY_WORLD)
def test_three_ranks(three_ranks, scenario):
    check_scenario(three_ranks, scenario)


@pytest.mark.timeout(90)
def test_rank_raising_in_forward_fails_every_rank_naming_it(tmp_path):
    (code0, out0), (code1, out1) = run_job(["raise_in_forward"], 2, tmp_path, overlap=True, timeout=60)
    assert code1 != 0 and "deliberate failure in forward on rank 1" in out1, out1
    assert code0 != 0, f"rank 0 must fail when rank 1 is gone:\n{out0}"
    assert "rank 1" in out0 and ("RankFailure" in out0 or "failed" in out0), out0


@pytest.mark.parametrize("cores_per_rank, forced, expected", [
    (4.0, None, True),    # a background all-reduce has a core of its own
    (1.0, None, False),   # one core a rank: inline all-reduces avoid time-slicing with backward
    (1.5, None, False),
    (1.0, "1", True),
    (8.0, "0", False),
])
def test_ddp_overlaps_only_when_a_core_is_free(monkeypatch, cores_per_rank, forced, expected):
    from disttorch.nn.parallel import reducer
    if forced is None:
        monkeypatch.delenv("DISTTORCH_DDP_OVERLAP", raising=False)
    else:
        monkeypatch.setenv("DISTTORCH_DDP_OVERLAP", forced)
    assert reducer.overlap_has_a_core(cores_per_rank) is expected
