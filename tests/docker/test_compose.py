"""docker/compose.yaml on a real Docker engine: the 2-node x 2-worker job, its rerun, a killed node.

Runs where `docker info` and `docker compose version` work (CI starts an engine with
../shared/tools/docker-engine.sh when it exists) and skips with the reason otherwise. Every test uses
its own compose project, so nothing here touches a user's `disttorch` project, and removes it (volume
included) when done. The image build is cached by the engine after the first run.
"""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker" / "compose.yaml"
UP_FOR_THE_OUTCOME = ("up", "--abort-on-container-exit", "--exit-code-from", "master")


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker command is not installed (../shared/tools/docker-engine.sh up installs an engine)"
    for command in (["docker", "info"], ["docker", "compose", "version"]):
        try:
            probe = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(command)}` did not answer within 30 s"
        if probe.returncode != 0:
            return f"`{' '.join(command)}` failed: {(probe.stderr or probe.stdout).strip()[:300]}"
    return None


_PROBLEM = _engine_problem()
pytestmark = pytest.mark.skipif(_PROBLEM is not None, reason=f"no usable Docker engine: {_PROBLEM}")


class Project:
    """One compose project made from docker/compose.yaml."""

    def __init__(self, name: str, **env: str):
        self.name = name
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("DISTTORCH_")}
        self.env.update(env)

    def command(self, *args: str) -> list[str]:
        return ["docker", "compose", "-p", self.name, "-f", str(COMPOSE_FILE), *args]

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str, log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            return subprocess.Popen(self.command(*args), env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def exit_codes(self) -> dict[str, int]:
        listed = self.run("ps", "-a", "--format", "json", timeout=60)
        assert listed.returncode == 0, listed.stderr
        # Compose prints one JSON object per line (older 2.x: one JSON array).
        text = listed.stdout.strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
        return {row["Service"]: row["ExitCode"] for row in rows}

    def down(self) -> None:
        self.run("down", "-v", "--remove-orphans", "-t", "5", timeout=120)


@pytest.fixture(scope="module")
def image():
    built = subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "build", "master"],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return "disttorch:latest"


@pytest.fixture
def project(image):
    made = Project(f"dttest{os.getpid()}")
    made.down()
    yield made
    made.down()


def _final_accuracy(output: str) -> float:
    final = [line for line in output.splitlines() if "[0:0] final test accuracy:" in line]
    assert len(final) == 1, output[-3000:]
    return float(final[0].rsplit(" ", 1)[1].rstrip("%"))


@pytest.mark.timeout(300)
def test_the_image_has_the_portable_int8_kernel_and_no_host_build(image):
    probe = subprocess.run(
        ["docker", "run", "--rm", image, "python", "-c",
         "import disttorch.quantization._int8kernel as k, os; print(k.__file__); "
         "print(sorted(os.listdir('/workspace')))"],
        capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    kernel, listing = probe.stdout.splitlines()
    assert "site-packages/disttorch/quantization/_int8kernel" in kernel
    assert listing == "['checkpoints', 'examples']"


@pytest.mark.timeout(420)
def test_up_twice_trains_then_resumes_and_every_container_exits_0(project):
    first = project.run(*UP_FOR_THE_OUTCOME)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert project.exit_codes() == {"master": 0, "worker": 0}
    assert "[0:0] training on 1438 digits with 4 process(es)" in first.stdout
    accuracy = _final_accuracy(first.stdout)
    assert accuracy > 95.0

    # The shared volume holds the finished job's checkpoint for both nodes.
    again = project.run(*UP_FOR_THE_OUTCOME)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    assert project.exit_codes() == {"master": 0, "worker": 0}
    assert "digits-e00011-s000000000.pt already finished all 12 epochs" in again.stdout
    assert "train_loss=" not in again.stdout
    assert _final_accuracy(again.stdout) == accuracy


@pytest.mark.timeout(300)
def test_killing_the_worker_container_fails_the_job_naming_node_1(project, tmp_path):
    log = tmp_path / "up.log"
    up = project.start(*UP_FOR_THE_OUTCOME, log=log)
    try:
        deadline = time.monotonic() + 180
        while "[0:0] epoch 1: train_loss=" not in log.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        killed = subprocess.run(["docker", "kill", f"{project.name}-worker-1"], capture_output=True, text=True,
                                timeout=60)
        assert killed.returncode == 0, killed.stderr
        returncode = up.wait(timeout=120)
    finally:
        up.kill()
        up.wait()
    assert returncode != 0, log.read_text()[-3000:]
    # Compose stops following the logs when it aborts; the master's own log has the whole story. With
    # restarts left, node 0 waits for node 1 to come back until compose stops it too.
    output = project.run("logs", "master", timeout=60).stdout
    assert "disttorch-launch: job FAILED: lost node 1" in output, output[-3000:]
    assert "then SIGTERM while waiting to restart" in output
    codes = project.exit_codes()
    assert codes["worker"] == 137 and codes["master"] == 1, codes


KILL_THE_LAUNCHER = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        argv = cmdline.read().split(b"\\0")
    # PID 1 is docker-init, whose arguments name the launcher too.
    if pid != "1" and len(argv) > 1 and argv[1].endswith(b"/disttorch-launch"):
        os.kill(int(pid), signal.SIGKILL)
"""


@pytest.mark.timeout(300)
def test_a_crashed_worker_container_is_restarted_and_rejoins_the_job(project):
    """`up -d` then `docker compose wait master`: the worker's launcher dies, Docker restarts its container
    (restart: on-failure), node 0 waits for it, and the job resumes from the shared checkpoint."""
    started = project.run("up", "-d")
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 180
    while "[0:0] epoch 2: train_loss=" not in project.run("logs", "master", timeout=60).stdout:
        assert time.monotonic() < deadline, project.run("logs", timeout=60).stdout[-3000:]
        time.sleep(0.5)
    # Detached: the container goes down with its launcher, and would take a waiting `exec` with it.
    killed = subprocess.run(["docker", "exec", "-d", f"{project.name}-worker-1", "python", "-c", KILL_THE_LAUNCHER],
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == 0, killed.stderr
    waited = project.run("wait", "master", timeout=240)
    output = project.run("logs", "master", timeout=60).stdout
    assert waited.returncode == 0, output[-4000:]
    assert "lost node 1" in output and "restarting the worker group (1/3)" in output
    assert re.search(r"\[0:0\] resumed from checkpoints/digits-e\d+-s\d+\.pt at epoch \d+/12 \(restart 1\)", output)
    assert _final_accuracy(output) > 95.0
    restarts = subprocess.run(["docker", "inspect", "-f", "{{.RestartCount}}", f"{project.name}-worker-1"],
                              capture_output=True, text=True, timeout=60)
    assert int(restarts.stdout) >= 1
    assert project.exit_codes() == {"master": 0, "worker": 0}
