"""Rendezvous key-value store, served by rank 0 over an authenticated ZeroMQ socket.

Wire format, one request per message: ``[payload, mac]`` where payload is
msgpack ``[client_id, counter, command, *args]`` and mac is an HMAC of it under
the job secret. The server drops anything that fails the MAC or replays an old
counter, so strangers can connect but never read or write keys. Blocking
commands (get, wait) are parked on the server until their keys appear; the
client enforces the timeout and ignores late replies by counter.
"""
import datetime
import threading
import time

import msgpack
import zmq

from . import auth
from .errors import DistStoreError

DEFAULT_TIMEOUT = datetime.timedelta(seconds=300)
_REQUEST = b"disttorch-store-request"
_REPLY = b"disttorch-store-reply"
_POLL_MS = 50
_BIND_RETRY_S = 1.0


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

    def __init__(self, context, host, port, secret):
        self._secret = secret
        self._socket = context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, 64 << 20)
        self._bind(host, port)
        self.port = int(self._socket.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
        self._data = {}
        self._last_counter = {}
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
                self._socket.close()
                raise DistStoreError(
                    f"cannot serve the rendezvous store on {host}:{port}: {error}; "
                    "pick a free MASTER_PORT") from error

    def stop(self):
        self._stopping.set()
        self._thread.join()
        self._socket.close()

    def _serve(self):
        while not self._stopping.is_set():
            if self._socket.poll(_POLL_MS):
                self._handle(self._socket.recv_multipart())

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


class TCPStore:
    """torch.distributed.TCPStore-shaped client (and, with is_master, server).

    >>> store = TCPStore("127.0.0.1", 0, is_master=True)
    >>> store.set("k", "v"); store.get("k")
    b'v'
    """

    def __init__(self, host_name, port, world_size=None, is_master=False,
                 timeout=DEFAULT_TIMEOUT, wait_for_workers=True, secret=None):
        self.host = host_name
        self.timeout = as_seconds(timeout)
        self.world_size = world_size
        self._secret = auth.job_secret() if secret is None else secret
        self._context = zmq.Context.instance()
        self._server = None
        if is_master:
            self._server = _StoreServer(self._context, host_name, port, self._secret)
            port = self._server.port
        self.port = port
        self._client_id = auth.new_nonce()
        self._counter = 0
        self._lock = threading.Lock()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
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
                self._socket.close()
                self._socket = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _request(self, command, *args, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            if self._socket is None:
                raise DistStoreError("the store was closed; call init_process_group again")
            self._counter += 1
            payload = msgpack.packb([self._client_id, self._counter, command, *args])
            self._socket.send_multipart([payload, auth.sign(self._secret, _REQUEST, payload)])
            ok, result = self._await_reply(self._counter, command, args, timeout)
        if not ok:
            raise DistStoreError(result)
        return result

    def _await_reply(self, counter, command, args, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(remaining_ms):
                raise DistStoreError(
                    f"store {command}{tuple(args)[:1]} timed out after {timeout:.1f}s waiting for "
                    f"the rendezvous store at {self.host}:{self.port}; check that rank 0 is running "
                    "and MASTER_ADDR/MASTER_PORT agree on every rank")
            frames = self._socket.recv_multipart()
            if len(frames) != 2 or not auth.verify(
                    self._secret, frames[1], _REPLY, self._client_id, frames[0]):
                continue
            reply_counter, ok, result = msgpack.unpackb(frames[0])
            if reply_counter == counter:
                return ok, result


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
