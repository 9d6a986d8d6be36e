"""Host heap policy: keep freed memory for the next training step instead of handing it back to the OS.

Every op returns a fresh numpy array, so a training step frees and re-allocates the same tens of MiB
each iteration. glibc's malloc sets its trim threshold to twice the largest array freed so far, and a
step's working set is larger than that: the heap shrinks after backward and the next step page-faults
its memory back in (about 3000 faults, 15% of a small CNN's step on one core). Pinning the thresholds
to glibc's own ceilings (32 MiB mmap threshold, the most its dynamic rule reaches; twice that for the
trim threshold) keeps up to 64 MiB of freed heap, in line with what glibc does for any process whose
arrays reach 32 MiB. A process that joins a process group keeps more (see comm/transport.py), since
libzmq allocates every large received message afresh. DISTTORCH_MALLOC_TUNING=0 keeps glibc's defaults.
"""
import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 32 << 20
_TRIM_THRESHOLD_BYTES = 64 << 20


def keep_freed_heap(trim_bytes=_TRIM_THRESHOLD_BYTES):
    """Keep up to `trim_bytes` of freed heap; on glibc only, and never over settings the user made
    through the environment. Returns whether the policy was applied."""
    if not sys.platform.startswith("linux") or os.environ.get("DISTTORCH_MALLOC_TUNING", "1") == "0":
        return False
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ or \
            "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # musl and other libcs have other malloc tunings (or none)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_bytes))
