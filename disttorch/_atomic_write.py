"""Writing a file so that readers only ever see its old or its new content, never part of either.

The content goes to a hidden temporary file in the destination's folder, is fsynced and renamed over
the destination. Temporary names carry this host and the writer's process id, so the next save of the
same path removes what a killed writer (kill -9, out of memory, power loss) left behind without touching
the file of a writer that is still running.
"""
import os
import re
import secrets
import socket
import stat
import zlib

# Process ids only mean something on their own machine: a writer on another host sharing the folder
# keeps its temporary files, whatever its pid looks like here.
_HOST_TAG = f"{zlib.crc32(socket.gethostname().encode()):08x}"
# Room for the temporary name's dot, host tag, pid and token within the usual 255-byte name limit.
_NAME_ROOM = 200
# This process's temporary files still being written; a file with our pid outside this set was left by
# an earlier process that had the same pid (common in containers, where the trainer is often pid 1 or 7).
_live_temps = set()


def _temp_prefix(name):
    return f".{name[:_NAME_ROOM]}.{_HOST_TAG}-"


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _remove_stale_temps(directory, name):
    pattern = re.compile(re.escape(_temp_prefix(name)) + r"(\d+)-[0-9a-f]{16}\.tmp")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        pid = int(match.group(1))
        path = os.path.join(directory, entry)
        if path in _live_temps or (pid != os.getpid() and _process_alive(pid)):
            continue
        try:
            os.unlink(path)
        except OSError:
            pass  # another saver removed it first, or the folder is not ours to clean


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic there
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call write(binary_handle) on a temporary file, then rename it over `path`.

    A symlink stays a link and its target gets the new content. A new file's mode follows the umask,
    like open(path, "wb"); an existing file keeps its mode. A missing folder is a RuntimeError naming it
    (PyTorch's message for torch.save).
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise RuntimeError(f"Parent directory {folder} does not exist.")
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    if not os.path.isdir(directory):
        raise RuntimeError(f"Parent directory {directory} does not exist (the folder {path} links into).")
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot save to {path}: it is a directory")
    try:
        kept_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        kept_mode = None
    _remove_stale_temps(directory, name)
    temp = os.path.join(directory, f"{_temp_prefix(name)}{os.getpid()}-{secrets.token_hex(8)}.tmp")
    _live_temps.add(temp)
    try:
        # 0o666 less the umask, as open() gives; mkstemp's 0o600 would hide checkpoints from the group.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "wb") as handle:
            if kept_mode is not None:
                os.fchmod(fd, kept_mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    finally:
        _live_temps.discard(temp)
    _fsync_directory(directory)
