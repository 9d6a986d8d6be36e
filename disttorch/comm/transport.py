"""Point-to-point ZeroMQ transport between the ranks of one job.

Topology: for every peer ``j`` a rank binds one DEALER (ipc:// for peers on the same
host, as host.py decides it, tcp:// on port 0 for the rest) that only ``j`` may connect to
and that carries only data to ``j``; it publishes their real addresses in the store. Its one
ROUTER connects to the DEALER each peer bound for it, so everything addressed to this rank
arrives there, named by the routing id this rank gave the connection (the peer's rank),
and is sorted into per-(source, group) queues.

Data flows from the listening side to the connecting side because a listener cannot tell a
stranger's connection from a peer's until the handshake is over, and libzmq buffers a
handshake message up to the socket's largest message size: the listening DEALERs accept
messages of at most _LISTENER_MAX_MESSAGE_BYTES (the handshake and heartbeats), so a stranger
costs a rank a few KiB per connection whatever it claims, while the ROUTER, which takes
16 MiB pieces, only ever talks to addresses read from the authenticated store.

The connecting ROUTER proves the job secret inside the ZeroMQ handshake: PLAIN
credentials whose password is an HMAC over the peer's publish token and a fresh
nonce, or with CURVE a client key it published in the authenticated store. The
listening rank's ZAP handler (handshake.py) checks them, and that they come from the
one peer the DEALER serves, before libzmq attaches the connection, so a stranger can
neither read a rank's data nor make it buffer garbage.

Messages are ``[header, payload?]``. The header is msgpack and identical on
every rank for a given collective (kind, group, sequence number, op, dtype,
element count, reduce op), so a plain bytes comparison checks that the ranks
agree; only on a mismatch is it decoded into an error message.

Failure detection: a socket monitor on the ROUTER reports when a peer's
process disappears (ZMTP heartbeats catch silent hosts); a rank waiting in a
collective whose group lost a member raises RankFailure. On a timeout the
waiting rank asks its group who has reached this collective, names the ranks
that have not, and tells everyone to abort so no rank hangs.
"""
import os
import socket as pysocket
import struct
import threading
import time
from collections import defaultdict, deque

import msgpack
import numpy as np
import zmq
from zmq.utils import z85

from ..core import heap
from . import auth, handshake, host
from .errors import (CollectiveMismatch, CollectiveTimeout, DistBackendError, DistError,
                     DistNetworkError, DistStoreError, RankFailure)

DATA, ABORT, STATUS_QUERY, STATUS_REPLY, BYE = range(5)
P2P_GROUP = -1
MAX_MESSAGE_BYTES = (16 << 20) + 4096
# A PLAIN HELLO is at most 518 bytes, a CURVE INITIATE a few hundred; ZMTP heartbeats less.
_LISTENER_MAX_MESSAGE_BYTES = 4096
_CONNECT_PURPOSE = b"disttorch-connect"
_POLL_MS = 100
_DEATH_GRACE_S = 0.3
_STATUS_WAIT_S = 1.0
_FLUSH_LINGER_MS = 2000
_HEARTBEATS = ((zmq.HEARTBEAT_IVL, 1000), (zmq.HEARTBEAT_TIMEOUT, 5000), (zmq.HEARTBEAT_TTL, 6000))
# Fewer, larger socket reads and writes: the kernel caps this at net.core.[rw]mem_max.
_SOCKET_BUFFER_BYTES = int(os.environ.get('DISTTORCH_SOCKET_BUFFER', 4 << 20))
_ERRORS = {cls.__name__: cls for cls in (CollectiveMismatch, CollectiveTimeout, DistBackendError)}


def describe(fields):
    """Human form of a DATA header: ``all_reduce(float32, shape=[10], op=sum) #3``."""
    _, _, seq, op, dtype, extent, reduce_op = fields
    size = f"shape={extent}" if isinstance(extent, list) else f"numel={extent}"
    parts = [np.dtype(dtype).name, size] + ([f"op={reduce_op}"] if reduce_op else [])
    return f"{op}({', '.join(parts)}) #{seq}"


def _take_message(queue, seq):
    """Remove and return the first message of collective ``seq`` (or an older leftover), else None."""
    if queue and queue[0][1][2] <= seq:
        return queue.popleft()
    for index, entry in enumerate(queue):
        if entry[1][2] <= seq:
            del queue[index]
            return entry
    return None


class OpContext:
    """What a running collective needs for waits and error messages."""

    def __init__(self, group_id, members, seq, op, timeout):
        self.group_id = group_id
        self.members = members
        self.seq = seq
        self.op = op
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def name(self):
        return f"{self.op} #{self.seq} of group {self.group_id}"


def _local_ip_towards(host):
    """The address of the interface this host uses to reach ``host``."""
    probe = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
    try:
        probe.connect((host, 9))
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


# libzmq allocates a fresh buffer for every large message it receives; with glibc's default
# thresholds those megabytes go back to the kernel on free and fault in again, zero-filled, on the
# next receive, which costs about as much as the transfer itself.
_RECEIVE_HEAP_KEPT_BYTES = 512 << 20


class Transport:
    def __init__(self, store, rank, world_size, master_addr, prefix, secret):
        self.rank = rank
        self.world_size = world_size
        self._secret = secret
        heap.keep_freed_heap(_RECEIVE_HEAP_KEPT_BYTES)
        self._context = zmq.Context()
        self._token = auth.new_nonce()
        self._gate = handshake.bind_handler(self._context)
        self._used_nonces = set()
        self._client_keys = {}
        self._router = self._context.socket(zmq.ROUTER)
        for option, value in ((zmq.LINGER, 0), (zmq.RCVHWM, 0), (zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES),
                              (zmq.RCVBUF, _SOCKET_BUFFER_BYTES), *_HEARTBEATS):
            self._router.setsockopt(option, value)
        self._monitor = handshake.monitor(self._router, zmq.EVENT_DISCONNECTED)
        self._peer_of_endpoint = {}
        # Where this rank receives each peer's data from (ipc:// or tcp://), for diagnostics.
        self.routes = {}
        self._curve_server = self._curve_client = None
        if os.environ.get("DISTTORCH_CURVE", "0") == "1":
            if not zmq.has("curve"):
                raise DistNetworkError("DISTTORCH_CURVE=1 needs libzmq built with CURVE support; "
                                       "install a pyzmq wheel that bundles libsodium")
            self._curve_server, self._curve_client = zmq.curve_keypair(), zmq.curve_keypair()
            self._router.curve_publickey, self._router.curve_secretkey = self._curve_client
        self._stash = defaultdict(deque)
        self._aborts = {}
        self._dead = {}
        self._left = set()
        self._status = {}
        self._next_check = 0.0
        self._router_poll = [(self._router, zmq.POLLIN), (self._gate, zmq.POLLIN)]
        self.progress = {}
        # A collective may start sending from the training thread while the communication thread runs
        # an earlier one (see ProcessGroup._run): sends to the DEALERs take turns under this lock.
        self._send_lock = threading.Lock()
        # Peers reached over ipc://, and the subset that also maps our /dev/shm files.
        self.local_peers = set()
        self.shm_peers = set()
        self._host = host.identity()
        self._peer_hosts = {rank: self._host}
        self._dealers = {}
        # Monitors of the DEALERs whose peer has not connected yet.
        self._connected = {}
        # (store, prefix) while answering handshakes before every peer's keys were read.
        self._joining = None
        host_addr = os.environ.get("DISTTORCH_HOST_ADDR") or _local_ip_towards(master_addr)
        try:
            listeners = [None if peer == rank else self._listen_for(peer, host_addr)
                         for peer in range(world_size)]
            store.set(f"{prefix}/peer/{rank}", msgpack.packb(
                {"host": self._host, "listeners": listeners, "token": self._token,
                 "curve": self._curve_server and self._curve_server[0],
                 "curve_client": self._curve_client and self._curve_client[0]}))
            self._connect_to_peers(store, prefix)
            self._await_peers(store.timeout)
        except BaseException:
            self.close()
            raise

    def _listen_for(self, peer, host_addr):
        """Bind the DEALER that carries this rank's messages to ``peer``; returns its
        addresses (an abstract-namespace ipc socket: no file to clean up, whatever stops
        this process)."""
        dealer = self._context.socket(zmq.DEALER)
        for option, value in ((zmq.LINGER, 0), (zmq.SNDHWM, 0), (zmq.SNDBUF, _SOCKET_BUFFER_BYTES),
                              (zmq.MAXMSGSIZE, _LISTENER_MAX_MESSAGE_BYTES),
                              (zmq.HANDSHAKE_IVL, handshake.timeout_ms()), *_HEARTBEATS):
            dealer.setsockopt(option, value)
        # The ZAP handler reads the domain to admit ``peer`` alone here.
        dealer.zap_domain = str(peer).encode()
        if self._curve_server is not None:
            dealer.curve_server = True
            dealer.curve_secretkey = self._curve_server[1]
        else:
            dealer.plain_server = True
        self._dealers[peer] = dealer
        self._connected[peer] = handshake.monitor(dealer, zmq.EVENT_HANDSHAKE_SUCCEEDED)
        ipc = f"ipc://@disttorch-{os.getpid()}-{self._token.hex()[:12]}-{peer}"
        dealer.bind(ipc)
        dealer.bind(f"tcp://{host_addr}:0")
        return {"ipc": ipc, "tcp": dealer.getsockopt(zmq.LAST_ENDPOINT).decode()}

    def _await_peers(self, timeout):
        """Answer the peers' handshakes until each one has connected to the DEALER bound for it:
        a DEALER drops what is sent before its peer connected."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._connected:
            for peer, monitor in list(self._connected.items()):
                if monitor.poll(0):
                    self._dealers[peer].disable_monitor()
                    monitor.close()
                    del self._connected[peer]
            if not self._connected:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise DistNetworkError(
                    f"rank {self.rank}: ranks {sorted(self._connected)} published their addresses "
                    f"but did not connect to this rank within {timeout:.0f}s; check that every "
                    "rank can reach the others' addresses (DISTTORCH_HOST_ADDR) and shares "
                    "DISTTORCH_SECRET")
            zmq.zmq_poll([(self._gate, zmq.POLLIN)]
                         + [(monitor, zmq.POLLIN) for monitor in self._connected.values()], _POLL_MS)
            handshake.answer_pending(self._gate, self._admit)

    def _connect_to_peers(self, store, prefix):
        """Connect to each peer as soon as its addresses are in the store, answering the
        handshakes of peers that connect here meanwhile: a blocking wait for a late rank would
        leave them unanswered until libzmq gives up on them (30 s) and reports a disconnect."""
        waiting = [peer for peer in range(self.world_size) if peer != self.rank]
        deadline = None if store.timeout is None else time.monotonic() + store.timeout
        while True:
            try:
                arrived = {peer: self._peer_info(store, prefix, peer)
                           for peer in waiting if store.check([f"{prefix}/peer/{peer}"])}
            except DistStoreError as error:
                # Rank 0 gave up on the same missing rank a moment earlier, taking the store.
                raise self._missing(waiting, store.timeout) from error
            for peer, info in arrived.items():
                self._connect(peer, info)
                waiting.remove(peer)
            if not waiting:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise self._missing(waiting, store.timeout)
            zmq.zmq_poll([(self._gate, zmq.POLLIN)], _POLL_MS)
            self._joining = (store, prefix)
            try:
                handshake.answer_pending(self._gate, self._admit)
            finally:
                self._joining = None

    def _peer_info(self, store, prefix, peer):
        """``peer``'s published addresses and keys; learns its CURVE client key."""
        info = msgpack.unpackb(store.get(f"{prefix}/peer/{peer}"))
        if "error" in info:
            # The peer found the job misconfigured (see process_group.join_prefix).
            raise DistError(info["error"])
        if info["curve_client"] is not None:
            self._client_keys[z85.decode(info["curve_client"])] = peer
        return info

    def _missing(self, ranks, timeout):
        return DistStoreError(
            f"rank {', '.join(map(str, ranks))} did not join the job (rank {self.rank} waited "
            f"{timeout:.0f}s for its address in the store); check that all "
            f"WORLD_SIZE={self.world_size} workers were started with the same "
            "MASTER_ADDR/MASTER_PORT")

    def _connect(self, peer, info):
        """Connect the ROUTER to the DEALER ``peer`` bound for this rank, proving the secret."""
        router = self._router
        if info["curve"] is not None:
            router.curve_serverkey = info["curve"]
        else:
            router.plain_username, router.plain_password = auth.credentials(
                self._secret, _CONNECT_PURPOSE, str(self.rank), info["token"])
        router.setsockopt(zmq.CONNECT_ROUTING_ID, str(peer).encode())
        self._peer_hosts[peer] = info["host"]
        if self._is_local(info):
            self.local_peers.add(peer)
            if host.same_shared_memory(self._host, info["host"]):
                self.shm_peers.add(peer)
        listener = info["listeners"][self.rank]
        endpoint = listener["ipc"] if self._can_use_ipc(info) else listener["tcp"]
        self._peer_of_endpoint[endpoint.encode()] = peer
        self.routes[peer] = endpoint
        router.connect(endpoint)

    def host_key(self, rank):
        """A value equal for exactly the ranks that share a host (and /dev/shm) with ``rank``;
        every rank computes the same one for every rank."""
        return host.key(self._peer_hosts[rank], rank)

    def cores_per_rank(self):
        """CPU cores per rank of this job on the cores this process may run on (see host.py)."""
        return host.cores_per_rank(self._host, list(self._peer_hosts.values()))

    def _is_local(self, info):
        """Same kernel and network namespace: then the peer's abstract-namespace ipc
        socket is reachable (no filesystem needs to be shared)."""
        return host.same_kernel_and_network(self._host, info["host"])

    def _can_use_ipc(self, info):
        return os.environ.get("DISTTORCH_TRANSPORT", "") != "tcp" and self._is_local(info)

    # ---------------------------------------------------------------- sending
    def send(self, dst, header, payload=None, track=False):
        """Queue ``[header, payload]`` for ``dst``; returns a MessageTracker when tracked.

        ``track=True`` sends ``payload`` zero-copy: the caller must not touch the
        buffer until the tracker is done. A ``zmq.Frame`` is forwarded without copying.
        """
        dealer = self._dealers[dst]
        try:
            with self._send_lock:
                if payload is None:
                    dealer.send(header, zmq.NOBLOCK)
                    return None
                dealer.send(header, zmq.NOBLOCK | zmq.SNDMORE)
                if isinstance(payload, zmq.Frame):
                    dealer.send(payload, zmq.NOBLOCK, copy=False)
                    return None
                return dealer.send(payload, zmq.NOBLOCK, copy=not track, track=track)
        except zmq.Again as error:
            # Worded as the receiving side words it: which path notices first is a race.
            what = ("left the job (destroy_process_group or exit)" if dst in self._left else
                    "lost its connection (the process likely died)")
            raise RankFailure(f"rank {dst} {what}; rank {self.rank} cannot send to it", dst) from error

    def _send_control(self, dst, message):
        """Send a one-frame control message unless ``dst``'s connection is gone; whether it went."""
        try:
            self.send(dst, message)
            return True
        except RankFailure:
            return False

    def wait_sent(self, trackers, ctx):
        """Block until ZeroMQ released every tracked buffer, so callers may reuse them."""
        for tracker in trackers:
            while not tracker.done:
                try:
                    tracker.wait(_POLL_MS / 1000)
                except zmq.NotDone:
                    self._pump(0)
                    self._check(ctx, None)

    # -------------------------------------------------------------- receiving
    def recv(self, src, header, ctx):
        """Next payload from ``src`` for this collective; raises on any header mismatch.

        A peer may already be sending later collectives of the group (their sends start as soon
        as they are issued), so messages of higher sequence numbers are passed over; one of a lower
        number is a leftover that only a disagreement between the ranks can explain.
        """
        queue = self._stash[(src, ctx.group_id)]
        while True:
            entry = _take_message(queue, ctx.seq)
            if entry is not None:
                break
            self._wait_for_message(src, ctx)
        got_header, fields, payload = entry
        if got_header != header:
            raise self._mismatch(src, msgpack.unpackb(header), fields, ctx)
        return payload

    def recv_p2p(self, src, tag, ctx):
        """Next point-to-point message with ``tag`` from ``src`` (None: any source)."""
        while True:
            found = self._find_p2p(src, tag)
            if found is not None:
                return found
            self._wait_for_message(src, ctx)

    def has_p2p(self, src, tag):
        """Whether a point-to-point message with ``tag`` from ``src`` already arrived."""
        self._pump(0)
        sources = range(self.world_size) if src is None else (src,)
        return any(fields[2] == tag for peer in sources
                   for _, fields, _ in self._stash.get((peer, P2P_GROUP), ()))

    def _find_p2p(self, src, tag):
        sources = range(self.world_size) if src is None else (src,)
        for peer in sources:
            queue = self._stash.get((peer, P2P_GROUP))
            for index, (_, fields, payload) in enumerate(queue or ()):
                if fields[2] == tag:
                    del queue[index]
                    return peer, fields, payload
        return None

    def _wait_for_message(self, src, ctx):
        # Health checks run when the socket stayed quiet for a poll interval, and at
        # most every interval otherwise, so a stream of unrelated messages cannot
        # starve them either; the latency path is one poll and the reads.
        now = time.monotonic()
        timeout_ms = _POLL_MS
        if ctx.deadline is not None:
            timeout_ms = max(0, min(timeout_ms, int((ctx.deadline - now) * 1000) + 1))
        if self._drain(timeout_ms):
            if now > self._next_check:
                # What just arrived may hold src's message and its goodbye behind it:
                # only a quiet poll proves that src left without sending it.
                self._check(ctx, None)
        else:
            self._check(ctx, src)

    def _check(self, ctx, waiting_on):
        self._next_check = time.monotonic() + _POLL_MS / 1000
        self._check_health(ctx, waiting_on)

    def _pump(self, timeout_ms):
        self._drain(timeout_ms)

    def _drain(self, timeout_ms):
        """Wait up to ``timeout_ms`` for the ROUTER, then read everything queued there
        (and answer connections waiting for authentication)."""
        if not zmq.zmq_poll(self._router_poll, timeout_ms):
            return False
        handshake.answer_pending(self._gate, self._admit)
        while self._receive_one() and self._router.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            pass
        return True

    def _admit(self, domain, mechanism, credentials):
        """ZAP decision for a connection to the DEALER bound for the peer named by ``domain``:
        that peer's rank as user id, or None."""
        if mechanism == b"CURVE" and len(credentials) == 1:
            if credentials[0] not in self._client_keys and self._joining is not None:
                # Still reading the peers' addresses: one that connects here already published
                # its own (and CURVE client key), unless this is a stranger.
                store, prefix = self._joining
                if store.check([f"{prefix}/peer/{int(domain)}"]):
                    self._peer_info(store, prefix, int(domain))
            rank = self._client_keys.get(credentials[0])
            return None if rank is None or str(rank).encode() != domain else domain
        if mechanism != b"PLAIN" or len(credentials) != 2 or self._curve_client is not None:
            return None
        username, password = credentials
        if username != domain or not auth.check_credentials(
                self._secret, _CONNECT_PURPOSE, username, password, self._used_nonces, self._token):
            return None
        return username

    def _receive_one(self):
        router = self._router
        try:
            identity = router.recv(zmq.NOBLOCK)
        except zmq.Again:
            return False
        if not router.getsockopt(zmq.RCVMORE):
            return True
        # The ROUTER only connects, and names each connection after the peer it reached.
        src = int(identity)
        header = router.recv()
        payload = None
        if router.getsockopt(zmq.RCVMORE):
            payload = router.recv(copy=False)
            if router.getsockopt(zmq.RCVMORE):
                # Ours never have more than two frames: this is garbage, drop it whole.
                while router.getsockopt(zmq.RCVMORE):
                    router.recv()
                return True
        self._route(src, header, payload)
        return True

    def _route(self, src, header, payload):
        try:
            fields = msgpack.unpackb(header)
            kind = fields[0]
        except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
            return  # not one of our headers, even though the connection authenticated

        if kind == DATA:
            self._stash[(src, fields[1])].append((header, fields, payload))
        elif kind == ABORT:
            self._aborts.setdefault(fields[1], (src, *fields[2:]))
        elif kind == STATUS_QUERY:
            seq, op, active = self.progress.get(fields[1], (0, "", False))
            self._send_control(src, msgpack.packb([STATUS_REPLY, fields[1], seq, op, active]))
        elif kind == STATUS_REPLY:
            self._status[(fields[1], src)] = fields[2:]
        elif kind == BYE:
            self._left.add(src)

    # ------------------------------------------------------------ health checks
    def raise_if_aborted(self, ctx, drain=False):
        """Raise if a peer aborted this group; ``drain`` first reads what already arrived.

        Draining after each collective lets a rank that finished from data sent
        before a peer gave up still learn that the collective failed elsewhere.
        """
        if drain:
            self._pump(0)
        if ctx.group_id not in self._aborts:
            return
        src, seq, class_name, message, failed_rank = self._aborts[ctx.group_id]
        if ctx.group_id != P2P_GROUP and ctx.seq < seq:
            # The aborting rank finished this earlier collective, so its data for it was sent:
            # a slower rank still completes it and meets the abort at the collective that failed.
            # (Point-to-point tags carry no order, so an abort there stops every wait.)
            return
        if src == self.rank:
            text = message
        else:
            text = f"rank {src} aborted {ctx.name()} on rank {self.rank}: {message}"
        if class_name == "RankFailure":
            raise RankFailure(text, failed_rank)
        raise _ERRORS.get(class_name, DistBackendError)(text)

    def _check_health(self, ctx, waiting_on):
        """Raise if the collective in ``ctx`` can no longer complete."""
        self._poll_monitors()
        self.raise_if_aborted(ctx)
        if waiting_on is not None and waiting_on in self._left:
            raise self.abort(ctx, RankFailure(
                f"rank {waiting_on} left the job (destroy_process_group or exit) before sending "
                f"its part of {ctx.name()}; rank {self.rank} cannot finish it", waiting_on))
        now = time.monotonic()
        for peer in ctx.members:
            died = self._dead.get(peer)
            if died is not None and peer not in self._left and now - died > _DEATH_GRACE_S:
                raise self.abort(ctx, RankFailure(
                    f"rank {peer} failed during {ctx.name()}: its connection dropped (the "
                    "process died or stopped answering heartbeats), so rank "
                    f"{self.rank} cannot finish it. Check rank {peer}'s log for the cause", peer))
        if ctx.deadline is not None and now >= ctx.deadline:
            raise self.abort(ctx, self._timeout_error(ctx))

    def _poll_monitors(self):
        while self._monitor.poll(0):
            # A monitor event is [uint16 event id, uint32 value][endpoint]; parsing it
            # here avoids zmq.utils.monitor, which drags in asyncio at import time.
            event_frame, endpoint = self._monitor.recv_multipart()[:2]
            peer = self._peer_of_endpoint.get(endpoint)
            if struct.unpack_from("=H", event_frame)[0] == zmq.EVENT_DISCONNECTED and peer is not None:
                self._dead.setdefault(peer, time.monotonic())

    def _timeout_error(self, ctx):
        peers = [peer for peer in ctx.members if peer != self.rank and peer not in self._dead]
        for peer in peers:
            self._status.pop((ctx.group_id, peer), None)
            self._send_control(peer, msgpack.packb([STATUS_QUERY, ctx.group_id]))
        deadline = time.monotonic() + _STATUS_WAIT_S
        while time.monotonic() < deadline and any(
                (ctx.group_id, peer) not in self._status for peer in peers):
            self._pump(20)
        missing, missing_ranks = [], []
        for peer in ctx.members:
            status = self._status.get((ctx.group_id, peer))
            if peer == self.rank or (status is not None and status[0] >= ctx.seq):
                continue
            where = "no reply" if status is None else f"last entered {status[1] or 'nothing'} #{status[0]}"
            missing.append(f"{peer} ({where})")
            missing_ranks.append(peer)
        return CollectiveTimeout(
            f"{ctx.name()} timed out after {ctx.timeout:.1f}s on rank {self.rank}; ranks still "
            f"missing: {', '.join(missing) or 'none (a peer is stuck inside the collective)'}. "
            "A rank is stalled or skipped this collective; raise the timeout in "
            "init_process_group if it is just slow", missing_ranks)

    def _mismatch(self, src, expected, got, ctx):
        error = CollectiveMismatch(
            f"collective mismatch in group {ctx.group_id}: rank {self.rank} called "
            f"{describe(expected)} but rank {src} called {describe(got)}. Every rank of the "
            "group must call the same collectives in the same order with the same dtype, "
            "shape and reduce op")
        return self.abort(ctx, error)

    def abort(self, ctx, error):
        """Tell the rest of the group to stop waiting, then hand back ``error`` to raise.

        Once per group: after the first abort (ours or a peer's) every member already knows.
        """
        if ctx.group_id in self._aborts:
            return error
        failed_rank = getattr(error, "rank", -1)
        message = msgpack.packb([ABORT, ctx.group_id, ctx.seq, type(error).__name__,
                                 str(error), failed_rank])
        for peer in ctx.members:
            if peer != self.rank and peer not in self._dead and peer not in self._left:
                self._send_control(peer, message)
        self._aborts.setdefault(ctx.group_id, (self.rank, ctx.seq, type(error).__name__,
                                               str(error), failed_rank))
        return error

    # --------------------------------------------------------------- shutdown
    def close(self):
        """Say goodbye, let queued data reach live peers (bounded), then close everything.

        Nothing here waits for a peer: a rank leaving because of an error must
        not be held up by the peers that are waiting for it.

        Sockets live with LINGER 0; only here do live peers' DEALERs get a short
        linger, so data still queued at shutdown reaches them without ever
        blocking on a peer that is gone.
        """
        self._pump(0)
        self._poll_monitors()
        bye = msgpack.packb([BYE, self.rank])
        for peer, dealer in self._dealers.items():
            alive = peer not in self._dead and peer not in self._left
            if alive:
                alive = self._send_control(peer, bye)
            dealer.setsockopt(zmq.LINGER, _FLUSH_LINGER_MS if alive else 0)
            if peer in self._connected:
                dealer.disable_monitor()
                self._connected[peer].close()
            dealer.close()
        self._router.disable_monitor()
        self._monitor.close()
        self._router.close()
        self._gate.close()
        self._context.term()
