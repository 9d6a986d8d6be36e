"""Dead peers, mismatched calls, stalls and strangers: every rank fails loudly, never hangs."""
import os
import socket
import time

import msgpack
import pytest
import zmq

from comm_harness import assert_all_ok, finish_job, reports, shm_files_of, start_job
from disttorch.comm import TCPStore


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["shared_memory", "sockets"])
def test_killed_rank_is_named_by_survivors_within_seconds(path):
    # The 1 MiB all_reduces take the shared-memory path unless it is turned off.
    procs, _ = start_job("kill", 3, env={"DISTTORCH_SHM": "0" if path == "sockets" else "1"})
    for error in _survivors_name_killed_rank_1(procs):
        assert error["since_last_success"] < 10, error


@pytest.mark.timeout(60)
def test_rank_whose_send_finds_a_peer_gone_makes_the_others_name_that_peer():
    # Rank 0 fails on a send, not a wait, then exits: rank 2, waiting on rank 0, must still be
    # told that rank 1 is the cause rather than see rank 0 leave without its part.
    _survivors_name_killed_rank_1(start_job("send_finds_peer_gone", 3)[0])


def _survivors_name_killed_rank_1(procs):
    """Ranks 0 and 2 each report one RankFailure that names rank 1; returns those reports."""
    results = finish_job(procs, timeout=50)
    assert shm_files_of(procs) == []
    assert results[1][0] != 0  # killed
    errors = []
    for rank in (0, 2):
        code, output = results[rank]
        assert code == 0, output
        (error,) = reports(output)
        assert error["type"] == "RankFailure", error
        assert error["failed_rank"] == 1, error
        assert "rank 1" in error["message"], error
        errors.append(error)
    return errors


@pytest.mark.timeout(60)
def test_mismatched_calls_raise_on_every_rank_naming_both_sides():
    procs, _ = start_job("mismatch", 3)
    results = finish_job(procs, timeout=50)
    assert_all_ok(results)
    for code, output in results:
        (report,) = reports(output)
        shape, op, after = report["shape"], report["op"], report["after"]
        assert shape["type"] == "CollectiveMismatch", shape
        assert "shape=[10]" in shape["message"] and "shape=[12]" in shape["message"], shape
        assert "rank 2" in shape["message"]
        assert op["type"] == "CollectiveMismatch", op
        assert "op=max" in op["message"] and "op=sum" in op["message"], op
        assert after is not None and "earlier collective failed" in after["message"]


@pytest.mark.timeout(60)
def test_rank_without_shared_memory_gets_a_mismatch_naming_both_algorithms():
    procs, _ = start_job("shm_one_rank_off", 2)
    results = finish_job(procs, timeout=50)
    assert_all_ok(results)
    for _, output in results:
        error = reports(output)[0]["error"]
        assert error["type"] == "CollectiveMismatch", error
        assert "all_reduce[shm](float32" in error["message"], error
        assert "all_reduce(float32" in error["message"], error
    assert shm_files_of(procs) == []


@pytest.mark.timeout(60)
def test_rank_that_cannot_allocate_shared_memory_moves_the_group_to_sockets():
    procs, _ = start_job("shm_fallback", 2)
    results = finish_job(procs, timeout=50)
    assert_all_ok(results)
    for _, output in results:
        report = reports(output)[-1]
        assert report["checks"] == 10 and report["sockets_from"] == 4 << 20, report
    assert shm_files_of(procs) == []


@pytest.mark.timeout(60)
def test_stalled_rank_gives_timeout_naming_op_sequence_and_missing_rank():
    procs, _ = start_job("stall", 2)
    results = finish_job(procs, timeout=50)
    assert_all_ok(results)
    error = reports(results[0][1])[0]["error"]
    assert error["type"] == "CollectiveTimeout", error
    assert "all_reduce #2" in error["message"], error
    assert "missing: 1" in error["message"], error
    late = reports(results[1][1])[0]["error"]
    assert late is not None and "rank 0" in late["message"], late


def _raw_garbage(host, port):
    with socket.create_connection((host, port), timeout=5) as conn:
        try:
            conn.sendall(os.urandom(4096))
            conn.sendall(b"\xff" * 64 + b"GET / HTTP/1.1\r\n\r\n")
        except ConnectionError:
            pass  # refused mid-handshake, as it should be


def _zmq_stranger(context, endpoint, world_size):
    """Forged credentials, then plausible collective messages with garbage payloads."""
    stranger = context.socket(zmq.DEALER)
    stranger.setsockopt(zmq.LINGER, 0)
    stranger.plain_username, stranger.plain_password = b"0", os.urandom(48)
    stranger.connect(endpoint)
    for seq in range(1, 200):
        header = msgpack.packb([0, 0, seq, "all_reduce", "<f4", 10, "sum"])
        _send_unless_refused(stranger, [header, os.urandom(40)])
    _send_unless_refused(stranger, [b"garbage"] * 5)
    return stranger


def _send_unless_refused(sock, frames):
    # Once its handshake was refused the socket has no queue, and a send would block.
    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
    except zmq.Again:
        pass


@pytest.mark.timeout(90)
def test_strangers_sending_garbage_are_ignored():
    secret = "test-secret-4f2a"
    procs, port = start_job("steady", 2, env={"DISTTORCH_SECRET": secret, "STEADY_SECONDS": "3"})
    harness = TCPStore("127.0.0.1", port, timeout=30, secret=secret.encode())
    peers = [msgpack.unpackb(harness.get(f"disttorch/0/peer/{rank}")) for rank in range(2)]
    context = zmq.Context()
    strangers = []
    for listener in [listener for info in peers for listener in info["listeners"] if listener]:
        _raw_garbage(*listener["tcp"][len("tcp://"):].rsplit(":", 1))
        strangers += [_zmq_stranger(context, listener["ipc"], 2),
                      _zmq_stranger(context, listener["tcp"], 2)]
    _raw_garbage("127.0.0.1", port)
    store_stranger = context.socket(zmq.DEALER)
    store_stranger.setsockopt(zmq.LINGER, 0)
    store_stranger.connect(f"tcp://127.0.0.1:{port}")
    forged = msgpack.packb([b"x" * 16, 1, "set", "disttorch/0/peer/0", b"evil"])
    _send_unless_refused(store_stranger, [forged, os.urandom(32)])
    wrong_secret = TCPStore("127.0.0.1", port, timeout=0.5, secret=b"not-the-secret")
    with pytest.raises(RuntimeError):
        wrong_secret.get("disttorch/0/peer/0")
    time.sleep(0.2)
    assert msgpack.unpackb(harness.get("disttorch/0/peer/0")) == peers[0]
    results = finish_job(procs, timeout=60)
    for sock in strangers + [store_stranger]:
        sock.close()
    context.term()
    wrong_secret.close()
    harness.close()
    assert_all_ok(results)
    assert all(reports(output)[-1]["checks"] > 10 for _, output in results)


@pytest.mark.timeout(60)
def test_missing_rank_at_init_is_named():
    procs, _ = start_job("init_only", 3)
    procs[2].kill()
    results = finish_job(procs[:2], timeout=50)
    for code, output in results:
        assert code != 0
        assert "rank 2 did not join" in output, output
