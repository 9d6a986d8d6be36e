"""An attacker on loopback, for the flood tests and bench_flood: finds a process's listening
ports the way anyone on the host can (/proc), measures its memory, and sends it garbage
through raw TCP, through ZeroMQ's handshake, or through ZeroMQ with a wrong secret."""
import os
import socket
import struct
import threading

import zmq

_CHUNK = b"\xa5" * (1 << 20)


def listening_tcp_ports(pid):
    """TCP ports ``pid`` listens on: its socket inodes (/proc/PID/fd) matched against the
    listening sockets of its network namespace (/proc/PID/net/tcp, state 0A)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as listing:
            for line in listing.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def memory_kib(pid):
    """{"VmRSS": ..., "VmHWM": ...} of ``pid`` in KiB: resident now and at its peak."""
    with open(f"/proc/{pid}/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) for line in status
                if line.startswith(("VmRSS:", "VmHWM:"))}


def _send_garbage(sock, nbytes):
    """Send ``nbytes``; an OSError means the target hung up."""
    for start in range(0, nbytes, len(_CHUNK)):
        sock.sendall(_CHUNK[:min(len(_CHUNK), nbytes - start)])


def _zmtp_greeting(mechanism):
    """A ZMTP 3.0 client greeting (RFC 23): signature, version, mechanism, as-server, filler."""
    return (b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + mechanism.ljust(20, b"\x00")
            + b"\x00" + bytes(31))


def _flood_connections(port, connections, bytes_each, preamble, hold):
    """Open ``connections`` TCP connections at once, each sending ``preamble`` then garbage up to
    ``bytes_each``; returns them still open when ``hold`` (the caller closes them), else []."""
    sockets, lock = [], threading.Lock()

    def one():
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            sock.sendall(preamble)
            _send_garbage(sock, bytes_each - len(preamble))
        except OSError:
            pass  # the target hung up, as it should
        with lock:
            sockets.append(sock)

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if hold:
        return sockets
    for sock in sockets:
        sock.close()
    return []


def raw_tcp(port, connections, bytes_each, hold=False):
    """Plain garbage: not even a ZeroMQ greeting."""
    return _flood_connections(port, connections, bytes_each, b"", hold)


def handshake_claim(port, connections, bytes_each, hold=True):
    """A valid greeting for the PLAIN mechanism, then a command frame (the HELLO) whose 8-byte
    length claims ``bytes_each``, and that many garbage bytes: what a peer may send before it
    has proven anything."""
    frame = b"\x06" + struct.pack(">Q", bytes_each)  # flags: command + long size
    return _flood_connections(port, connections, bytes_each, _zmtp_greeting(b"PLAIN") + frame,
                              hold)


def half_open(port, connections, greeting_bytes=64):
    """Slow loris: ``connections`` connections that each send ``greeting_bytes`` of a greeting
    (all 64: the target then waits for a HELLO, with its handshake buffers allocated) and then
    nothing; returns them open (the caller closes them)."""
    sockets = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(_zmtp_greeting(b"PLAIN")[:greeting_bytes])
        sockets.append(sock)
    return sockets


def zmq_wrong_secret(port, messages, bytes_each, username=b"0", timeout_s=5):
    """A ZeroMQ DEALER with PLAIN credentials that prove nothing, sending ``messages`` messages of
    ``bytes_each`` garbage, as many as libzmq takes before the handshake is refused."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.plain_username, dealer.plain_password = username, os.urandom(48)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    payload = _CHUNK * max(1, bytes_each >> 20)
    for _ in range(messages):
        try:
            if not dealer.poll(timeout_s * 1000 // messages or 1, zmq.POLLOUT):
                break
            dealer.send(payload, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            break  # the refused handshake took the connection's queue away meanwhile
    dealer.close()
    context.term()
