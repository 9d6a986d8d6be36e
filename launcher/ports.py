"""Choosing and checking TCP ports before any worker starts, so conflicts fail early and clearly."""

import errno
import ipaddress
import socket

from disttorch.launcher.errors import LaunchError


def bind_listener(addr: str, port: int, purpose: str, interface: str = "") -> socket.socket:
    """A listening socket on `interface` (all of them by default); a taken port raises a LaunchError naming
    addr:port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR tolerates TIME_WAIT leftovers of a previous run but still refuses a live listener.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((interface, port))
        sock.listen(64)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise LaunchError(
                f"{addr}:{port} is already in use, so the {purpose} cannot listen there; another job or a "
                f"leftover process holds the port. Pass a free --master-port"
                + (" or leave it out to pick one automatically." if purpose == "workers' store" else ".")
            ) from None
        raise LaunchError(f"cannot listen on port {port} for the {purpose}: {error.strerror}") from None
    return sock


def interface_address(addr: str) -> str | None:
    """The IPv4 address of this machine's interface that `addr` names, or None when it names none here
    (an address translated on the way, like a container's published port)."""
    try:
        ip = socket.gethostbyname(addr)
    except OSError:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return None
    return ip


def names_loopback(addr: str) -> bool:
    """Whether `addr` reaches only this machine (all nodes on one host: nothing crosses a network)."""
    try:
        return ipaddress.ip_address(socket.gethostbyname(addr)).is_loopback
    except OSError:
        return False


def ensure_port_free(addr: str, port: int, purpose: str) -> None:
    bind_listener(addr, port, purpose).close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]
