"""Jobs started by the cluster engines users already have: Slurm's srun and sbatch, Open MPI's mpirun.

Runs where the engine works here (CI starts a one-machine Slurm with ../shared/tools/slurm-cluster.sh
when it exists; `apt-get install openmpi-bin` gives mpirun) and skips with the reason otherwise. With two
Slurm nodes the tasks run on separate network-namespace hosts n1 and n2."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launch_helpers import REPO, write_script

EXAMPLE = REPO / "examples" / "train_digits.py"
SBATCH = REPO / "examples" / "slurm" / "train_digits.sbatch"

REPORT = """
    import json, os, socket
    import disttorch as torch
    import disttorch.distributed as dist
    dist.init_process_group()
    total = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(total)
    report = {"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": total.item(),
              "local_rank": os.environ["LOCAL_RANK"], "host": socket.gethostname()}
    with open(f"report_{dist.get_rank()}.json", "w") as out:
        json.dump(report, out)
    dist.destroy_process_group()
"""


def _probe(command: list[str], timeout: float = 30) -> str | None:
    if shutil.which(command[0]) is None:
        return f"`{command[0]}` is not installed"
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(command)}` did not finish within {timeout:g}s"
    return None if result.returncode == 0 else f"`{' '.join(command)}` failed: {result.stderr.strip()[:300]}"


SLURM_PROBLEM = _probe(["srun", "-n", "2", "true"])
MPI_PROBLEM = _probe(["mpirun", "--version"])
needs_slurm = pytest.mark.skipif(SLURM_PROBLEM is not None, reason=f"no usable Slurm cluster "
                                 f"(../shared/tools/slurm-cluster.sh up starts one): {SLURM_PROBLEM}")
needs_mpirun = pytest.mark.skipif(MPI_PROBLEM is not None, reason=f"no Open MPI (apt-get install openmpi-bin): "
                                  f"{MPI_PROBLEM}")


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DISTTORCH_", "RANK", "WORLD_SIZE", "LOCAL_", "MASTER_", "SLURM_", "OMPI_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def _slurm_nodes() -> int:
    listed = subprocess.run(["sinfo", "-h", "-o", "%D"], capture_output=True, text=True, timeout=30)
    return min(2, sum(int(count) for count in listed.stdout.split()) or 1)


def _final_accuracy(output: str) -> float:
    final = re.findall(r"final test accuracy: ([\d.]+)%", output)
    assert len(final) == 1, output[-3000:]
    return float(final[0])


def _reports(directory: Path, world: int) -> list[dict]:
    return [json.loads((directory / f"report_{rank}.json").read_text()) for rank in range(world)]


@needs_slurm
@pytest.mark.timeout(120)
def test_srun_tasks_form_one_job(tmp_path):
    write_script(tmp_path, "report.py", REPORT)
    nodes = _slurm_nodes()
    result = subprocess.run(["srun", f"--nodes={nodes}", "--ntasks=2", "--kill-on-bad-exit=1", sys.executable,
                             "report.py"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    reports = _reports(tmp_path, 2)
    assert [(report["rank"], report["world"], report["sum"]) for report in reports] == [(0, 2, 3.0), (1, 2, 3.0)]
    if nodes == 2:
        assert reports[0]["host"] != reports[1]["host"]
        assert [report["local_rank"] for report in reports] == ["0", "0"]


@needs_slurm
@pytest.mark.timeout(120)
def test_srun_starts_one_launcher_per_node(tmp_path):
    write_script(tmp_path, "report.py", REPORT)
    nodes = _slurm_nodes()
    result = subprocess.run(["srun", f"--ntasks={nodes}", f"--nodes={nodes}", "--ntasks-per-node=1", sys.executable,
                             "-m", "disttorch.launcher", "--nproc", "2", "--grace-period", "1", "report.py"],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"started by slurm: {nodes} node(s)" in result.stderr
    world = 2 * nodes
    reports = _reports(tmp_path, world)
    assert [(report["rank"], report["world"], report["sum"]) for report in reports] == \
        [(rank, world, world * (world + 1) / 2) for rank in range(world)]


@needs_slurm
@pytest.mark.timeout(180)
def test_sbatch_trains_the_main_example(tmp_path):
    nodes = _slurm_nodes()
    output = tmp_path / "job.out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--nodes={nodes}", "--ntasks-per-node=1", f"--output={output}", str(SBATCH),
         "--checkpoint-dir", str(tmp_path / "checkpoints")],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    state = _wait_for_job(job, timeout=150)
    text = output.read_text()
    assert state == ("COMPLETED", "0:0"), text[-3000:]
    assert f"training on 1438 digits with {nodes} process(es)" in text
    assert _final_accuracy(text) > 95.0


def _wait_for_job(job: str, timeout: float) -> tuple[str, str]:
    """(JobState, ExitCode) once the job ended; polls scontrol, which keeps finished jobs for minutes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30)
        fields = dict(re.findall(r"(\w+)=(\S+)", shown.stdout))
        if fields.get("JobState") not in (None, "PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return fields["JobState"], fields["ExitCode"]
        time.sleep(0.5)
    subprocess.run(["scancel", job], timeout=30)
    raise AssertionError(f"slurm job {job} did not finish within {timeout:g}s")


@needs_mpirun
@pytest.mark.timeout(180)
def test_mpirun_trains_the_main_example(tmp_path):
    env = _env()
    # As root Open MPI wants both confirmations; two ranks may exceed the slots it counts on a small box.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    result = subprocess.run(["mpirun", "-n", "2", sys.executable, "-u", str(EXAMPLE), "--checkpoint-dir",
                             str(tmp_path / "checkpoints")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "training on 1438 digits with 2 process(es)" in result.stdout
    assert _final_accuracy(result.stdout) > 95.0
