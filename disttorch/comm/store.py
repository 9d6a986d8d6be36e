"""Rendezvous key-value store, served by rank 0 over an authenticated ZeroMQ socket.

Wire format, one request per message: ``[payload, mac]`` where payload is
msgpack ``[client_id, counter, command, *args]`` and mac is an HMAC of it under
the job secret. The server drops anything that fails the MAC or replays an old
counter. Before any of that, a connection must prove the secret in its handshake
(handshake.py), so strangers cannot even make the server buffer their bytes, and a
rank with the wrong secret learns at once that it was refused.

libzmq buffers a handshake message up to the socket's largest frame before anyone can
judge it, so the server's socket takes frames of at most FRAME_BYTES: that is all a
stranger's connection can cost. A request longer than that travels as numbered
``_part`` requests, each signed, that the server joins (at most MAX_MESSAGE_BYTES per
request) and runs when the ``_last_part`` arrives. Blocking
commands (get, wait) are parked on the server until their keys appear; the
client enforces the timeout and ignores late replies by counter.
"""
import datetime
import struct
import threading
import time

import msgpack
import zmq

from . import auth, handshake
from .errors import DistStoreError

DEFAULT_TIMEOUT = datetime.timedelta(seconds=300)
_REQUEST = b"disttorch-store-request"
_REPLY = b"disttorch-store-reply"
_CONNECT = b"disttorch-store-connect"
_CLIENT_NAME = "store-client"
_POLL_MS = 50
_BIND_RETRY_S = 1.0
# Largest request or reply; values are rendezvous data (addresses, small objects).
MAX_MESSAGE_BYTES = 16 << 20
# Largest frame the server's socket accepts from anyone, a handshake's included.
FRAME_BYTES = 16 << 10
# Room in a frame for the part's client id, counter and command around its slice.
_PART_OVERHEAD = 64
_HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                     | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
# Requests queued per connection before the server stops reading it (a client has at
# most one in flight, plus the ones it gave up waiting for).
_QUEUED_REQUESTS = 64
# Servers of multi_tenant masters, by (host, port): they outlive their TCPStore objects (see
# TCPStore) and stop when a plain master wants their port, or with the process.
_shared_servers = {}
_shared_lock = threading.Lock()


def as_seconds(timeout):
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    return float(timeout)


def _as_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"store values must be str or bytes, got {type(value).__name__}")


class _StoreServer:
    """Owns the key-value dict; runs on a daemon thread in the master process."""

    def __init__(self, host, port, secret):
        self._secret = secret
        self._used_nonces = set()
        # Its own context: the ZAP handler it binds answers for every socket of one.
        self._context = zmq.Context()
        self._gate = handshake.bind_handler(self._context)
        self._socket = self._context.socket(zmq.ROUTER)
        for option, value in ((zmq.LINGER, 0), (zmq.MAXMSGSIZE, FRAME_BYTES),
                              (zmq.HANDSHAKE_IVL, handshake.timeout_ms()),
                              (zmq.RCVHWM, _QUEUED_REQUESTS), (zmq.PLAIN_SERVER, 1)):
            self._socket.setsockopt(option, value)
        self._bind(host, port)
        self.host = host
        self.port = int(self._socket.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
        self._data = {}
        self._last_counter = {}
        # client id -> (bytes so far, parts so far; None once past MAX_MESSAGE_BYTES)
        self._partial = {}
        self._parked = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="disttorch-store", daemon=True)
        self._thread.start()

    def _bind(self, host, port):
        # A store closed a moment ago in this process may still hold the port while
        # ZeroMQ's I/O thread tears it down, so retry briefly before giving up.
        deadline = time.monotonic() + _BIND_RETRY_S
        while True:
            try:
                self._socket.bind(f"tcp://{host}:{port}")
                return
            except zmq.ZMQError as error:
                if error.errno == zmq.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._close_sockets()
                raise DistStoreError(
                    f"cannot serve the rendezvous store on {host}:{port}: {error}; "
                    "pick a free MASTER_PORT") from error

    def stop(self):
        self._stopping.set()
        self._thread.join()
        self._close_sockets()

    def _close_sockets(self):
        self._socket.close()
        self._gate.close()
        self._context.term()

    def _serve(self):
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._gate, zmq.POLLIN)
        while not self._stopping.is_set():
            ready = dict(poller.poll(_POLL_MS))
            if self._gate in ready:
                handshake.answer_pending(self._gate, self._admit)
            if self._socket in ready:
                self._handle(self._socket.recv_multipart())

    def _admit(self, _domain, mechanism, credentials):
        """ZAP decision: only clients that prove the job secret may connect."""
        if mechanism != b"PLAIN" or len(credentials) != 2:
            return None
        username, password = credentials
        if username != _CLIENT_NAME.encode() or not auth.check_credentials(
                self._secret, _CONNECT, username, password, self._used_nonces):
            return None
        return username

    def _handle(self, frames):
        if len(frames) != 3:
            return
        identity, payload, mac = frames
        if not auth.verify(self._secret, mac, _REQUEST, payload):
            return
        try:
            client_id, counter, command, *args = msgpack.unpackb(payload)
        except (ValueError, TypeError, msgpack.UnpackException):
            return
        if counter <= self._last_counter.get(client_id, -1):
            return
        self._last_counter[client_id] = counter
        request = (identity, client_id, counter, command, args)
        if command in ("_part", "_last_part") and len(args) == 1 and isinstance(args[0], bytes):
            self._collect_part(request, args[0], last=command == "_last_part")
        else:
            self._run(request)

    def _collect_part(self, request, piece, last):
        identity, client_id, counter = request[:3]
        size, pieces = self._partial.pop(client_id, (0, []))
        size += len(piece)
        if pieces is not None and size <= MAX_MESSAGE_BYTES:
            pieces.append(piece)
        else:
            pieces = None  # refused: stop holding its bytes, answer its last part
        if not last:
            self._partial[client_id] = (size, pieces)
        elif pieces is None:
            self._reply(request, False,
                        f"store request of {size} bytes refused: the store carries at most "
                        f"{MAX_MESSAGE_BYTES >> 20} MiB per request")
        else:
            try:
                command, *args = msgpack.unpackb(b"".join(pieces))
            except (ValueError, TypeError, msgpack.UnpackException):
                return
            self._run((identity, client_id, counter, command, args))

    def _run(self, request):
        command, args = request[3:]
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            self._reply(request, False, f"unknown store command {command!r}")
            return
        try:
            handler(request, *args)
        except (TypeError, ValueError) as error:
            self._reply(request, False, f"bad store request {command}: {error}")

    def _reply(self, request, ok, result):
        identity, client_id, counter = request[:3]
        payload = msgpack.packb([counter, ok, result])
        self._socket.send_multipart(
            [identity, payload, auth.sign(self._secret, _REPLY, client_id, payload)])

    def _changed(self):
        still_parked = []
        for request, keys, finish in self._parked:
            if all(key in self._data for key in keys):
                finish(request)
            else:
                still_parked.append((request, keys, finish))
        self._parked = still_parked

    def _park_until(self, request, keys, finish):
        if all(key in self._data for key in keys):
            finish(request)
        else:
            self._parked.append((request, keys, finish))

    def _cmd_set(self, request, key, value):
        self._data[key] = value
        self._reply(request, True, None)
        self._changed()

    def _cmd_get(self, request, key):
        self._park_until(request, [key], lambda req: self._reply(req, True, self._data[key]))

    def _cmd_wait(self, request, keys):
        self._park_until(request, keys, lambda req: self._reply(req, True, None))

    def _cmd_check(self, request, keys):
        self._reply(request, True, all(key in self._data for key in keys))

    def _cmd_add(self, request, key, amount):
        value = int(self._data.get(key, b"0")) + int(amount)
        self._data[key] = str(value).encode()
        self._reply(request, True, value)
        self._changed()

    def _cmd_compare_set(self, request, key, expected, desired):
        current = self._data.get(key)
        if (current is None and expected == b"") or current == expected:
            self._data[key] = desired
            self._reply(request, True, desired)
            self._changed()
        else:
            self._reply(request, True, expected if current is None else current)

    def _cmd_delete_key(self, request, key):
        self._reply(request, True, self._data.pop(key, None) is not None)

    def _cmd_num_keys(self, request):
        self._reply(request, True, len(self._data))


def _master_server(host, port, secret, multi_tenant):
    """The server a master TCPStore on ``host:port`` talks to: a shared one that is
    already running there when ``multi_tenant``, else a fresh one."""
    with _shared_lock:
        shared = _shared_servers.pop((host, port), None)
        if shared is not None:
            if multi_tenant and shared._secret == secret:
                _shared_servers[(host, port)] = shared
                return shared
            shared.stop()
        server = _StoreServer(host, port, secret)
        if multi_tenant and port != 0:
            _shared_servers[(host, port)] = server
        return server


class TCPStore:
    """torch.distributed.TCPStore-shaped client (and, with is_master, server).

    >>> store = TCPStore("127.0.0.1", 0, is_master=True)
    >>> store.set("k", "v"); store.get("k")
    b'v'

    ``multi_tenant=True`` masters on one host and port share a server, as in torch.
    Unlike torch's, that server keeps running after close(), so a peer that closed
    its store and connects again before this process created its next master (a
    re-init after destroy_process_group, with any delay between the ranks) finds
    the same server and the keys it already wrote.
    """

    def __init__(self, host_name, port, world_size=None, is_master=False,
                 timeout=DEFAULT_TIMEOUT, wait_for_workers=True, multi_tenant=False,
                 secret=None):
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"TCPStore port must be an integer in [0, 65535], got {port!r}")
        self.host = host_name
        self.timeout = as_seconds(timeout)
        self.world_size = world_size
        self._secret = auth.job_secret() if secret is None else secret
        self._context = zmq.Context.instance()
        self._server = None
        if is_master:
            self._server = _master_server(host_name, port, self._secret, multi_tenant)
            port = self._server.port
        self.port = port
        self._client_id = auth.new_nonce()
        self._counter = 0
        self._lock = threading.Lock()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.plain_username, self._socket.plain_password = auth.credentials(
            self._secret, _CONNECT, _CLIENT_NAME)
        self._monitor = handshake.monitor(self._socket, _HANDSHAKE_EVENTS)
        self._handshake = None
        self._refusal = None
        self._socket.connect(f"tcp://{host_name}:{port}")

    def set(self, key, value):
        self._request("set", key, _as_bytes(value))

    def get(self, key):
        return self._request("get", key)

    def add(self, key, amount):
        return self._request("add", key, int(amount))

    def compare_set(self, key, expected_value, desired_value):
        return self._request("compare_set", key, _as_bytes(expected_value),
                             _as_bytes(desired_value))

    def wait(self, keys, timeout=None):
        self._request("wait", list(keys), timeout=as_seconds(timeout))

    def check(self, keys):
        return self._request("check", list(keys))

    def delete_key(self, key):
        return self._request("delete_key", key)

    def num_keys(self):
        return self._request("num_keys")

    def set_timeout(self, timeout):
        self.timeout = as_seconds(timeout)

    def close(self):
        with self._lock:
            if self._socket is not None:
                self._socket.disable_monitor()
                self._monitor.close()
                self._socket.close()
                self._socket = None
        server, self._server = self._server, None
        if server is not None:
            with _shared_lock:
                shared = _shared_servers.get((server.host, server.port)) is server
            if not shared:
                server.stop()

    def _request(self, command, *args, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            if self._socket is None:
                raise DistStoreError("the store was closed; call init_process_group again")
            if self._refusal is not None:
                raise self._refusal
            body = msgpack.packb([command, *args])
            if len(body) > MAX_MESSAGE_BYTES:
                raise ValueError(f"store {command}: the request takes {len(body)} bytes; the "
                                 f"store carries at most {MAX_MESSAGE_BYTES >> 20} MiB per value")
            deadline = None if timeout is None else time.monotonic() + timeout
            if len(body) + _PART_OVERHEAD <= FRAME_BYTES:
                sent = self._send(deadline, command, *args)
            else:
                step = FRAME_BYTES - _PART_OVERHEAD
                sent = all(self._send(deadline, "_last_part" if start + step >= len(body)
                                      else "_part", body[start:start + step])
                           for start in range(0, len(body), step))
            if not sent:
                raise self._timeout_error(command, args, timeout)
            ok, result = self._await_reply(self._counter, command, args, timeout, deadline)
        if not ok:
            raise DistStoreError(result)
        return result

    def _send(self, deadline, command, *args):
        """Queue one signed request; False if ``deadline`` passed first.

        Never blocks inside libzmq: a connection refused in its handshake has no queue, and
        a send blocked on it would time out with the refusal unread on the monitor, telling
        a rank with the wrong secret that the store is unreachable.
        """
        self._counter += 1
        payload = msgpack.packb([self._client_id, self._counter, command, *args])
        frames = [payload, auth.sign(self._secret, _REQUEST, payload)]
        while True:
            try:
                self._socket.send_multipart(frames, zmq.NOBLOCK)
                return True
            except zmq.Again:
                self._read_handshake_events()
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._wait(zmq.POLLOUT, deadline)

    def _wait(self, event, deadline):
        """Wait for ``event`` on the socket, or any handshake event, for at most a poll interval."""
        remaining_ms = _POLL_MS if deadline is None else min(
            _POLL_MS, max(0, int((deadline - time.monotonic()) * 1000)))
        ready = dict(zmq.zmq_poll([(self._socket, event), (self._monitor, zmq.POLLIN)],
                                  remaining_ms))
        return bool(ready.get(self._socket))

    def _await_reply(self, counter, command, args, timeout, deadline):
        while True:
            self._read_handshake_events()
            if not self._wait(zmq.POLLIN, deadline):
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._timeout_error(command, args, timeout)
                continue
            frames = self._socket.recv_multipart()
            if len(frames) != 2 or not auth.verify(
                    self._secret, frames[1], _REPLY, self._client_id, frames[0]):
                continue
            reply_counter, ok, result = msgpack.unpackb(frames[0])
            if reply_counter == counter:
                return ok, result

    def _read_handshake_events(self):
        while self._monitor.poll(0):
            event = struct.unpack_from("=H", self._monitor.recv_multipart()[0])[0]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake = "done"
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._refusal = DistStoreError(
                    f"the rendezvous store at {self.host}:{self.port} refused this process: its "
                    "DISTTORCH_SECRET differs from the one the store's host (rank 0) was started "
                    "with. Give every rank the same DISTTORCH_SECRET (disttorch-launch sets it "
                    "for its workers)")
                raise self._refusal
            elif self._handshake is None:
                self._handshake = "foreign"

    def _timeout_error(self, command, args, timeout):
        where = f"the rendezvous store at {self.host}:{self.port}"
        if self._handshake == "done":
            return DistStoreError(
                f"store {command}{tuple(args)[:1]} timed out after {timeout:.1f}s waiting for "
                f"{where}; the store is reachable but nobody provided what this call waits for")
        if self._handshake == "foreign":
            return DistStoreError(
                f"store {command}{tuple(args)[:1]} timed out after {timeout:.1f}s: {where} "
                "answers with another protocol; is another program using MASTER_PORT?")
        return DistStoreError(
            f"store {command}{tuple(args)[:1]} timed out after {timeout:.1f}s: could not reach "
            f"{where}; check that rank 0 is running and MASTER_ADDR/MASTER_PORT agree on every "
            "rank")


class PrefixStore:
    """torch.distributed.PrefixStore: every key of ``store`` gets ``prefix + "/"`` in front."""

    def __init__(self, prefix, store):
        self.prefix = prefix
        self.underlying_store = store

    def _key(self, key):
        return f"{self.prefix}/{key}"

    def set(self, key, value):
        self.underlying_store.set(self._key(key), value)

    def get(self, key):
        return self.underlying_store.get(self._key(key))

    def add(self, key, amount):
        return self.underlying_store.add(self._key(key), amount)

    def compare_set(self, key, expected_value, desired_value):
        return self.underlying_store.compare_set(self._key(key), expected_value, desired_value)

    def wait(self, keys, timeout=None):
        self.underlying_store.wait([self._key(key) for key in keys], timeout)

    def check(self, keys):
        return self.underlying_store.check([self._key(key) for key in keys])

    def delete_key(self, key):
        return self.underlying_store.delete_key(self._key(key))

    @property
    def host(self):
        return self.underlying_store.host

    @property
    def timeout(self):
        return self.underlying_store.timeout

    def close(self):
        self.underlying_store.close()
