"""Strangers flooding a running job's ports (loopback): neither a computing rank nor the store's
host buffers what they send, and the job finishes with correct results.

Memory is the target process's own peak resident size (VmHWM in /proc/PID/status), read before
and after each flood. The bound, 32 MiB, is an eighth of the 256 MiB each flood sends: a target
that buffered even one connection's worth of a handshake claim (16 MiB before the fix) per pair
of connections would exceed it, while the job's own churn (100,000-float all_reduces, ZeroMQ's
socket buffers) stays far below it.
"""
import contextlib
import time

import msgpack
import pytest
import zmq

import flood_client
from comm_harness import assert_all_ok, finish_job, reports, start_job
from disttorch.comm import TCPStore, auth, store as store_module

SECRET = "flood-test-secret"
FLOOD_BYTES = 256 << 20
GROWTH_BOUND_KIB = 32 << 10


@contextlib.contextmanager
def running_job():
    """A 2-rank job doing verified all_reduces until told to stop; yields (pids, store port,
    a store client holding the job secret). Checks on exit that both ranks finished cleanly."""
    procs, port = start_job("until_stopped", 2, env={"DISTTORCH_SECRET": SECRET})
    harness = TCPStore("127.0.0.1", port, timeout=60, secret=SECRET.encode())
    try:
        harness.wait(["flood/ready/0", "flood/ready/1"])
        yield [proc.pid for proc in procs], port, harness
        harness.set("flood/stop", "1")
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    finally:
        harness.close()
    results = finish_job(procs, timeout=60)
    assert_all_ok(results)
    assert all(reports(output)[-1]["checks"] > 40 for _, output in results), results


def data_ports(pid, store_port):
    """The ports a rank listens on for its peers, as anyone on the host can list them."""
    ports = [port for port in flood_client.listening_tcp_ports(pid) if port != store_port]
    assert ports, f"rank process {pid} listens on no TCP port"
    return ports


def peak_growth_kib(pid, flood):
    """How much ``pid``'s peak resident size grew while ``flood()`` ran; sockets that
    ``flood`` returns stay open until it is measured."""
    before = flood_client.memory_kib(pid)["VmHWM"]
    held = flood() or []
    time.sleep(0.5)  # what the target's I/O threads already took in
    growth = flood_client.memory_kib(pid)["VmHWM"] - before
    for sock in held:
        sock.close()
    return growth


ATTACKS = {
    # 4 connections of 64 MiB each, never a valid greeting.
    "raw_tcp": lambda port: flood_client.raw_tcp(port, 4, FLOOD_BYTES // 4),
    # 16 connections at once, each claiming a 16 MiB HELLO and sending it.
    "handshake_claim": lambda port: flood_client.handshake_claim(port, 16, FLOOD_BYTES // 16),
    # ZeroMQ itself, with credentials that prove nothing, offering 16 MiB messages.
    "wrong_secret": lambda port: flood_client.zmq_wrong_secret(port, 16, FLOOD_BYTES // 16),
    # Slow loris: 300 connections held open mid-greeting (libzmq keeps each about 14 KiB
    # until its handshake interval, 30 s, runs out).
    "half_open": lambda port: flood_client.half_open(port, 300),
}


@pytest.mark.timeout(150)
def test_flooding_a_computing_rank_and_the_store_leaves_memory_flat():
    # One job takes every attack in turn (a job per attack would double the test's time).
    growth = {}
    with running_job() as (pids, store_port, _):
        assert store_port in flood_client.listening_tcp_ports(pids[0])
        ports = data_ports(pids[1], store_port)
        for name, attack in ATTACKS.items():
            growth[name, "rank 1 data ports"] = peak_growth_kib(pids[1], lambda: [
                sock for port in ports for sock in attack(port) or []])
            growth[name, "rank 0 store port"] = peak_growth_kib(pids[0], lambda: attack(store_port))
    too_much = {key: kib for key, kib in growth.items() if kib >= GROWTH_BOUND_KIB}
    assert not too_much, f"peak RSS growth (KiB) over {GROWTH_BOUND_KIB}: {too_much} of {growth}"


def _authenticated_dealer(context, port):
    """A raw ZeroMQ socket that passes the store's handshake, as a rank of the job would."""
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.plain_username, dealer.plain_password = auth.credentials(
        SECRET.encode(), store_module._CONNECT, store_module._CLIENT_NAME)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return dealer


@pytest.mark.timeout(120)
def test_oversized_store_requests_are_refused_not_buffered():
    too_big = store_module.MAX_MESSAGE_BYTES + 1
    with running_job() as (pids, store_port, harness):
        with pytest.raises(ValueError, match="at most 16 MiB per value"):
            harness.set("huge", b"x" * too_big)
        context = zmq.Context()
        dealer = _authenticated_dealer(context, store_port)
        payload = msgpack.packb([auth.new_nonce(), 1, "set", "huge", b"x" * (4 * too_big)])
        mac = auth.sign(SECRET.encode(), store_module._REQUEST, payload)

        def send_oversized():
            # The server hangs up at the frame's length; the 64 MiB never reach its memory.
            if dealer.poll(10_000, zmq.POLLOUT):
                with contextlib.suppress(zmq.Again):
                    dealer.send_multipart([payload, mac], zmq.NOBLOCK, copy=False)
            time.sleep(1)
        try:
            growth = peak_growth_kib(pids[0], send_oversized)
        finally:
            dealer.close()
            context.term()
        assert not harness.check(["huge"])
        harness.set("small", b"after the flood")
        assert harness.get("small") == b"after the flood"
    assert growth < GROWTH_BOUND_KIB, f"store host's peak RSS grew by {growth} KiB"
