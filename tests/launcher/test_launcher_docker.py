"""docker/Dockerfile and docker/compose.yaml, checked statically (no Docker engine runs here), and the
compose commands run for real on two network-namespace hosts where root allows."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from launch_helpers import REPO, start_launcher, write_script

from disttorch.launcher.cli import main

yaml = pytest.importorskip("yaml")

DOCKER = REPO / "docker"
LAUNCHER_OPTIONS = {name for param in main.params for name in getattr(param, "opts", ()) if name.startswith("-")}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile():
    return (DOCKER / "Dockerfile").read_text()


def _interpolated(command):
    """The command as compose runs it with no variables set: `${NAME:-default}` becomes the default."""
    return [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", token) for token in command]


def _launcher_flags(service):
    """The launcher's own flags: what comes before the script."""
    command = _interpolated(service["command"])[1:]
    script = next(index for index, token in enumerate(command) if not token.startswith("-"))
    return command[:script]


def _launch_params(service):
    command = _interpolated(service["command"])
    assert command[0] == "disttorch-launch"
    # Let the launcher's own click command parse it: unknown flags or bad values fail here.
    return main.make_context("disttorch-launch", list(command[1:])).params


def test_compose_has_a_master_and_a_worker_service(compose):
    assert set(compose["services"]) == {"master", "worker"}
    assert compose["services"]["worker"]["depends_on"] == ["master"]


def test_every_flag_in_the_commands_is_a_launcher_option(compose):
    for name, service in compose["services"].items():
        flags = {token.split("=")[0] for token in _launcher_flags(service)}
        assert flags <= LAUNCHER_OPTIONS, f"{name} uses flags the launcher does not have: {flags - LAUNCHER_OPTIONS}"


def test_the_two_commands_form_one_two_node_job(compose):
    master = _launch_params(compose["services"]["master"])
    worker = _launch_params(compose["services"]["worker"])
    assert (master["node_rank"], worker["node_rank"]) == (0, 1)
    for params in (master, worker):
        assert params["nnodes"] == (2, 2)
        assert params["nproc"] == 2
        assert params["master_addr"] == "master"
    shared = ("master_port", "script", "script_args", "run_module", "max_restarts")
    assert {key: master[key] for key in shared} == {key: worker[key] for key in shared}


def test_both_nodes_get_the_secret_and_shared_memory(compose):
    for service in compose["services"].values():
        assert "DISTTORCH_SECRET" in service["environment"]
        assert re.fullmatch(r"\d+[kmg]b?", str(service["shm_size"]).lower())
        assert service["init"] is True
    environments = [service["environment"] for service in compose["services"].values()]
    assert environments[0] == environments[1]


def test_docker_stop_waits_longer_than_the_launchers_grace_period(compose):
    for service in compose["services"].values():
        stop_grace = int(service["stop_grace_period"].rstrip("s"))
        assert float(service["environment"]["DISTTORCH_GRACE_PERIOD"]) < stop_grace


def test_build_points_at_the_dockerfile_from_the_repository_root(compose):
    for service in compose["services"].values():
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context == REPO
        assert (context / service["build"]["dockerfile"]).resolve() == DOCKER / "Dockerfile"


def test_dockerfile_installs_the_package_and_ships_the_script(compose, dockerfile):
    instructions = [line.split(None, 1) for line in dockerfile.splitlines() if line and not line.startswith("#")]
    keywords = [parts[0] for parts in instructions]
    assert keywords[0] == "FROM"
    python = re.search(r"python:(\d+)\.(\d+)", instructions[0][1])
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert tuple(map(int, python.groups())) >= tuple(map(int, required.lstrip(">=").split(".")))
    copied = " ".join(parts[1] for parts in instructions if parts[0] == "COPY")
    for needed in ("pyproject.toml", "setup.py", "disttorch", "launcher"):
        assert needed in copied
    # The package (with its int8 kernel) is built as a wheel for a portable target, then installed.
    assert any(parts[0] == "RUN" and re.search(r"DISTTORCH_MARCH=\S+ pip wheel .* \.(\s|$)", parts[1])
               for parts in instructions)
    assert "ARG DISTTORCH_MARCH=none" in dockerfile
    script = _launch_params(compose["services"]["master"])["script"]
    assert script.split("/")[0] in copied


def test_the_console_script_is_the_one_compose_runs(compose):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[compose["services"]["master"]["command"][0]] == "disttorch.launcher.cli:main"


@pytest.mark.timeout(90)
def test_the_compose_commands_run_a_job_across_two_hosts(tmp_path, compose, compose_hosts):
    """The services' exact flags, each on its own network-namespace host that resolves `master`;
    only the training script is swapped for one that reports its rank."""
    write_script(tmp_path, "report.py", """
        import json, os
        with open(f"rank_{os.environ['RANK']}.json", "w") as out:
            json.dump({"world": os.environ["WORLD_SIZE"], "node": os.environ["GROUP_RANK"]}, out)
    """)
    launchers = []
    for index, name in enumerate(("master", "worker")):
        flags = _launcher_flags(compose["services"][name])
        launchers.append(start_launcher(*flags, "--rdzv-timeout=30", "report.py", cwd=tmp_path,
                                        prefix=compose_hosts.exec_prefix(index)))
    try:
        results = [(launcher.wait(timeout=60), launcher.stderr.read()) for launcher in launchers]
    finally:
        for launcher in launchers:
            launcher.kill()
    for returncode, stderr in results:
        assert returncode == 0, stderr
    reports = [json.loads((tmp_path / f"rank_{rank}.json").read_text()) for rank in range(4)]
    assert reports == [{"world": "4", "node": str(rank // 2)} for rank in range(4)]


def test_the_build_context_leaves_out_host_builds():
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for pattern in ("**/*.so", "build", "dist", ".venv", "**/*.egg-info", "checkpoints"):
        assert pattern in ignored


@pytest.mark.timeout(120)
@pytest.mark.parametrize("march, expected", [(None, "-march=native"), ("none", None), ("x86-64-v2", "-march=x86-64-v2")])
def test_disttorch_march_chooses_the_kernels_target(tmp_path, march, expected):
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler: the int8 kernel is not built here")
    env = {key: value for key, value in os.environ.items() if key != "DISTTORCH_MARCH"}
    if march is not None:
        env["DISTTORCH_MARCH"] = march
    built = subprocess.run([sys.executable, "setup.py", "build_ext", "--force", "-b", str(tmp_path / "lib"),
                            "-t", str(tmp_path / "tmp")], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=110)
    assert built.returncode == 0, built.stderr
    assert list((tmp_path / "lib").rglob("_int8kernel*.so")), built.stdout + built.stderr
    flags = re.findall(r"-march=\S+", built.stdout + built.stderr)
    assert flags == ([expected] if expected else []), built.stdout + built.stderr
