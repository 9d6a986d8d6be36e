"""disttorch.save to a path, as the file system sees it: killed savers, modes, links, missing folders."""

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

import disttorch
from disttorch import _atomic_write

# A saver that stops half-way through writing and waits for a line on stdin: the test decides when it
# dies or finishes, so "mid-save" needs no timing.
STALLED_SAVER = textwrap.dedent("""
    import io, sys
    import disttorch
    from disttorch import serialization

    write_payload = serialization._write_payload

    def stalled(handle, obj):
        whole = io.BytesIO()
        write_payload(whole, obj)
        half = len(whole.getvalue()) // 2
        handle.write(whole.getvalue()[:half])
        handle.flush()
        print("writing", flush=True)
        sys.stdin.readline()
        handle.write(whole.getvalue()[half:])

    serialization._write_payload = stalled
    disttorch.save({"saved_by": sys.argv[2]}, sys.argv[1])
""")


def _start_stalled_saver(path, name):
    saver = subprocess.Popen([sys.executable, "-c", STALLED_SAVER, str(path), name], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert saver.stdout.readline() == "writing\n"
    return saver


def _temps(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


@pytest.mark.timeout(120)
def test_a_killed_savers_temp_file_goes_at_the_next_save_but_a_live_one_stays(tmp_path):
    path = tmp_path / "ckpt.pt"
    disttorch.save({"saved_by": "first"}, path)
    killed = _start_stalled_saver(path, "killed")
    [left_behind] = _temps(tmp_path)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert _temps(tmp_path) == [left_behind]

    live = _start_stalled_saver(path, "live")
    try:
        [live_temp] = set(_temps(tmp_path)) - {left_behind}
        disttorch.save({"saved_by": "next"}, path)
        assert _temps(tmp_path) == [live_temp]
        assert disttorch.load(path) == {"saved_by": "next"}
    finally:
        live.communicate("go on\n", timeout=60)
    assert live.returncode == 0
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert disttorch.load(path) == {"saved_by": "live"}


def test_a_temp_file_with_our_pid_left_by_an_earlier_process_goes(tmp_path):
    # In containers the trainer often gets the same pid after a restart as before the kill.
    path = tmp_path / "ckpt.pt"
    stale = tmp_path / f"{_atomic_write._temp_prefix('ckpt.pt')}{os.getpid()}-{'0' * 16}.tmp"
    stale.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / ".other.pt.0000000000000000.tmp"
    unrelated.write_bytes(b"someone else's")
    disttorch.save({"epoch": 1}, path)
    assert sorted(os.listdir(tmp_path)) == [unrelated.name, "ckpt.pt"]


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_follows_the_umask_like_torch(tmp_path, umask, mask, mode):
    umask(mask)
    disttorch.save({"epoch": 1}, tmp_path / "ckpt.pt")
    assert stat.S_IMODE(os.stat(tmp_path / "ckpt.pt").st_mode) == mode


def test_an_overwritten_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "ckpt.pt"
    disttorch.save({"epoch": 1}, path)
    os.chmod(path, 0o640)
    disttorch.save({"epoch": 2}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert disttorch.load(path) == {"epoch": 2}


def test_saving_to_a_symlink_writes_its_target(tmp_path):
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "epoch_3.pt"
    disttorch.save({"epoch": 2}, target)
    link = tmp_path / "latest.pt"
    link.symlink_to(target)
    disttorch.save({"epoch": 3}, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert disttorch.load(target) == {"epoch": 3}
    assert sorted(os.listdir(tmp_path / "runs")) == ["epoch_3.pt"]


def test_a_dangling_symlink_gets_its_target_created(tmp_path):
    link = tmp_path / "latest.pt"
    link.symlink_to(tmp_path / "new.pt")
    disttorch.save({"epoch": 1}, link)
    assert link.is_symlink() and disttorch.load(tmp_path / "new.pt") == {"epoch": 1}


def test_a_missing_folder_is_named(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(RuntimeError) as caught:
        disttorch.save({"epoch": 1}, missing / "ckpt.pt")
    assert str(caught.value) == f"Parent directory {missing} does not exist."
    assert not os.listdir(tmp_path)


def test_a_folder_as_destination_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        disttorch.save({"epoch": 1}, tmp_path)
    assert not os.listdir(tmp_path)
