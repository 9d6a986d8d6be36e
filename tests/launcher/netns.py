"""Two or three "hosts" on this machine: network namespaces joined by veth pairs to a bridge.

The bridge lives in a namespace of its own, so the machine's own network is never touched:

    <tag>h0 (10.231.1.1, eth0) --veth-- [ <tag>sw: br0 ] --veth-- (eth0, 10.231.1.2) <tag>h1

Run a command on host i through `exec_prefix(i)`: `ip netns exec` plus `unshare --uts`, so every host
also has a hostname of its own (its name when given, else the namespace's) and nothing can mistake two
of them for one machine. Given host names, each host also resolves them (`ip netns exec` mounts
/etc/netns/<name>/hosts over /etc/hosts). `link_bytes(i)` reads host i's eth0 counters, which only move
when data really crosses its veth.
"""

import os
import shutil
import signal
import subprocess
from pathlib import Path

SUBNET = "10.231.1"
CONFIG_ROOT = Path("/etc/netns")


class NetnsUnavailable(Exception):
    """Not root, no `ip`, or the kernel refused to create namespaces; callers skip their test."""


class NetnsHosts:
    def __init__(self, count: int, tag: str | None = None, names: tuple[str, ...] = ()):
        if not 2 <= count <= 3:
            raise ValueError(f"NetnsHosts makes 2 or 3 hosts, not {count}")
        self.tag = tag or f"dtl{os.getpid()}"
        self.hosts = [f"{self.tag}h{index}" for index in range(count)]
        self.switch = f"{self.tag}sw"
        self.names = names
        self._made_config_root = False

    @property
    def namespaces(self) -> list[str]:
        return [*self.hosts, self.switch]

    def address(self, index: int) -> str:
        return f"{SUBNET}.{index + 1}"

    def hostname(self, index: int) -> str:
        return self.names[index] if self.names else self.hosts[index]

    def exec_prefix(self, index: int, own_hostname: bool = True) -> tuple[str, ...]:
        """`own_hostname=False` keeps the machine's hostname, as containers that copy it would."""
        enter = ("ip", "netns", "exec", self.hosts[index])
        if not own_hostname:
            return enter
        return (*enter, "unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname(index))

    def link_bytes(self, index: int) -> dict[str, int]:
        """{"rx": bytes, "tx": bytes} counted so far on host `index`'s end of its veth."""
        counters = {}
        for direction in ("rx", "tx"):
            read = subprocess.run(["ip", "netns", "exec", self.hosts[index], "cat",
                                   f"/sys/class/net/eth0/statistics/{direction}_bytes"],
                                  check=True, capture_output=True, text=True)
            counters[direction] = int(read.stdout)
        return counters

    def create(self) -> "NetnsHosts":
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
        try:
            self._build()
        except subprocess.CalledProcessError as error:
            self.destroy()
            raise NetnsUnavailable(f"`{' '.join(error.cmd)}` failed: {error.stderr.strip()}") from None
        return self

    def _build(self) -> None:
        for namespace in self.namespaces:
            _ip("netns", "add", namespace)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for index, host in enumerate(self.hosts):
            port = f"p{index}"
            _ip("link", "add", "eth0", "netns", host, "type", "veth", "peer", "name", port, "netns", self.switch)
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", host, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            _ip("-n", host, "link", "set", "eth0", "up")
            _ip("-n", host, "link", "set", "lo", "up")
        if self.names:
            table = "127.0.0.1 localhost\n" + "".join(
                f"{self.address(index)} {name}\n" for index, name in enumerate(self.names))
            self._made_config_root = not CONFIG_ROOT.exists()
            for host in self.hosts:
                self._config_dir(host).mkdir(parents=True, exist_ok=True)
                (self._config_dir(host) / "hosts").write_text(table)

    @staticmethod
    def _config_dir(namespace: str) -> Path:
        return CONFIG_ROOT / namespace

    def pids(self) -> list[int]:
        """Every process still running inside one of our namespaces."""
        found = []
        for namespace in self.existing():
            listed = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
            found.extend(int(pid) for pid in listed.stdout.split())
        return found

    def existing(self) -> list[str]:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        names = {line.split()[0] for line in listed.splitlines() if line.strip()}
        return [namespace for namespace in self.namespaces if namespace in names]

    def destroy(self) -> None:
        """Kills what still runs inside and deletes the namespaces (their veths and bridge go with them)."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for namespace in self.existing():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        for host in self.hosts:
            shutil.rmtree(self._config_dir(host), ignore_errors=True)
        if self._made_config_root:
            try:
                CONFIG_ROOT.rmdir()  # only when empty: another run may have put its hosts there meanwhile
            except OSError:
                pass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
