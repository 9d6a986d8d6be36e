"""The launcher on one node, run as a real subprocess with small worker scripts."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from launch_helpers import (
    SLEEPER,
    alive,
    launcher_command,
    launcher_env,
    read_pids,
    run_launcher,
    start_launcher,
    wait_for,
    write_script,
)

ENV_DUMP = """
    import json, os
    names = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
             "DISTTORCH_RESTART_COUNT", "DISTTORCH_SECRET", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "MKL_NUM_THREADS"]
    with open(f"env_{os.environ['RANK']}.json", "w") as out:
        json.dump({name: os.environ.get(name) for name in names}, out)
"""


def _env_of_ranks(directory, count):
    return [json.loads((directory / f"env_{rank}.json").read_text()) for rank in range(count)]


@pytest.mark.timeout(60)
def test_each_rank_gets_its_environment(tmp_path):
    write_script(tmp_path, "dump.py", ENV_DUMP)
    done = run_launcher("--nproc", "3", "dump.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    envs = _env_of_ranks(tmp_path, 3)
    for rank, env in enumerate(envs):
        assert env["RANK"] == env["LOCAL_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == env["LOCAL_WORLD_SIZE"] == "3"
        assert env["GROUP_RANK"] == "0"
        assert env["MASTER_ADDR"] == "127.0.0.1"
        assert env["DISTTORCH_RESTART_COUNT"] == "0"
        assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert len({env["MASTER_PORT"] for env in envs}) == 1 and int(envs[0]["MASTER_PORT"]) > 0
    assert len({env["DISTTORCH_SECRET"] for env in envs}) == 1 and len(envs[0]["DISTTORCH_SECRET"]) >= 32


@pytest.mark.timeout(60)
def test_user_settings_win_and_the_secret_is_new_per_job(tmp_path):
    write_script(tmp_path, "dump.py", ENV_DUMP)
    first = run_launcher("--nproc", "1", "dump.py", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    first_secret = _env_of_ranks(tmp_path, 1)[0]["DISTTORCH_SECRET"]
    second = run_launcher("--nproc", "1", "dump.py", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert _env_of_ranks(tmp_path, 1)[0]["DISTTORCH_SECRET"] != first_secret
    chosen = run_launcher("--nproc", "1", "dump.py", cwd=tmp_path,
                          env=launcher_env(OMP_NUM_THREADS="4", DISTTORCH_SECRET="our-secret"))
    assert chosen.returncode == 0, chosen.stderr
    env = _env_of_ranks(tmp_path, 1)[0]
    assert env["OMP_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "1"
    assert env["DISTTORCH_SECRET"] == "our-secret"


@pytest.mark.timeout(60)
def test_output_lines_carry_the_rank_and_script_args_pass_through(tmp_path):
    write_script(tmp_path, "talk.py", """
        import os, sys
        print("out", sys.argv[1:])
        print("err", file=sys.stderr)
    """)
    done = run_launcher("--nproc", "2", "talk.py", "--epochs", "3", "-m", "x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for rank in range(2):
        assert f"[rank {rank}] out ['--epochs', '3', '-m', 'x']" in done.stdout.splitlines()
        assert f"[rank {rank}] err" in done.stderr.splitlines()


@pytest.mark.timeout(60)
def test_given_master_port_reaches_the_workers(tmp_path):
    write_script(tmp_path, "dump.py", ENV_DUMP)
    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    done = run_launcher("--nproc", "2", "--master-port", str(port), "dump.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {env["MASTER_PORT"] for env in _env_of_ranks(tmp_path, 2)} == {str(port)}


TALK = """
    import os, sys
    print("out of", os.environ["RANK"])
    print("err of", os.environ["RANK"], file=sys.stderr)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tee", [[], ["--tee"], ["--tee", "3"], ["--tee=3"]],
                         ids=["no-tee", "flag", "torchrun", "equals"])
def test_log_dir_writes_one_file_per_rank_and_stream(tmp_path, tee):
    write_script(tmp_path, "talk.py", TALK)
    done = run_launcher("--nproc", "2", *tee, "--log-dir", "logs", "talk.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for rank in range(2):
        assert (tmp_path / "logs" / f"rank_{rank}.stdout.log").read_text() == f"out of {rank}\n"
        assert (tmp_path / "logs" / f"rank_{rank}.stderr.log").read_text() == f"err of {rank}\n"
        assert (f"[rank {rank}] out of {rank}" in done.stdout) == bool(tee)


@pytest.mark.timeout(60)
def test_torchrun_redirects_and_tee_per_stream_and_rank(tmp_path):
    write_script(tmp_path, "talk.py", TALK)
    # Local rank 0: stdout to its file only; rank 1: stderr to its file and the console. The rest: console.
    done = run_launcher("--nproc", "2", "--log-dir", "logs", "--redirects", "0:1", "--tee", "1:2", "talk.py",
                        cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == ["rank_0.stdout.log", "rank_1.stderr.log"]
    assert (tmp_path / "logs" / "rank_1.stderr.log").read_text() == "err of 1\n"
    assert "[rank 0] out of 0" not in done.stdout and "[rank 1] out of 1" in done.stdout
    assert "[rank 0] err of 0" in done.stderr and "[rank 1] err of 1" in done.stderr


@pytest.mark.timeout(60)
def test_nonzero_exit_fails_the_job_with_a_summary(tmp_path):
    write_script(tmp_path, "exit3.py", """
        import os, sys, time
        if os.environ["RANK"] == "1":
            print("giving up", file=sys.stderr)
            sys.exit(3)
        time.sleep(120)
    """)
    done = run_launcher("--nproc", "3", "exit3.py", cwd=tmp_path)
    assert done.returncode == 1
    assert "job FAILED" in done.stderr
    root_row = next(line for line in done.stderr.splitlines() if "<- root cause" in line)
    assert root_row.split()[0] == "1" and "exit code 3" in root_row
    assert "rank 1 (root cause): last lines of stderr:\n    giving up" in done.stderr


@pytest.mark.timeout(60)
def test_a_raising_worker_shows_its_traceback(tmp_path):
    write_script(tmp_path, "boom.py", """
        import os
        def step():
            raise ValueError("loss became NaN at step 7")
        if os.environ["RANK"] == "0":
            step()
    """)
    done = run_launcher("--nproc", "2", "boom.py", cwd=tmp_path)
    assert done.returncode == 1
    assert "[rank 0] Traceback (most recent call last):" in done.stderr
    assert "[rank 0] ValueError: loss became NaN at step 7" in done.stderr
    summary = done.stderr.split("job FAILED", 1)[1]
    assert "    ValueError: loss became NaN at step 7" in summary


EARLY_EXIT = """
    import os, sys, time
    from pathlib import Path
    if os.environ["RANK"] == "1":
        Path("pid_1").write_text(str(os.getpid()))
        sys.exit(0)
    while not Path("pid_1").exists() or not Path("pid_1").read_text():
        time.sleep(0.01)
    stat = Path("/proc/" + Path("pid_1").read_text() + "/stat")
    # Fail only once rank 1 has really exited (a zombie awaiting the launcher, or reaped).
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
        time.sleep(0.01)
    raise RuntimeError(%r)
"""


@pytest.mark.timeout(60)
def test_a_rank_that_exits_0_early_is_the_root_cause_when_the_failure_names_it(tmp_path):
    # The shape of the error rank 0 gets from disttorch when rank 1 skips its last collectives.
    write_script(tmp_path, "early.py", EARLY_EXIT % "rank 1 left the job (destroy_process_group or exit) before "
                 "sending its part of all_reduce #2 of group 0; rank 0 cannot finish it")
    done = run_launcher("--nproc", "2", "early.py", cwd=tmp_path)
    assert done.returncode == 1
    assert "job FAILED: rank 1 exited (code 0) while the others still needed it" in done.stderr
    root_row = next(line for line in done.stderr.splitlines() if "<- root cause" in line)
    assert root_row.split()[0] == "1" and "exit code 0 before the others" in root_row


@pytest.mark.timeout(60)
def test_a_rank_that_exits_0_is_no_suspect_for_an_unrelated_failure(tmp_path):
    write_script(tmp_path, "early.py", EARLY_EXIT % "No space left on device while saving the checkpoint")
    done = run_launcher("--nproc", "2", "early.py", cwd=tmp_path)
    assert done.returncode == 1
    rows = [row for row in done.stderr.split("job FAILED", 1)[1].splitlines() if "exit code" in row]
    assert len(rows) == 1
    assert rows[0].split()[0] == "0" and "exit code 1" in rows[0] and "<- root cause" in rows[0]


@pytest.mark.timeout(60)
def test_sigkilled_worker_stops_the_others_and_is_named(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    launcher = start_launcher("--nproc", "3", "sleeper.py", "--ignore-sigterm", cwd=tmp_path)
    try:
        pids = read_pids(tmp_path, 3)
        os.kill(pids[1], signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in pids), 5, "all workers to be gone within 5 s")
        _, stderr = launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    assert launcher.returncode == 1
    root_row = next(line for line in stderr.splitlines() if "<- root cause" in line)
    assert root_row.split()[:1] == ["1"] and str(pids[1]) in root_row and "SIGKILL (likely out of memory)" in root_row
    assert sum("<- root cause" in line for line in stderr.splitlines()) == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_everything(tmp_path, sig):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    # One worker ignores SIGTERM: it must still be gone, by SIGKILL after the grace period.
    launcher = start_launcher("--nproc", "2", "sleeper.py", "--ignore-sigterm", cwd=tmp_path)
    try:
        pids = read_pids(tmp_path, 2)
        launcher.send_signal(sig)
        _, stderr = launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + sig
    assert f"stopped by {signal.Signals(sig).name}" in stderr
    assert not any(alive(pid) for pid in pids)


@pytest.mark.timeout(30)
def test_a_second_ctrl_c_does_not_wait_for_the_grace_period(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    # The grace period outlasts the test's timeout: only the second signal can end the launcher in time.
    launcher = start_launcher("--nproc", "2", "--grace-period", "600", "sleeper.py", "--ignore-sigterm",
                              cwd=tmp_path)
    try:
        pids = read_pids(tmp_path, 2)
        launcher.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping" in launcher.stderr.readline() or launcher.poll() is not None, 10,
                 "the launcher to begin stopping")
        launcher.send_signal(signal.SIGINT)
        launcher.communicate(timeout=20)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGINT
    assert not any(alive(pid) for pid in pids)


@pytest.mark.timeout(60)
def test_killing_the_launcher_takes_workers_and_their_children_along(tmp_path):
    write_script(tmp_path, "spawner.py", """
        import os, subprocess, time
        from pathlib import Path
        child = subprocess.Popen(["sleep", "120"])
        Path(f"pid_{os.environ['RANK']}").write_text(f"{os.getpid()}\\n")
        Path(f"child_{os.environ['RANK']}").write_text(f"{child.pid}\\n")
        time.sleep(120)
    """)
    launcher = start_launcher("--nproc", "2", "spawner.py", cwd=tmp_path)
    try:
        pids = read_pids(tmp_path, 2)
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    children = [int((tmp_path / f"child_{rank}").read_text()) for rank in range(2)]
    assert not any(alive(pid) for pid in pids + children)


@pytest.mark.timeout(60)
def test_sigkill_to_the_launcher_leaves_no_orphans(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    launcher = start_launcher("--nproc", "2", "sleeper.py", "--ignore-sigterm", cwd=tmp_path)
    try:
        pids = read_pids(tmp_path, 2)
        launcher.kill()
        launcher.communicate(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "the parent-death signal to kill the workers")
    finally:
        launcher.kill()


RESUMING_WORKER = """
    import os, sys
    from pathlib import Path
    restart = int(os.environ["DISTTORCH_RESTART_COUNT"])
    rank = os.environ["RANK"]
    checkpoint = Path(f"checkpoint_{rank}")
    epoch = int(checkpoint.read_text()) if checkpoint.exists() else 0
    with open(f"attempts_{rank}", "a") as attempts:
        attempts.write(f"{restart}:{epoch}\\n")
    while epoch < 4:
        epoch += 1
        checkpoint.write_text(str(epoch))
        if rank == "1" and epoch == 2 * (restart + 1) and epoch < 4:
            sys.exit(f"crash in epoch {epoch}")
"""


@pytest.mark.timeout(60)
def test_restarts_resume_from_the_checkpoint(tmp_path):
    write_script(tmp_path, "resume.py", RESUMING_WORKER)
    done = run_launcher("--nproc", "2", "--max-restarts", "3", "resume.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # Rank 1 crashes after epoch 2; the group restarts, both ranks resume from their checkpoints.
    assert (tmp_path / "attempts_1").read_text().split() == ["0:0", "1:2"]
    assert (tmp_path / "attempts_0").read_text().split()[0] == "0:0"
    assert (tmp_path / "attempts_0").read_text().split()[1].startswith("1:")
    assert (tmp_path / "checkpoint_0").read_text() == (tmp_path / "checkpoint_1").read_text() == "4"
    assert "restarting the worker group (1/3)" in done.stderr


@pytest.mark.timeout(60)
def test_restarts_run_out(tmp_path):
    write_script(tmp_path, "count.py", """
        import os, sys
        with open("attempts", "a") as attempts:
            attempts.write(os.environ["DISTTORCH_RESTART_COUNT"] + "\\n")
        sys.exit(2)
    """)
    done = run_launcher("--nproc", "1", "--max-restarts", "2", "count.py", cwd=tmp_path)
    assert done.returncode == 1
    assert (tmp_path / "attempts").read_text().split() == ["0", "1", "2"]
    assert "job FAILED" in done.stderr


@pytest.mark.timeout(60)
def test_port_in_use_is_named(tmp_path):
    write_script(tmp_path, "sleeper.py", SLEEPER)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_launcher("--nproc", "2", "--master-port", str(port), "sleeper.py", cwd=tmp_path)
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "--master-port" in done.stderr
    assert not list(tmp_path.glob("pid_*"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entrypoint", [["missing.py"], ["-m", "missing_module_for_launcher_test"]])
def test_nothing_to_run_is_a_clear_error(tmp_path, entrypoint):
    done = run_launcher("--nproc", "2", *entrypoint, cwd=tmp_path)
    assert done.returncode == 1
    assert entrypoint[-1] in done.stderr
    assert "no workers were started" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_module_mode_runs_like_python_dash_m(tmp_path):
    write_script(tmp_path, "my_trainer.py", """
        import os, sys
        print("module", __name__, os.environ["RANK"], sys.argv[1:])
    """)
    done = run_launcher("--nproc", "2", "-m", "my_trainer", "--lr", "0.1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[rank 1] module __main__ 1 ['--lr', '0.1']" in done.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flags, complaint", [
    (["--tee"], "--log-dir"),
    (["--redirects", "3"], "--log-dir"),
    (["--log-dir", "logs", "--redirects", "4"], "0 (none), 1 (stdout), 2 (stderr), 3 (both)"),
    (["--nprocs", "2"], "No such option '--nprocs'. Did you mean '--nproc'?"),
    (["--nproc_per_nodes", "2"], "No such option '--nproc_per_nodes'. Did you mean '--nproc-per-node'?"),
    (["--nproc", "2", "--rdzv-backend", "c10d"], "No such option '--rdzv-backend'"),
    (["--nnodes", "2", "--node-rank", "2"], "--node-rank 2"),
    (["--nproc", "0"], "--nproc"),
    (["--nproc", "many"], "auto"),
])
def test_usage_errors(tmp_path, flags, complaint):
    write_script(tmp_path, "noop.py", "")
    done = run_launcher(*flags, "noop.py", cwd=tmp_path)
    assert done.returncode == 2
    assert complaint in done.stderr


@pytest.mark.timeout(60)
def test_python_dash_m_alias(tmp_path):
    write_script(tmp_path, "dump.py", ENV_DUMP)
    # A user's own launcher.py in the working directory must not shadow ours.
    write_script(tmp_path, "launcher.py", "raise SystemExit('the user launcher.py was imported')")
    done = subprocess.run([sys.executable, "-m", "disttorch.distributed.run", "--nproc", "2", "dump.py"],
                          cwd=tmp_path, env=launcher_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [env["RANK"] for env in _env_of_ranks(tmp_path, 2)] == ["0", "1"]


@pytest.mark.timeout(60)
def test_carriage_return_progress_lines_keep_their_prefix(tmp_path):
    write_script(tmp_path, "progress.py", """
        import sys
        sys.stdout.write("step 1/2\\rstep 2/2\\n")
        sys.stdout.write("no newline at the end")
    """)
    # Bytes, not text: universal newlines would turn the "\r" into "\n".
    done = subprocess.run(launcher_command("--nproc", "1", "progress.py"), cwd=tmp_path, env=launcher_env(),
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"[rank 0] step 1/2\r[rank 0] step 2/2\n[rank 0] no newline at the end\n"


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


@pytest.mark.timeout(60)
def test_finished_workers_are_reaped_while_others_run(tmp_path):
    write_script(tmp_path, "uneven.py", """
        import os, time
        from pathlib import Path
        Path(f"pid_{os.environ['RANK']}").write_text(f"{os.getpid()}\\n")
        if os.environ["RANK"] == "1":
            time.sleep(120)
    """)
    launcher = start_launcher("--nproc", "2", "uneven.py", cwd=tmp_path)
    if not Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").exists():
        launcher.kill()
        launcher.wait()
        pytest.skip("this kernel does not list a process's children in /proc")
    try:
        early, late = read_pids(tmp_path, 2)
        wait_for(lambda: _children(launcher.pid) == [late], 10, "the finished worker to be reaped")
        assert alive(late)
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=30)


@pytest.mark.timeout(60)
def test_installed_console_script(tmp_path):
    command = shutil.which("disttorch-launch")
    if command is None:
        pytest.skip("disttorch-launch is not installed (pip install -e .)")
    write_script(tmp_path, "dump.py", ENV_DUMP)
    done = subprocess.run([command, "--nproc", "2", "dump.py"], cwd=tmp_path, env=launcher_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [env["RANK"] for env in _env_of_ranks(tmp_path, 2)] == ["0", "1"]
