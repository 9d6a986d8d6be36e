"""Elastic membership (--nnodes MIN:MAX): a job that loses a node goes on with the nodes left, and a node
that comes back is admitted at the next restart."""
import json
import re
import socket
import subprocess
from pathlib import Path

import pytest
from launch_helpers import REPO, launcher_command, launcher_env, wait_for, write_script

EXAMPLE = REPO / "examples" / "train_digits.py"


def _elastic_flags(node_rank, master_addr, port, max_restarts=2):
    return ("--nnodes", "2:3", "--node-rank", str(node_rank), "--nproc", "1", "--master-addr", master_addr,
            "--master-port", str(port), "--max-restarts", str(max_restarts), "--rdzv-timeout", "60")


def _start_logged(command, cwd: Path, log: Path, prefix=()):
    with open(log, "w") as out:
        return subprocess.Popen([*prefix, *command], cwd=cwd, env=launcher_env(), stdout=out,
                                stderr=subprocess.STDOUT, text=True)


def _stop(launchers):
    for launcher in launchers:
        launcher.kill()
        launcher.wait()


@pytest.mark.timeout(240)
def test_losing_one_of_three_hosts_finishes_the_job_on_two(tmp_path, three_hosts):
    """Three network-namespace hosts train the digits CNN; node 2's launcher is killed at epoch 3. The two
    left restart with world size 2, resume from node 0's last checkpoint and reach the usual accuracy."""
    logs = [tmp_path / f"node{node}.log" for node in range(3)]
    launchers = []
    try:
        for node in range(3):
            directory = tmp_path / f"node{node}"  # each host's own disk: only node 0's holds checkpoints
            directory.mkdir()
            command = launcher_command(*_elastic_flags(node, three_hosts.address(0), 29431), str(EXAMPLE))
            launchers.append(_start_logged(command, directory, logs[node], prefix=three_hosts.exec_prefix(node)))
        wait_for(lambda: "[0:0] epoch 3: train_loss=" in logs[0].read_text() or launchers[0].poll() is not None,
                 150, "epoch 3 on three nodes")
        assert "training on 1438 digits with 3 process(es)" in logs[0].read_text(), logs[0].read_text()[-3000:]
        launchers[2].kill()
        codes = [launcher.wait(timeout=180) for launcher in launchers[:2]]
    finally:
        _stop(launchers)
    master = logs[0].read_text()
    assert codes == [0, 0], master[-4000:] + logs[1].read_text()[-2000:]
    assert "lost node 2" in master
    assert "restarting with 2 of 3 nodes (0, 1); world size 2" in master
    resumed = re.search(r"\[0:0\] resumed from checkpoints/digits-e(\d+)-s\d+\.pt at epoch (\d+)/12 \(restart 1\)",
                        master)
    assert resumed and int(resumed[2]) >= 3, master[-4000:]
    assert "training on 1438 digits with 2 process(es)" in master
    final = re.findall(r"\[0:0\] final test accuracy: ([\d.]+)%", master)
    assert len(final) == 1 and float(final[0]) > 95.0, master[-3000:]
    assert not (tmp_path / "node1" / "checkpoints").exists()


# restart 0: every rank waits to be stopped; restart 1: rank 0 fails once `go` exists (one more restart);
# restart 2: done. Each attempt's ranks report what they were told.
STAGED_WORKER = """
    import json, os, sys, time
    from pathlib import Path
    restart = int(os.environ["DISTTORCH_RESTART_COUNT"])
    report = {name: os.environ[name] for name in ("RANK", "WORLD_SIZE", "GROUP_RANK")}
    # Written under another name, then renamed: the test polls for reports and must never read a half-written one.
    name = f"report_{restart}_{os.environ['RANK']}.json"
    Path(name + ".partial").write_text(json.dumps(report))
    os.replace(name + ".partial", name)
    if restart == 0:
        time.sleep(120)
    if restart == 1:
        while not Path("go").exists():
            time.sleep(0.05)
        if os.environ["RANK"] == "0":
            sys.exit(5)
        time.sleep(120)
"""


def _reports(directory: Path, restart: int) -> list[tuple[str, str, str]]:
    found = [json.loads(path.read_text()) for path in directory.glob(f"report_{restart}_*.json")]
    return sorted((report["RANK"], report["WORLD_SIZE"], report["GROUP_RANK"]) for report in found)


@pytest.mark.timeout(120)
def test_a_node_that_comes_back_is_admitted_at_the_next_restart(tmp_path):
    write_script(tmp_path, "staged.py", STAGED_WORKER)
    port = _free_port()
    master_log = tmp_path / "node0.log"

    def start(node, attempt=0):
        command = launcher_command(*_elastic_flags(node, "127.0.0.1", port, max_restarts=3), "staged.py")
        return _start_logged(command, tmp_path, tmp_path / f"node{node}.{attempt}.log" if node else master_log)

    launchers = [start(node) for node in range(3)]
    try:
        wait_for(lambda: len(_reports(tmp_path, 0)) == 3, 60, "three ranks in the first attempt")
        launchers[2].kill()
        launchers[2].wait()
        wait_for(lambda: len(_reports(tmp_path, 1)) == 2, 60, "the two nodes left to restart")
        launchers.append(start(2, attempt=1))
        # Node 2 joins while attempt 1 runs; it waits for the next restart instead of disturbing it.
        wait_for(lambda: master_log.read_text().count("node 2 joined") == 2, 30, "node 2 to join again")
        assert len(_reports(tmp_path, 1)) == 2
        (tmp_path / "go").write_text("")
        codes = [launchers[node].wait(timeout=60) for node in (0, 1, 3)]
    finally:
        _stop(launchers)
    assert codes == [0, 0, 0], master_log.read_text()[-3000:]
    assert _reports(tmp_path, 1) == [("0", "2", "0"), ("1", "2", "1")]
    assert _reports(tmp_path, 2) == [("0", "3", "0"), ("1", "3", "1"), ("2", "3", "2")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
