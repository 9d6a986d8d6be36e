"""Connection handshakes: authentication through ZeroMQ's ZAP protocol (RFC 27), and
monitor sockets that report how handshakes and connections went.

libzmq hands every new connection's handshake credentials to the socket bound at
``inproc://zeromq.zap.01`` in the same context and accepts no message from the
connection until the answer says yes. So a stranger cannot make the store or a
rank buffer anything: its connection is refused before its first byte of data.

The handler answers only when its owner polls it (the store's thread, a rank in
a collective), so a pending stranger waits in the handshake, costing nothing.
"""
import itertools
import os

import zmq

_monitor_ids = itertools.count()
ENDPOINT = "inproc://zeromq.zap.01"
_VERSION = b"1.0"


def timeout_ms():
    """How long a connection to a listening socket may take to prove the secret before libzmq
    drops it (DISTTORCH_HANDSHAKE_TIMEOUT seconds, default libzmq's 30): what a stranger who
    opens connections and says nothing more costs."""
    return int(float(os.environ.get("DISTTORCH_HANDSHAKE_TIMEOUT", "30")) * 1000)


def bind_handler(context):
    """The context's ZAP socket; there can be only one per context."""
    handler = context.socket(zmq.REP)
    handler.setsockopt(zmq.LINGER, 0)
    handler.bind(ENDPOINT)
    return handler


def answer_pending(handler, decide):
    """Answer every queued request: ``decide(domain, mechanism, credentials)`` returns the
    user id (bytes) to accept the connection, or None to refuse it; the domain is the
    ZAP_DOMAIN of the socket being connected to."""
    while handler.poll(0):
        request = handler.recv_multipart()
        version, request_id, domain, _address, _identity, mechanism, *creds = request
        user_id = decide(domain, mechanism, creds) if version == _VERSION else None
        if user_id is None:
            handler.send_multipart([_VERSION, request_id, b"400", b"not part of this job", b"", b""])
        else:
            handler.send_multipart([_VERSION, request_id, b"200", b"OK", user_id, b""])


def monitor(socket, events):
    """A PAIR socket receiving ``socket``'s ``events``.

    pyzmq's get_monitor_socket names the endpoint after the socket's file
    descriptor, which a socket opened after a closed one reuses while libzmq may
    still hold the old endpoint: the new monitor then silently reports nothing.
    """
    endpoint = f"inproc://disttorch-monitor-{os.getpid()}-{next(_monitor_ids)}"
    socket.monitor(endpoint, events)
    receiver = socket.context.socket(zmq.PAIR)
    receiver.connect(endpoint)
    return receiver
