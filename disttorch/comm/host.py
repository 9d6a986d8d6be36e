"""Which peers share this host's kernel-local channels (ipc:// sockets, /dev/shm).

A hostname says nothing about that: containers and network namespaces can share
one, or a cluster can repeat one, while their sockets or memory stay apart. What
must really match is the kernel (boot id), the network namespace (the one the
tcp:// addresses live in; a peer in another one is another host to us, even when
the filesystem happens to be shared) and, for shared memory, the very same
/dev/shm mount. Each rank publishes ``identity()`` and compares its peers' with
its own. The ipc:// sockets live in the abstract namespace, which belongs to the
network namespace, so no filesystem needs to be shared for them.
"""
import os

SHM_DIR = "/dev/shm"


def _read_boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot_id:
            return boot_id.read().strip()
    except OSError:
        return None


def _file_id(path):
    """(device, inode) of ``path``, or None where it does not exist."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino]


def identity():
    """This process's view of its host: {"boot", "netns", "shm", "cpus"}; a None entry never matches."""
    return {"boot": _read_boot_id(), "netns": _file_id("/proc/self/ns/net"), "shm": _file_id(SHM_DIR),
            "cpus": sorted(os.sched_getaffinity(0))}


def cores_per_rank(mine, identities):
    """CPU cores per rank among the ranks (``identities``, this one's included) that compete for
    this process's cores: those on the same kernel whose CPU sets overlap ours. A network namespace
    or a container with a hostname of its own is another host for the data, but not for the cores.
    """
    my_cpus = set(mine["cpus"])
    rivals = [theirs for theirs in identities if mine["boot"] is not None and theirs.get("boot") == mine["boot"]
              and my_cpus & set(theirs.get("cpus") or ())] or [mine]
    cores = set().union(*(theirs["cpus"] for theirs in rivals))
    return len(cores) / len(rivals)


def same_kernel_and_network(mine, theirs):
    """Whether a peer with identity ``theirs`` may be reached through ipc:// sockets."""
    return all(mine[key] is not None and mine[key] == theirs.get(key) for key in ("boot", "netns"))


def same_shared_memory(mine, theirs):
    """Whether a peer with identity ``theirs`` maps the same /dev/shm files as we do."""
    return same_kernel_and_network(mine, theirs) and mine["shm"] is not None and mine["shm"] == theirs.get("shm")


def key(identity_of_rank, rank):
    """Hashable host key of a rank's identity; a rank whose identity is incomplete is alone."""
    if any(identity_of_rank.get(part) is None for part in ("boot", "netns", "shm")):
        return ("alone", rank)
    return (identity_of_rank["boot"], *identity_of_rank["netns"], *identity_of_rank["shm"])
