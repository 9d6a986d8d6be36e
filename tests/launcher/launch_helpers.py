"""Running the real launcher as a subprocess, and watching the processes it starts."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAST_FLAGS = ("--monitor-interval", "0.05", "--grace-period", "1")


def launcher_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DISTTORCH_", "OMP_", "MKL_"))}
    env.pop("OPENBLAS_NUM_THREADS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def launcher_command(*args: str, prefix: tuple[str, ...] = ()) -> list[str]:
    return [*prefix, sys.executable, "-m", "disttorch.launcher", *FAST_FLAGS, *args]


def run_launcher(*args: str, cwd: Path, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(launcher_command(*args), cwd=cwd, env=env or launcher_env(), capture_output=True,
                          text=True, timeout=timeout)


def start_launcher(*args: str, cwd: Path, env: dict | None = None, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen(launcher_command(*args, prefix=prefix), cwd=cwd, env=env or launcher_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for a reaper outside our control."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def read_pids(directory: Path, count: int, timeout: float = 30) -> list[int]:
    """Waits until `count` workers wrote `pid_<rank>` files (written by the worker scripts below)."""
    def ready():
        files = sorted(directory.glob("pid_*"))
        texts = [file.read_text() for file in files]
        return len(files) == count and all(text.endswith("\n") for text in texts) and texts
    return [int(text) for text in wait_for(ready, timeout, f"{count} workers to start")]


# Workers that announce themselves, then wait (ignoring SIGTERM when asked) until killed.
SLEEPER = """
    import os, signal, sys, time
    from pathlib import Path
    if "--ignore-sigterm" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(f"pid_{os.environ['RANK']}").write_text(f"{os.getpid()}\\n")
    print("sleeping", flush=True)
    time.sleep(120)
"""
