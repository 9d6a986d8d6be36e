"""Several launchers forming one job: on loopback (no privileges needed) and across network namespaces."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from launch_helpers import SLEEPER, alive, launcher_env, read_pids, start_launcher, wait_for, write_script

REPORTING_WORKER = """
    import json, os
    from pathlib import Path
    names = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
             "DISTTORCH_SECRET", "DISTTORCH_RESTART_COUNT", "DISTTORCH_HOST_ADDR"]
    report = {name: os.environ[name] for name in names}
    print("reporting", flush=True)
    Path(f"report_{os.environ['RANK']}.json").write_text(json.dumps(report))
"""

# The same, plus an all_reduce over every rank once disttorch.distributed offers collectives.
COLLECTIVE_WORKER = REPORTING_WORKER + """
    try:
        import disttorch.distributed as dist
        has_collectives = hasattr(dist, "init_process_group") and hasattr(dist, "all_reduce")
    except ImportError:
        has_collectives = False
    if has_collectives:
        import disttorch as torch
        dist.init_process_group()
        total = torch.tensor([float(int(os.environ["RANK"]) + 1)])
        dist.all_reduce(total)
        report["all_reduce"] = float(total.item())
        if hasattr(dist, "destroy_process_group"):
            dist.destroy_process_group()
        Path(f"report_{os.environ['RANK']}.json").write_text(json.dumps(report))
"""


def _collectives_available() -> bool:
    try:
        import disttorch.distributed as dist
    except ImportError:
        return False
    return hasattr(dist, "init_process_group") and hasattr(dist, "all_reduce")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _node_flags(nnodes, node_rank, addr, port, nproc, timeout="20"):
    return ("--nnodes", str(nnodes), "--node-rank", str(node_rank), "--master-addr", addr,
            "--master-port", str(port), "--nproc", str(nproc), "--rdzv-timeout", timeout)


def _finish(launchers, timeout=60, with_stdout=False):
    """(returncode, stderr) or (returncode, stdout, stderr) of every launcher; kills any outliving `timeout`."""
    results = []
    try:
        for launcher in launchers:
            stdout, stderr = launcher.communicate(timeout=timeout)
            results.append((launcher.returncode, stdout, stderr) if with_stdout else (launcher.returncode, stderr))
    finally:
        for launcher in launchers:
            launcher.kill()
            launcher.wait()
    return results


def _reports(directory, world_size):
    return [json.loads((directory / f"report_{rank}.json").read_text()) for rank in range(world_size)]


def _check_reports(reports, nproc_of_node, rendezvous_port, collective=False):
    world_size = sum(nproc_of_node)
    offsets = [sum(nproc_of_node[:node]) for node in range(len(nproc_of_node))]
    for rank, report in enumerate(reports):
        node = max(index for index, offset in enumerate(offsets) if offset <= rank)
        assert report["RANK"] == str(rank)
        assert report["GROUP_RANK"] == str(node)
        assert report["LOCAL_RANK"] == str(rank - offsets[node])
        assert report["LOCAL_WORLD_SIZE"] == str(nproc_of_node[node])
        assert report["WORLD_SIZE"] == str(world_size)
        if collective:
            assert report["all_reduce"] == world_size * (world_size + 1) / 2
    for shared in ("MASTER_ADDR", "MASTER_PORT", "DISTTORCH_SECRET"):
        assert len({report[shared] for report in reports}) == 1, shared
    # The workers' store must not collide with the launchers' own rendezvous port.
    assert reports[0]["MASTER_PORT"] != str(rendezvous_port)


@pytest.mark.timeout(60)
def test_two_launchers_on_loopback_form_one_job(tmp_path):
    write_script(tmp_path, "report.py", COLLECTIVE_WORKER)
    port = _free_port()
    launchers = [start_launcher(*_node_flags(2, node, "127.0.0.1", port, nproc), "report.py", cwd=tmp_path)
                 for node, nproc in [(1, 2), (0, 1)]]
    (node_1_code, node_1_out, node_1_err), (node_0_code, node_0_out, node_0_err) = _finish(launchers, with_stdout=True)
    assert node_0_code == 0, node_0_err
    assert node_1_code == 0, node_1_err
    _check_reports(_reports(tmp_path, 3), [1, 2], port, collective=_collectives_available())
    assert node_0_out.splitlines() == ["[0:0] reporting"]
    assert sorted(node_1_out.splitlines()) == ["[1:1] reporting", "[1:2] reporting"]


@pytest.mark.timeout(60)
def test_shared_secret_from_the_environment(tmp_path):
    write_script(tmp_path, "report.py", REPORTING_WORKER)
    port = _free_port()
    env = launcher_env(DISTTORCH_SECRET="shared-by-the-user")
    launchers = [start_launcher(*_node_flags(2, node, "127.0.0.1", port, 1), "report.py", cwd=tmp_path, env=env)
                 for node in (0, 1)]
    for returncode, stderr in _finish(launchers):
        assert returncode == 0, stderr
    assert {report["DISTTORCH_SECRET"] for report in _reports(tmp_path, 2)} == {"shared-by-the-user"}


@pytest.mark.timeout(60)
def test_strangers_and_quitters_at_the_rendezvous_do_not_break_the_job(tmp_path):
    write_script(tmp_path, "report.py", REPORTING_WORKER)
    port = _free_port()

    def node(rank):
        return start_launcher(*_node_flags(3, rank, "127.0.0.1", port, 1), "report.py", cwd=tmp_path)

    master, stranger = node(0), None
    try:
        wait_for(lambda: "waiting at" in master.stderr.readline(), 20, "node 0 to listen")
        stranger = socket.create_connection(("127.0.0.1", port), timeout=10)
        stranger.sendall(b"GET / HTTP/1.0\r\n\r\n")
        # Node 1 joins, then quits before node 2 arrives: a second node 1 may take its place.
        quitter = node(1)
        wait_for(lambda: "joined the rendezvous" in quitter.stderr.readline(), 20, "node 1 to join")
        quitter.send_signal(signal.SIGINT)
        assert quitter.wait(timeout=20) == 128 + signal.SIGINT
        results = _finish([master, node(1), node(2)])
    finally:
        master.kill()
        if stranger is not None:
            stranger.close()
    for returncode, stderr in results:
        assert returncode == 0, stderr
    assert "node 1 left before the job started" in results[0][1]
    _check_reports(_reports(tmp_path, 3), [1, 1, 1], port)


@pytest.mark.timeout(60)
def test_a_node_that_never_arrives_is_named(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    port = _free_port()
    launchers = [start_launcher(*_node_flags(3, node, "127.0.0.1", port, 1, timeout="2"), "sleeper.py",
                                cwd=tmp_path) for node in (0, 2)]
    (master_code, master_err), (node_code, node_err) = _finish(launchers)
    assert master_code == node_code == 1
    for stderr in (master_err, node_err):
        assert f"rendezvous at 127.0.0.1:{port} timed out" in stderr
        assert "2 of 3 nodes joined (node ranks 0, 2); still missing node rank(s) 1" in stderr
    assert not list(tmp_path.glob("pid_*"))


@pytest.mark.timeout(60)
def test_an_unreachable_node_0_is_named(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    port = _free_port()
    [(code, stderr)] = _finish([start_launcher(*_node_flags(2, 1, "127.0.0.1", port, 1, timeout="1"),
                                               "sleeper.py", cwd=tmp_path)])
    assert code == 1
    assert f"could not reach node 0's launcher at 127.0.0.1:{port}" in stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("secrets, complaint", [
    ({0: "secret-0", 1: "secret-1"}, "node 1's DISTTORCH_SECRET does not match node 0's"),
    ({1: "secret-1"}, "DISTTORCH_SECRET is set on this node but not on node 0"),
])
def test_mismatched_secrets_are_refused(tmp_path, secrets, complaint):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    port = _free_port()
    envs = [launcher_env(**({"DISTTORCH_SECRET": secrets[node]} if node in secrets else {})) for node in (0, 1)]
    launchers = [start_launcher(*_node_flags(2, node, "127.0.0.1", port, 1, timeout="1.5"), "sleeper.py",
                                cwd=tmp_path, env=envs[node]) for node in (0, 1)]
    (master_code, master_err), (node_code, node_err) = _finish(launchers)
    assert master_code == node_code == 1
    assert complaint in node_err
    assert "still missing node rank(s) 1" in master_err
    assert not list(tmp_path.glob("pid_*"))


@pytest.mark.timeout(60)
def test_node_0_listens_only_on_the_interface_of_the_master_address(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    port = _free_port()
    master = start_launcher(*_node_flags(2, 0, "127.0.0.1", port, 1), "sleeper.py", cwd=tmp_path)
    try:
        wait_for(lambda: "waiting at" in master.stderr.readline(), 20, "node 0 to listen")
        # 127.0.0.2 is this machine too, but not the address node 0 was given.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=10).close()
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    finally:
        master.kill()
        master.wait()


@pytest.mark.timeout(60)
def test_losing_a_launcher_stops_the_job_everywhere(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    port = _free_port()
    launchers = [start_launcher(*_node_flags(2, node, "127.0.0.1", port, 1), "sleeper.py", cwd=tmp_path)
                 for node in (0, 1)]
    try:
        pids = read_pids(tmp_path, 2)
        launchers[1].kill()
        (master_code, master_err), _ = _finish(launchers)
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "every worker to be gone")
    finally:
        for launcher in launchers:
            launcher.kill()
    assert master_code == 1
    assert "lost node 1" in master_err


@pytest.mark.timeout(90)
def test_job_across_two_hosts_completes_and_leaves_nothing(tmp_path, two_hosts):
    write_script(tmp_path, "report.py", COLLECTIVE_WORKER)
    master_addr, port = two_hosts.address(0), 29400
    launchers = [start_launcher(*_node_flags(2, node, master_addr, port, 2), "report.py", cwd=tmp_path,
                                prefix=two_hosts.exec_prefix(node)) for node in (1, 0)]
    for returncode, stderr in _finish(launchers):
        assert returncode == 0, stderr
    reports = _reports(tmp_path, 4)
    _check_reports(reports, [2, 2], port, collective=_collectives_available())
    assert reports[0]["MASTER_ADDR"] == master_addr
    assert [report["DISTTORCH_HOST_ADDR"] for report in reports] == [two_hosts.address(rank // 2) for rank in range(4)]
    _assert_nothing_left(two_hosts)


# Records every frame that crosses host 1's link, like anyone listening on the network between the hosts.
SNIFFER = """
    import signal, socket, sys
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
    sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    sniffer.bind((sys.argv[2], 0))
    sniffer.settimeout(0.1)
    with open(sys.argv[1], "wb") as capture:
        print("listening", flush=True)
        while not stop:
            try:
                capture.write(sniffer.recv(1 << 16))
            except socket.timeout:
                pass
"""


@pytest.mark.timeout(120)
def test_without_a_user_secret_a_listener_on_the_network_never_sees_the_job_secret(tmp_path, two_hosts):
    write_script(tmp_path, "report.py", COLLECTIVE_WORKER)
    write_script(tmp_path, "sniff.py", SNIFFER)
    sniffer = subprocess.Popen(["ip", "netns", "exec", two_hosts.switch, sys.executable, "sniff.py", "wire.bin", "p1"],
                               cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert sniffer.stdout.readline() == "listening\n"
        master_addr, port = two_hosts.address(0), 29400
        launchers = [start_launcher(*_node_flags(2, node, master_addr, port, 1), "report.py", cwd=tmp_path,
                                    prefix=two_hosts.exec_prefix(node)) for node in (1, 0)]
        results = _finish(launchers)
    finally:
        sniffer.terminate()
        sniffer.wait(timeout=30)
    for returncode, stderr in results:
        assert returncode == 0, stderr
        assert "WARNING: DISTTORCH_SECRET is not set, so nothing proves who joins this job" in stderr
        assert "export DISTTORCH_SECRET=" in stderr
    secret = _reports(tmp_path, 2)[0]["DISTTORCH_SECRET"]
    wire = (tmp_path / "wire.bin").read_bytes()
    assert b'"kind": "start"' in wire  # the capture saw the rendezvous, where the secret used to travel
    assert secret.encode() not in wire
    _assert_nothing_left(two_hosts)


# Least squares on rank-specific data, gradients averaged with all_reduce: the weights after a few steps
# depend only on the ranks and world size, not on which host a rank ran. The arithmetic is numpy's so
# that only the launcher and the collective are under test here.
TRAINING_WORKER = """
    import json, os, sys
    import numpy as np
    import disttorch as torch
    import disttorch.distributed as dist
    dist.init_process_group()
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    features = np.array([rank + 1.0, 1.0, -float(rank)], dtype=np.float32)
    weights = np.zeros(3, dtype=np.float32)
    for step in range(5):
        gradient = 2 * (weights @ features - rank) * features
        shared = torch.from_numpy(gradient)
        dist.all_reduce(shared)
        weights -= 0.05 * shared.numpy() / world_size
    with open(f"{sys.argv[1]}_weights_{rank}.json", "w") as out:
        json.dump(weights.tolist(), out)
"""


@pytest.mark.timeout(120)
def test_training_across_two_hosts_matches_a_single_node_run(tmp_path, two_hosts):
    if not _collectives_available():
        pytest.skip("disttorch.distributed has no all_reduce yet")
    write_script(tmp_path, "train.py", TRAINING_WORKER)
    single = start_launcher("--nproc", "4", "train.py", "single", cwd=tmp_path)
    [(returncode, stderr)] = _finish([single])
    assert returncode == 0, stderr
    launchers = [start_launcher(*_node_flags(2, node, two_hosts.address(0), 29400, 2), "train.py", "spread",
                                cwd=tmp_path, prefix=two_hosts.exec_prefix(node)) for node in (0, 1)]
    for returncode, stderr in _finish(launchers):
        assert returncode == 0, stderr
    for rank in range(4):
        alone = json.loads((tmp_path / f"single_weights_{rank}.json").read_text())
        spread = json.loads((tmp_path / f"spread_weights_{rank}.json").read_text())
        assert spread == pytest.approx(alone, rel=1e-6)
    _assert_nothing_left(two_hosts)


@pytest.mark.timeout(90)
def test_killing_a_worker_on_one_host_stops_all_hosts(tmp_path, two_hosts):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    master_addr, port = two_hosts.address(0), 29400
    launchers = [start_launcher(*_node_flags(2, node, master_addr, port, 2), "sleeper.py", "--ignore-sigterm",
                                cwd=tmp_path, prefix=two_hosts.exec_prefix(node)) for node in (0, 1)]
    try:
        pids = read_pids(tmp_path, 4)
        os.kill(pids[3], signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "the workers on both hosts to be gone")
        results = _finish(launchers)
    finally:
        for launcher in launchers:
            launcher.kill()
    for returncode, stderr in results:
        assert returncode == 1
        root_row = next(line for line in stderr.splitlines() if "<- root cause" in line)
        assert root_row.split()[:2] == ["3", "1"] and "SIGKILL" in root_row
    _assert_nothing_left(two_hosts)


@pytest.mark.timeout(60)
def test_ctrl_c_on_node_0_stops_every_node(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    port = _free_port()
    launchers = [start_launcher(*_node_flags(2, node, "127.0.0.1", port, 1), "sleeper.py", "--ignore-sigterm",
                                cwd=tmp_path) for node in (0, 1)]
    try:
        pids = read_pids(tmp_path, 2)
        launchers[0].send_signal(signal.SIGINT)
        (master_code, master_err), (node_code, node_err) = _finish(launchers)
    finally:
        for launcher in launchers:
            launcher.kill()
    assert master_code == 128 + signal.SIGINT and "stopped by SIGINT" in master_err
    assert node_code == 1 and "node 0's launcher got SIGINT" in node_err
    assert not any(alive(pid) for pid in pids)


@pytest.mark.timeout(60)
def test_a_failure_on_one_node_restarts_every_node(tmp_path):
    # Node 0's worker finishes at once; node 1's fails on the first attempt only.
    write_script(tmp_path, "flaky.py", """
        import os, sys, time
        restart = os.environ["DISTTORCH_RESTART_COUNT"]
        with open(f"attempts_{os.environ['RANK']}", "a") as attempts:
            attempts.write(restart + "\\n")
        if os.environ["GROUP_RANK"] == "1" and restart == "0":
            time.sleep(0.5)
            sys.exit("node 1 fails once")
    """)
    port = _free_port()
    launchers = [start_launcher(*_node_flags(2, node, "127.0.0.1", port, 1), "--max-restarts", "1", "flaky.py",
                                cwd=tmp_path) for node in (0, 1)]
    for returncode, stderr in _finish(launchers):
        assert returncode == 0, stderr
        assert "restarting the worker group (1/1)" in stderr
    for rank in (0, 1):
        assert (tmp_path / f"attempts_{rank}").read_text().split() == ["0", "1"]


def _assert_nothing_left(hosts):
    assert hosts.pids() == []
    hosts.destroy()
    assert hosts.existing() == []
