"""Leaving and re-joining a job: exits that wait for nobody, re-init with any skew between
the ranks, and configuration mistakes named within seconds."""
import pytest

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

from comm_harness import REPO, assert_all_ok, finish_job, free_port, reports, start_job, start_rank


@pytest.mark.timeout(90)
def test_reinit_works_when_rank_0_destroys_after_the_others_rejoined():
    results = finish_job(start_job("reinit_skew", 2)[0], timeout=80)
    assert_all_ok(results)
    for _, output in results:
        assert reports(output)[-1]["total"] == [3.0] * 4


@pytest.mark.timeout(90)
def test_rank_that_raises_leaves_without_waiting_and_its_peer_learns_it():
    procs, _ = start_job("raise_while_peer_waits", 2)
    (code0, output0), (code1, output1) = finish_job(procs, timeout=80)
    assert code1 == 1 and "rank 1 gives up" in output1, output1
    assert code0 == 0, output0
    error = reports(output0)[0]["error"]
    assert error["type"] == "RankFailure" and error["failed_rank"] == 1, error
    assert "rank 1 left the job" in error["message"], error


@pytest.mark.timeout(90)
def test_world_size_mismatch_is_named_on_every_rank():
    # The default init timeout (30 minutes) is what these ranks would wait without the check.
    port = free_port()
    procs = [start_rank("init_default_timeout", 0, 3, port),
             start_rank("init_default_timeout", 1, 2, port)]
    for code, output in finish_job(procs, timeout=80):
        assert code != 0
        assert ("WORLD_SIZE mismatch: rank 1 was started with WORLD_SIZE=2 but rank 0 with "
                "WORLD_SIZE=3") in output, output


@pytest.mark.parametrize("port", ["99999", "-5", "abc", ""])
def test_bad_master_port_is_named_with_its_value(port, monkeypatch):
    import disttorch.distributed as dist
    for name, value in dict(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT=port).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"MASTER_PORT='{port}' is not valid"):
        dist.init_process_group("zmq", timeout=5)
    assert not dist.is_initialized()


def test_wrong_secret_is_told_apart_from_an_unreachable_store():
    # A fresh process, as a new rank meets the store (test_comm_store repeats the pair in one).
    probe = """
from disttorch.comm import DistStoreError, TCPStore
master = TCPStore("127.0.0.1", 0, is_master=True, timeout=5, secret=b"right")
for port, secret, timeout in ((master.port, b"wrong", 30), (1, b"right", 0.5)):
    client = TCPStore("127.0.0.1", port, timeout=timeout, secret=secret)
    try:
        client.get("anything")
    except DistStoreError as error:
        print(error, flush=True)
    client.close()
master.close()
"""
    refused, unreachable = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO))).stdout.splitlines()
    assert "refused this process: its DISTTORCH_SECRET differs" in refused, refused
    assert "could not reach the rendezvous store at 127.0.0.1:1" in unreachable, unreachable


@pytest.mark.timeout(90)
def test_rank_starting_later_than_the_handshake_timeout_joins():
    # Ranks waiting for a late one's address used to leave each other's handshakes unanswered;
    # libzmq dropped them at the timeout and each took the other for dead.
    procs, _ = start_job("late_rank", 3, env={"DISTTORCH_HANDSHAKE_TIMEOUT": "3",
                                              "LATE_SECONDS": "8"})
    results = finish_job(procs, timeout=80)
    assert_all_ok(results)
    for _, output in results:
        assert reports(output)[-1]["total"] == [3.0] * 5


@pytest.mark.timeout(90)
def test_stale_group_and_integer_avg_are_refused_with_clear_errors():
    results = finish_job(start_job("stale_group_and_int_avg", 2)[0], timeout=80)
    assert_all_ok(results)
    for _, output in results:
        report = reports(output)[0]
        assert report["int_avg"]["type"] == "TypeError", report
        assert "AVG is not supported for integer tensors" in report["int_avg"]["message"]
        for key in ("stale", "stale_send"):
            assert report[key]["type"] == "RuntimeError", report
            assert "destroy_process_group() destroyed it" in report[key]["message"], report


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_rank_stopped_during_init_leaves_no_socket_file(stop):
    proc = start_rank("init_only", 0, 2, free_port())  # rank 1 never comes: init blocks
    deadline = time.monotonic() + 60
    # /proc/net/unix lists listening sockets, file-backed or abstract, with their names.
    while f"disttorch-{proc.pid}-" not in open("/proc/net/unix").read():
        assert time.monotonic() < deadline and proc.poll() is None, "rank 0 never bound"
        time.sleep(0.05)
    proc.send_signal(stop)
    proc.communicate(timeout=60)
    assert glob.glob(os.path.join(tempfile.gettempdir(), f"disttorch-{proc.pid}-*")) == []
