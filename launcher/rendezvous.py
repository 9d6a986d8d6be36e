"""Multi-node: the launchers' own rendezvous and control channel, newline-delimited JSON over TCP.

Node 0 listens on --master-port (only on --master-addr when that is an IP address of its machine, see
ports.listen_interface). Every other launcher connects, proves it holds the job secret (when the user
set DISTTORCH_SECRET on every node) and waits; without one, node 0 makes one up and each node fetches
it over an encrypted link (see secret_exchange). Once all --nnodes have joined, node 0 assigns rank offsets, picks a free port for the workers' store (a
different port: the rendezvous one is ours) and sends `start`. The connections stay open for the job's
life:

    node k: a worker failed     -> halt     -> node 0
    node 0: tell everyone       -> stop     -> every node    (each stops its workers)
    every node                  -> result   -> node 0        (its failures, with stderr tails)
    node 0: restart or give up  -> verdict  -> every node

A connection that drops counts as a lost node and stops the job everywhere. With --max-restarts left,
node 0 then admits launchers again until enough nodes are there (all of them, or MIN of --nnodes
MIN:MAX) and starts the next attempt with those; a launcher that joins while an attempt runs waits for
the next one.
"""

import collections
import hashlib
import hmac
import json
import math
import secrets
import select
import socket
import time

from disttorch.launcher.config import LaunchSpec, RoundPlan, new_secret
from disttorch.launcher.coordination import NodeOutcome, RoundResult, Verdict, decide
from disttorch.launcher.errors import LaunchError
from disttorch.launcher.output import log
from disttorch.launcher.ports import bind_listener, free_port, listen_interface, stays_on_this_machine
from disttorch.launcher.secret_exchange import SecretOffer, SecretRequest, unauthenticated_warning
from disttorch.launcher.signals import StopSignals

POLL_SECONDS = 0.1
# How long node 0 waits for a node's result once the job was told to stop, beyond the grace period.
RESULT_SLACK_SECONDS = 30.0
HANDSHAKE_SECONDS = 10.0
# --nnodes MIN:MAX: once MIN nodes are there, the first start waits this long for more to come.
LAST_CALL_SECONDS = 5.0


class ConnectionLost(Exception):
    pass


class Channel:
    """One launcher-to-launcher connection."""

    def __init__(self, sock: socket.socket, peer: str):
        self.sock = sock
        self.peer = peer
        self._buffer = b""
        self._messages = collections.deque()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, **fields) -> None:
        try:
            self.sock.sendall(json.dumps({"kind": kind, **fields}).encode() + b"\n")
        except OSError as error:
            raise ConnectionLost(str(error)) from None

    def read_ready(self) -> None:
        """Called when select() says the socket is readable."""
        try:
            data = self.sock.recv(65536)
        except OSError as error:
            raise ConnectionLost(str(error)) from None
        if not data:
            raise ConnectionLost("closed by the other side")
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        try:
            messages = [json.loads(line) for line in lines if line]
        except ValueError:
            raise ConnectionLost("sent something that is not a launcher message") from None
        if not all(isinstance(message, dict) and "kind" in message for message in messages):
            raise ConnectionLost("sent something that is not a launcher message")
        self._messages.extend(messages)

    def next_message(self) -> dict | None:
        return self._messages.popleft() if self._messages else None

    def receive(self, timeout: float, signals: StopSignals | None = None) -> dict | None:
        """The next message, or None after `timeout` seconds; with `signals`, Ctrl-C ends the wait."""
        deadline = time.monotonic() + timeout
        while not self._messages:
            if signals is not None:
                signals.check()
            remaining = deadline - time.monotonic()
            # Looks at the socket at least once, so timeout 0 still sees what already arrived.
            readable, _, _ = select.select([self.sock], [], [], max(0.0, min(remaining, POLL_SECONDS)))
            if readable:
                self.read_ready()
            elif remaining <= 0:
                return None
        return self._messages.popleft()

    def close(self) -> None:
        self.sock.close()


def _proof(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def _rendezvous_command(spec: LaunchSpec, node_rank: str) -> str:
    return (f"disttorch-launch --nnodes {spec.nnodes} --node-rank {node_rank} --master-addr {spec.master_addr} "
            f"--master-port {spec.master_port} ...")


class MasterCoordinator:
    """Node 0: hosts the rendezvous, decides every attempt's plan and verdict."""

    def __init__(self, spec: LaunchSpec, signals: StopSignals):
        self.spec = spec
        self.signals = signals
        self.secret = spec.user_secret or new_secret()
        self.channels: dict[int, Channel] = {}
        self.nproc_of_node = {0: spec.nproc}
        self.results: dict[int, RoundResult] = {}
        self.halt_reason: str | None = None
        self.first_halt_node: int | None = None
        self.secret_offer: SecretOffer | None = None
        # The listener (and the secret offer) stay open for the job's life: a node that was lost may come
        # back, and is admitted at the next restart.
        self.listener: socket.socket | None = None
        self.joining: dict[Channel, str] = {}  # connected, greeted, not yet joined -> the nonce they must sign
        self.round_nodes: list[int] = []  # the nodes of the attempt that runs now; empty between attempts

    @property
    def address(self) -> str:
        return f"{self.spec.master_addr}:{self.spec.master_port}"

    # ---- rendezvous -------------------------------------------------------------------------------

    def rendezvous(self) -> None:
        interface = listen_interface(self.spec.master_addr)
        self.listener = bind_listener(self.spec.master_addr, self.spec.master_port, "launcher rendezvous",
                                      interface or "")
        if self.spec.user_secret is None:
            self.secret_offer = SecretOffer(self.secret, interface or "")
            if not stays_on_this_machine(self.spec.master_addr):
                log(f"node 0: {unauthenticated_warning(self.address)}")
        more = self.spec.nnodes - 1 if self.spec.fewest_nodes == self.spec.nnodes \
            else f"{self.spec.fewest_nodes - 1} to {self.spec.nnodes - 1}"
        log(f"node 0: waiting at {self.address} for {more} more node(s) (--rdzv-timeout {self.spec.rdzv_timeout:g}s)")
        self._gather(last_call=True)
        joined = 1 + len(self.channels)
        log(f"node 0: {'all ' if joined == self.spec.nnodes else ''}{joined} nodes joined; "
            f"world size {sum(self.nproc_of_node.values())}")

    def _gather(self, last_call: bool) -> None:
        """Admits launchers until all --nnodes are here, or at least MIN of --nnodes MIN:MAX (at the first
        rendezvous, once nobody new came for LAST_CALL_SECONDS); a LaunchError after --rdzv-timeout."""
        deadline = time.monotonic() + self.spec.rdzv_timeout
        last_join = time.monotonic()
        while True:
            present = 1 + len(self.channels)
            quiet = not last_call or time.monotonic() - last_join >= LAST_CALL_SECONDS
            if present == self.spec.nnodes or (present >= self.spec.fewest_nodes and quiet):
                return
            self.signals.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = self._timeout_message()
                for channel in [*self.joining, *self.channels.values()]:
                    self._try_send(channel, "abort", reason=reason)
                raise LaunchError(reason)
            self._poll(min(remaining, POLL_SECONDS))
            if 1 + len(self.channels) > present:
                last_join = time.monotonic()

    def _poll(self, timeout: float) -> None:
        """One wait for anything: a new launcher, a join message, or a message or hang-up of a joined node."""
        joined = list(self.channels.values())
        sources = [self.listener, *self.joining, *joined] if self.listener is not None else joined
        if not sources:
            time.sleep(timeout)
            return
        readable, _, _ = select.select(sources, [], [], timeout)
        for source in readable:
            if source is self.listener:
                self._greet(self.listener, self.joining)
            elif source in self.joining:
                self._admit(source, self.joining)
            else:
                self._read(source)

    def _greet(self, listener: socket.socket, joining: dict) -> None:
        sock, (peer_ip, _) = listener.accept()
        channel = Channel(sock, peer_ip)
        nonce = secrets.token_hex(16)
        offer = self.secret_offer
        exchange = None if offer is None else {"port": offer.port, "key": offer.public_key}
        self._try_send(channel, "hello", nonce=nonce, authenticated=self.spec.user_secret is not None,
                       secret_exchange=exchange)
        joining[channel] = nonce

    def _admit(self, channel: Channel, joining: dict) -> None:
        try:
            channel.read_ready()
        except ConnectionLost:
            joining.pop(channel)
            channel.close()
            return
        message = channel.next_message()
        if message is None:
            return
        nonce = joining.pop(channel)
        problem = self._join_problem(message, nonce)
        offer = self.secret_offer
        if not problem and offer is not None and not offer.hand_over(nonce, HANDSHAKE_SECONDS):
            problem = (f"node {message['node_rank']} did not fetch the job secret from port "
                       f"{offer.port} of node 0 within {HANDSHAKE_SECONDS:g}s; let it reach that "
                       "port, or set DISTTORCH_SECRET on every node")
        if problem:
            log(f"node 0: refused a launcher from {channel.peer}: {problem}")
            self._try_send(channel, "error", reason=problem)
            channel.close()
            return
        node_rank = message["node_rank"]
        self.channels[node_rank] = channel
        self.nproc_of_node[node_rank] = message["nproc"]
        self._try_send(channel, "joined")
        log(f"node 0: node {node_rank} joined from {channel.peer} ({message['host']}, {message['nproc']} workers)")

    def _read(self, channel: Channel) -> None:
        node_rank = next(rank for rank, known in self.channels.items() if known is channel)
        try:
            channel.read_ready()
        except ConnectionLost:
            self._lose(node_rank, "its launcher exited or the network failed")
            return
        while (message := channel.next_message()) is not None:
            self._handle(node_rank, message)

    def _join_problem(self, message: dict, nonce: str) -> str | None:
        expected = {"node_rank": int, "nnodes": int, "nproc": int, "host": str}
        if message["kind"] != "join" or not all(isinstance(message.get(key), kind) for key, kind in expected.items()):
            return "expected a join message from disttorch-launch; is another program using this port?"
        node_rank = message["node_rank"]
        nnodes_text = message.get("nnodes_text", str(message["nnodes"]))
        if nnodes_text != self.spec.nnodes_text:
            return (f"node {node_rank} was started with --nnodes {nnodes_text} but node 0 with "
                    f"--nnodes {self.spec.nnodes_text}; start every node with the same --nnodes")
        if not 1 <= node_rank < self.spec.nnodes:
            return f"--node-rank {node_rank} is taken by node 0 or out of range; use 1..{self.spec.nnodes - 1}"
        if node_rank in self.channels:
            return (f"two launchers claim --node-rank {node_rank} (the first came from "
                    f"{self.channels[node_rank].peer}); give every node its own --node-rank")
        if self.spec.user_secret is not None:
            if not hmac.compare_digest(message.get("proof") or "", _proof(self.spec.user_secret, nonce)):
                return (f"node {node_rank}'s DISTTORCH_SECRET does not match node 0's; "
                        f"set the same secret on every node")
        return None

    def _timeout_message(self) -> str:
        joined = sorted([0, *self.channels])
        missing = [rank for rank in range(self.spec.nnodes) if rank not in joined]
        return (f"rendezvous at {self.address} timed out after {self.spec.rdzv_timeout:g}s: "
                f"{len(joined)} of {self.spec.nnodes} nodes joined (node ranks {', '.join(map(str, joined))}); "
                f"still missing node rank(s) {', '.join(map(str, missing))}. Start "
                f"`{_rendezvous_command(self.spec, '<rank>')}` on the missing node(s), or raise --rdzv-timeout")

    # ---- one attempt ------------------------------------------------------------------------------

    def begin_round(self, restart_count: int) -> RoundPlan:
        if restart_count:
            missing = self.spec.fewest_nodes - 1 - len(self.channels)
            if missing > 0:
                log(f"node 0: waiting up to {self.spec.rdzv_timeout:g}s for {missing} node(s) to come back")
            self._gather(last_call=False)
        self.round_nodes = sorted([0, *self.channels])
        world_size = sum(self.nproc_of_node[node_rank] for node_rank in self.round_nodes)
        worker_port = free_port()
        for group_rank, node_rank in enumerate(self.round_nodes[1:], start=1):
            self._send(node_rank, "start", restart_count=restart_count, world_size=world_size,
                       rank_offset=self._rank_offset(node_rank), group_rank=group_rank,
                       worker_master_port=worker_port)
        if self.halt_reason is not None:
            # A node was lost while the others were being started: they skip a stop sent before
            # their start, so tell them again.
            for node_rank in list(self.channels):
                self._send(node_rank, "stop", reason=self.halt_reason)
        if restart_count and len(self.round_nodes) < self.spec.nnodes:
            log(f"node 0: restarting with {len(self.round_nodes)} of {self.spec.nnodes} nodes "
                f"({', '.join(map(str, self.round_nodes))}); world size {world_size}")
        return RoundPlan(restart_count, world_size, 0, worker_port, self.secret, self.spec.master_addr)

    def _rank_offset(self, node_rank: int) -> int:
        return sum(self.nproc_of_node[rank] for rank in self.round_nodes if rank < node_rank)

    def wait(self, timeout: float) -> str | None:
        self._poll(timeout)
        return self.halt_reason

    def announce_halt(self, reason: str) -> None:
        self._halt(0, reason)

    def finish_round(self, result: RoundResult, restart_count: int) -> Verdict:
        self.results[0] = result
        deadline = None
        while set(self.round_nodes) - set(self.results):
            if self.signals.signum is not None and self.halt_reason is None:
                reason = f"node 0's launcher got {self.signals.name}"
                self.results[0] = RoundResult(0, NodeOutcome.INTERRUPTED, result.failures, reason, result.positions)
                self._halt(0, reason)
            if self.halt_reason is not None:
                # Running nodes may train for hours; only a stopped job has a deadline to report back.
                deadline = deadline or time.monotonic() + self.spec.grace_period + RESULT_SLACK_SECONDS
                if time.monotonic() > deadline:
                    for node_rank in set(self.round_nodes) - set(self.results):
                        self._lose(node_rank, "did not report back after the job was stopped")
                    break
            self._poll(POLL_SECONDS)
        verdict = decide(list(self.results.values()), self.first_halt_node, restart_count, self.spec.max_restarts)
        for node_rank in list(self.channels):
            if node_rank in self.round_nodes:
                self._send(node_rank, "verdict", verdict=verdict.to_json())
            elif not verdict.restart:
                self._send(node_rank, "abort", reason=f"the job ended before node {node_rank} could join it")
        self.results, self.halt_reason, self.first_halt_node, self.round_nodes = {}, None, None, []
        return verdict

    def close(self) -> None:
        for channel in [*self.channels.values(), *self.joining]:
            channel.close()
        self.channels.clear()
        self.joining.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.secret_offer is not None:
            self.secret_offer.close()
            self.secret_offer = None

    # ---- messages from the nodes ------------------------------------------------------------------

    def _handle(self, node_rank: int, message: dict) -> None:
        if message["kind"] == "halt":
            self._halt(node_rank, message["reason"])
        elif message["kind"] == "result":
            self.results[node_rank] = RoundResult.from_json(message["result"])

    def _halt(self, node_rank: int, reason: str) -> None:
        if self.halt_reason is not None:
            return
        self.halt_reason, self.first_halt_node = reason, node_rank
        for other in list(self.channels):
            self._send(other, "stop", reason=reason)

    def _send(self, node_rank: int, kind: str, **fields) -> None:
        if node_rank not in self.channels:
            return
        try:
            self.channels[node_rank].send(kind, **fields)
        except ConnectionLost:
            self._lose(node_rank, "its launcher exited or the network failed")

    def _lose(self, node_rank: int, why: str) -> None:
        channel = self.channels.pop(node_rank, None)
        self.nproc_of_node.pop(node_rank, None)
        if channel is not None:
            channel.close()
        if node_rank not in self.round_nodes:
            # Joined but not running anything yet: its rank is free for a launcher started again.
            log(f"node 0: node {node_rank} left before the job started; waiting for it again")
            return
        reason = f"lost node {node_rank}" + (f" ({channel.peer})" if channel else "") + f": {why}"
        log(reason)
        self.results[node_rank] = RoundResult(node_rank, NodeOutcome.LOST, [], reason)
        self._halt(node_rank, reason)

    @staticmethod
    def _try_send(channel: Channel, kind: str, **fields) -> None:
        try:
            channel.send(kind, **fields)
        except ConnectionLost:
            pass


class NodeCoordinator:
    """Nodes 1..nnodes-1: join node 0's rendezvous, then follow its start/stop/verdict messages."""

    def __init__(self, spec: LaunchSpec, signals: StopSignals):
        self.spec = spec
        self.signals = signals
        self.channel: Channel | None = None
        self.lost_reason: str | None = None
        self.host_addr = ""
        self.secret = spec.user_secret

    @property
    def address(self) -> str:
        return f"{self.spec.master_addr}:{self.spec.master_port}"

    def rendezvous(self) -> None:
        deadline = time.monotonic() + self.spec.rdzv_timeout
        self.channel = self._connect(deadline)
        # Node 0 answers at once once connected; the floor keeps a late connect from timing out instantly.
        hello = self._expect(("hello",), max(HANDSHAKE_SECONDS, deadline - time.monotonic()), "greet this node")
        if hello["authenticated"] != (self.spec.user_secret is not None):
            where = "node 0 but not on this node" if hello["authenticated"] else "this node but not on node 0"
            raise LaunchError(f"DISTTORCH_SECRET is set on {where} (rendezvous {self.address}); "
                              f"set the same secret on every node, or on none")
        proof = _proof(self.spec.user_secret, hello["nonce"]) if self.spec.user_secret else None
        request = None if self.spec.user_secret else self._ask_for_the_secret(hello)
        try:
            self._send("join", node_rank=self.spec.node_rank, nnodes=self.spec.nnodes,
                       nnodes_text=self.spec.nnodes_text, nproc=self.spec.nproc, host=socket.gethostname(),
                       proof=proof)
            self._expect(("joined",), max(HANDSHAKE_SECONDS, deadline - time.monotonic()), "accept this node")
            if request is not None:
                # Node 0 answers before it says "joined", so the secret is on its way or here already.
                self.secret = request.receive(HANDSHAKE_SECONDS)
                if self.secret is None:
                    raise LaunchError(f"node 0 at {self.address} admitted this node but its job secret did not "
                                      f"arrive within {HANDSHAKE_SECONDS:g}s")
        finally:
            if request is not None:
                request.close()
        log(f"node {self.spec.node_rank}: joined the rendezvous at {self.address}; waiting for the other nodes")

    def _ask_for_the_secret(self, hello: dict) -> SecretRequest:
        exchange = hello.get("secret_exchange")
        if not isinstance(exchange, dict):
            raise LaunchError(f"node 0 at {self.address} offers no encrypted way to hand over the job secret "
                              "(an older disttorch-launch?); use the same version on every node")
        if not stays_on_this_machine(self.spec.master_addr):
            log(f"node {self.spec.node_rank}: {unauthenticated_warning(self.address)}")
        return SecretRequest(self.spec.master_addr, exchange["port"], exchange["key"], hello["nonce"])

    def _connect(self, deadline: float) -> Channel:
        last_error = "no answer"
        while time.monotonic() < deadline:
            self.signals.check()
            try:
                sock = socket.create_connection((self.spec.master_addr, self.spec.master_port),
                                                timeout=max(0.1, min(2.0, deadline - time.monotonic())))
            except OSError as error:
                last_error = error.strerror or str(error)
                time.sleep(POLL_SECONDS)
                continue
            sock.settimeout(None)
            self.host_addr = sock.getsockname()[0]
            return Channel(sock, self.spec.master_addr)
        raise LaunchError(
            f"could not reach node 0's launcher at {self.address} within --rdzv-timeout "
            f"{self.spec.rdzv_timeout:g}s ({last_error}); start `{_rendezvous_command(self.spec, '0')}` "
            f"there and check that --master-addr/--master-port point at it")

    def _expect(self, kinds: tuple[str, ...], timeout: float, what: str) -> dict:
        """The next message of one of `kinds`, skipping leftover stops; errors and aborts become LaunchErrors."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.channel.receive(max(0.0, deadline - time.monotonic()), self.signals)
            except ConnectionLost:
                raise LaunchError(f"node 0's launcher at {self.address} closed the connection") from None
            if message is None:
                raise LaunchError(f"node 0 at {self.address} did not {what} within {timeout:g}s")
            if message["kind"] in ("error", "abort"):
                raise LaunchError(f"node 0 at {self.address}: {message['reason']}")
            if message["kind"] in kinds:
                return message

    def begin_round(self, restart_count: int) -> RoundPlan:
        # Node 0 starts this node or says why not (its own rendezvous timeout, the end of the job), and a
        # lost connection ends the wait too. A node admitted while an attempt runs waits for the next
        # restart, however long the attempt takes.
        start = self._expect(("start",), math.inf, "start the job")
        return RoundPlan(start["restart_count"], start["world_size"], start["rank_offset"],
                         start["worker_master_port"], self.secret, self.host_addr,
                         start.get("group_rank", self.spec.node_rank))

    def wait(self, timeout: float) -> str | None:
        if self.lost_reason is not None:
            return self.lost_reason
        try:
            message = self.channel.receive(timeout)
        except ConnectionLost:
            self._mark_lost()
            return self.lost_reason
        if message is not None and message["kind"] == "stop":
            return message["reason"]
        return None

    def announce_halt(self, reason: str) -> None:
        self._send("halt", reason=reason)

    def finish_round(self, result: RoundResult, restart_count: int) -> Verdict:
        self._send("result", result=result.to_json())
        while self.lost_reason is None:
            if self.signals.signum is not None and result.outcome is not NodeOutcome.INTERRUPTED:
                reason = f"node {self.spec.node_rank}'s launcher got {self.signals.name}"
                result = RoundResult(result.node_rank, NodeOutcome.INTERRUPTED, result.failures, reason, result.positions)
                self._send("halt", reason=reason)
                self._send("result", result=result.to_json())
            try:
                message = self.channel.receive(POLL_SECONDS)
            except ConnectionLost:
                self._mark_lost()
                break
            if message is not None and message["kind"] == "verdict":
                return Verdict.from_json(message["verdict"])
        return Verdict(restart=False, failed=True, failures=result.failures, reason=self.lost_reason,
                       positions=result.positions)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()

    def _send(self, kind: str, **fields) -> None:
        if self.lost_reason is not None:
            return
        try:
            self.channel.send(kind, **fields)
        except ConnectionLost:
            self._mark_lost()

    def _mark_lost(self) -> None:
        self.lost_reason = f"lost the connection to node 0's launcher at {self.address}"
        log(self.lost_reason)
