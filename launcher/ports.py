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


def listen_interface(addr: str) -> str | None:
    """Where node 0 listens when the nodes meet at `addr`: that address when it is an IP address of this
    machine (or localhost), else None for every interface. A host name can resolve differently here than
    on the other nodes (Debian maps a machine's own name to 127.0.1.1), and an address that is not this
    machine's is translated on the way (NAT, a container's published port)."""
    ip = _loopback_name(addr) or _ip_literal(addr)
    if ip is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, 0))
        except OSError:
            return None
    return ip


def stays_on_this_machine(addr: str) -> bool:
    """True when `addr` is a loopback address: every node runs on this one machine."""
    ip = _loopback_name(addr) or _ip_literal(addr)
    return ip is not None and ipaddress.ip_address(ip).is_loopback


def _loopback_name(addr: str) -> str | None:
    return "127.0.0.1" if addr == "localhost" else None


def _ip_literal(addr: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(addr))
    except ValueError:
        return None


def ensure_port_free(addr: str, port: int, purpose: str) -> None:
    bind_listener(addr, port, purpose).close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]
