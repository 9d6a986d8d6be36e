"""Handing node 0's generated job secret to the other nodes where no one listening on the network can read it.

Without DISTTORCH_SECRET, node 0 makes up the job's secret. The plain rendezvous connection never
carries it: each node that joins fetches it over a ZeroMQ CURVE link whose X25519 keys both sides make
fresh for this job, so a passive listener sees only ciphertext. Nothing proves who joins, though: with no
shared secret any machine that reaches the rendezvous can join, which is why node 0 warns.
"""

import time

import zmq

from disttorch.launcher.errors import LaunchError

# A request is a nonce, the answer a secret: anything bigger is not ours and is dropped unread.
_MAX_MESSAGE_BYTES = 1024
# Pending answers get this long to leave when node 0 closes its end after the rendezvous.
_LINGER_MS = 2000

SET_A_SECRET = ("set the same secret on every node: export DISTTORCH_SECRET=$(python -c "
                "'import secrets; print(secrets.token_hex(32))') (or DISTTORCH_SECRET_FILE=<file>)")


def unauthenticated_warning(address: str) -> str:
    return ("WARNING: DISTTORCH_SECRET is not set, so nothing proves who joins this job: any machine that "
            f"reaches {address} can join as a node and run in it. The job secret node 0 made up travels "
            "encrypted (ZeroMQ CURVE, keys made for this job), so listening on the network does not reveal "
            f"it. To admit only your own nodes, {SET_A_SECRET}.")


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise LaunchError("without DISTTORCH_SECRET node 0 hands its generated job secret to the other nodes "
                          "over ZeroMQ CURVE, which this libzmq lacks; " + SET_A_SECRET)


class SecretOffer:
    """Node 0's end: a CURVE server that answers a joined node's request (made with its join nonce)."""

    def __init__(self, secret: str, interface: str):
        _require_curve()
        self._secret = secret.encode()
        self._context = zmq.Context()
        self._router = self._context.socket(zmq.ROUTER)
        public_key, secret_key = zmq.curve_keypair()
        self._router.curve_server = True
        self._router.curve_secretkey = secret_key
        self._router.maxmsgsize = _MAX_MESSAGE_BYTES
        self._router.linger = _LINGER_MS
        self.port = self._router.bind_to_random_port(f"tcp://{interface or '*'}")
        self.public_key = public_key.decode()
        self._asked: dict[str, bytes] = {}  # nonce -> ZeroMQ identity of the connection that asked with it

    def hand_over(self, nonce: str, timeout: float) -> bool:
        """Sends the secret to whoever asked with `nonce`; False when nobody did within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while nonce not in self._asked:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._router.poll(int(remaining * 1000) + 1):
                return False
            frames = self._router.recv_multipart()
            if len(frames) == 2:
                self._asked[frames[1].decode(errors="replace")] = frames[0]
        self._router.send_multipart([self._asked.pop(nonce), self._secret])
        return True

    def close(self) -> None:
        self._router.close()
        self._context.term()  # waits up to the linger for answers still on their way


class SecretRequest:
    """A joining node's end: asks right after node 0's hello, reads the answer once node 0 admitted it."""

    def __init__(self, host: str, port: int, server_key: str, nonce: str):
        _require_curve()
        self._context = zmq.Context()
        self._dealer = self._context.socket(zmq.DEALER)
        self._dealer.curve_serverkey = server_key.encode()
        self._dealer.curve_publickey, self._dealer.curve_secretkey = zmq.curve_keypair()
        self._dealer.maxmsgsize = _MAX_MESSAGE_BYTES
        self._dealer.linger = 0
        self._dealer.connect(f"tcp://{host}:{port}")
        self._dealer.send(nonce.encode())

    def receive(self, timeout: float) -> str | None:
        if not self._dealer.poll(int(timeout * 1000) + 1):
            return None
        return self._dealer.recv().decode()

    def close(self) -> None:
        self._dealer.close()
        self._context.term()
