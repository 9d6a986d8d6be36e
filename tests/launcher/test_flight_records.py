"""The flight recorder end to end: a 2-rank job under the launcher where rank 1 stops taking part, and the
failure summary built from the records the ranks wrote; plus the summary's lines from hand-made records."""

import json
import re
import signal

import pytest
from launch_helpers import launcher_env, run_launcher, start_launcher, wait_for, write_script

from disttorch.launcher.coordination import NodeOutcome, RoundResult, Verdict, decide
from disttorch.launcher.flight_records import TraceFolder, position
from disttorch.launcher.summary import failure_summary

# Five all_reduces after init's barrier (#1): rank 1 completes #2..#6, then never enters #7.
STALLING_JOB = """
    import os, sys, time
    from datetime import timedelta
    from pathlib import Path
    import disttorch
    import disttorch.distributed as dist

    how = sys.argv[1]
    # Both ranks imported before either starts the short timeout, so only the stall can run out of it.
    Path(f"imported_{os.environ['RANK']}").touch()
    deadline = time.monotonic() + 60
    while not (Path("imported_0").exists() and Path("imported_1").exists()) and time.monotonic() < deadline:
        time.sleep(0.01)
    dist.init_process_group("gloo", timeout=timedelta(seconds=4 if how == "sleep" else 120))
    values = disttorch.ones(4)
    for _ in range(5):
        dist.all_reduce(values)
    if dist.get_rank() == 1:
        # Rank 0 is inside #7 first, so its record shows it there however late the launcher stops it.
        while not Path("waiting").exists() and time.monotonic() < deadline + 60:
            time.sleep(0.01)
        if how == "exit":
            sys.exit(3)
        Path("stalled").touch()
        time.sleep(120)  # the launcher stops it once rank 0 failed (or on Ctrl-C)
    work = dist.all_reduce(values, async_op=True)  # started once this returns: its data is on the way
    Path("waiting").touch()
    work.wait()
"""

ENTRY_FIELDS = {"record_id", "group_id", "group_ranks", "seq", "op", "input_sizes", "input_dtypes", "reduce_op",
                "state", "time_created_ns", "time_started_ns", "time_ended_ns", "error", "blamed_ranks",
                "peer", "tag"}


def _records(folder):
    records = {}
    for path in folder.glob("disttorch-trace-*.json"):
        record = json.loads(path.read_text())
        records[record["rank"]] = record
    return records


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["sleep", "exit"])
def test_summary_shows_where_each_rank_was_from_their_records(tmp_path, how):
    write_script(tmp_path, "stall.py", STALLING_JOB)
    traces = tmp_path / "traces"
    # A grace period long enough for the stopped rank to write its record on SIGTERM, however busy the machine.
    done = run_launcher("--grace-period", "30", "--nproc", "2", "stall.py", how, cwd=tmp_path, timeout=80,
                        env=launcher_env(DISTTORCH_TRACE_DUMP_DIR=str(traces), DISTTORCH_TRACE_BUFFER_SIZE="4"))
    assert done.returncode == 1, done.stderr
    summary = done.stderr[done.stderr.index("job FAILED"):]
    lines = {int(rank): text for rank, text in re.findall(r"^  rank (\d): (.*)$", summary, re.MULTILINE)}
    assert "where each rank was (flight recorder):" in summary
    if how == "sleep":
        assert re.match(r"failed in all_reduce #7 after [\d.]+ s \(CollectiveTimeout, blaming rank 1\); "
                        r"last completed all_reduce #6; then it exited \(exit code 1\)$", lines[0]), summary
        assert lines[1] == "last completed all_reduce #6; nothing pending; then it was stopped by the launcher", summary
        # The rank that timed out named its record in the error and on stderr.
        assert re.search(r"flight record of rank 0: \S+/traces/disttorch-trace-rank0\.json", summary), summary
    else:
        # Rank 0 either saw rank 1 leave or was stopped by the launcher while still waiting for it.
        assert re.match(r"(failed in all_reduce #7 .*RankFailure, blaming rank 1|waiting in all_reduce #7 for)",
                        lines[0]), summary
        assert lines[1] == "last completed all_reduce #6; nothing pending; then it exited (exit code 3)", summary

    # The records themselves: valid JSON, DISTTORCH_TRACE_BUFFER_SIZE=4 entries each, every field there.
    records = _records(traces)
    assert set(records) == {0, 1}
    for rank, record in records.items():
        assert record["world_size"] == 2 and record["buffer_size"] == 4
        entries = record["entries"]
        assert len(entries) == 4 and all(set(entry) == ENTRY_FIELDS for entry in entries)
        last_seq = 7 if rank == 0 else 6
        assert [entry["seq"] for entry in entries] == list(range(last_seq - 3, last_seq + 1))
        assert record["recorded"] == last_seq
        for entry in entries:
            assert (entry["op"], entry["input_sizes"], entry["input_dtypes"]) == ("all_reduce", [[4]], ["float32"])
            assert entry["group_ranks"] == [0, 1] and entry["reduce_op"] == "sum"
        assert all(entry["state"] == "completed" and entry["time_ended_ns"] >= entry["time_started_ns"]
                   for entry in entries[:3])
    assert records[1]["entries"][-1]["state"] == "completed"
    if how == "sleep":
        assert records[1]["reason"] == "SIGTERM"
        failed = records[0]["entries"][-1]
        assert failed["state"] == "failed" and failed["blamed_ranks"] == [1]
        assert failed["error"].startswith("CollectiveTimeout: all_reduce #7")
    else:
        assert records[1]["reason"] == "exit"


@pytest.mark.timeout(90)
def test_ctrl_c_on_a_hung_job_shows_where_each_rank_was(tmp_path):
    write_script(tmp_path, "stall.py", STALLING_JOB)
    launcher = start_launcher("--grace-period", "30", "--nproc", "2", "stall.py", "hang", cwd=tmp_path)
    try:
        wait_for(lambda: (tmp_path / "stalled").exists() and (tmp_path / "waiting").exists(), 60, "the hang")
        launcher.send_signal(signal.SIGINT)
        _, stderr = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGINT, stderr
    summary = stderr[stderr.index("stopped by SIGINT"):]
    lines = {int(rank): text for rank, text in re.findall(r"^  rank (\d): (.*)$", summary, re.MULTILINE)}
    assert re.match(r"waiting in all_reduce #7 for [\d.]+ s; last completed all_reduce #6; "
                    r"then it was stopped by the launcher$", lines[0]), summary
    assert lines[1] == "last completed all_reduce #6; nothing pending; then it was stopped by the launcher", summary


def _entry(record_id, seq, state, **extra):
    entry = {"record_id": record_id, "group_id": 0, "seq": seq, "op": "all_reduce", "state": state,
             "time_created_ns": 0, "time_started_ns": 1_000_000_000, "time_ended_ns": None, "error": None,
             "blamed_ranks": []}
    entry.update(extra)
    return entry


def test_position_names_the_pending_collective_and_the_last_completed_one():
    waiting = {"dumped_at_ns": 31_000_000_000, "entries": [
        _entry(0, 40, "completed", time_ended_ns=2), _entry(1, 41, "started"),
        _entry(2, 3, "scheduled", group_id=2, op="broadcast")]}
    assert position(waiting, "was stopped by the launcher") == (
        "waiting in all_reduce #41 for 30.0 s; last completed all_reduce #40; then it was stopped by the launcher")
    queued = {"dumped_at_ns": 5, "entries": [_entry(0, 1, "scheduled", group_id=3, time_started_ns=None)]}
    assert position(queued, "exited (exit code 1)") == (
        "all_reduce #1 of group 3 queued, not started; no collective completed; then it exited (exit code 1)")
    assert position(None, "was killed by SIGKILL") == "no flight record (it was killed by SIGKILL before writing one)"
    off = {"dumped_at_ns": 5, "buffer_size": 0, "entries": []}
    assert position(off, "exited (exit code 1)") == (
        "no collective recorded (DISTTORCH_TRACE_BUFFER_SIZE=0); then it exited (exit code 1)")


def test_positions_travel_between_nodes_and_reach_the_summary_in_rank_order():
    results = [RoundResult(1, NodeOutcome.STOPPED, positions=[[3, "three"], [2, "two"]]),
               RoundResult(0, NodeOutcome.FAILED, positions=[[1, "one"], [0, "zero"]])]
    verdict = Verdict.from_json(json.loads(json.dumps(decide(
        [RoundResult.from_json(json.loads(json.dumps(result.to_json()))) for result in results], 0, 0, 0).to_json())))
    assert verdict.positions == [[0, "zero"], [1, "one"], [2, "two"], [3, "three"]]
    summary = failure_summary([], "why", True, verdict.positions)
    assert "where each rank was (flight recorder):\n  rank 0: zero\n  rank 1: one\n  rank 2: two" in summary


def test_records_of_other_processes_in_a_users_folder_are_skipped(tmp_path):
    for pid, dumped in ((11, 5), (11, 9), (12, 7)):
        (tmp_path / f"disttorch-trace-rank0-pid{pid}-{dumped}.json").write_text(
            json.dumps({"pid": pid, "rank": 0, "dumped_at_ns": dumped, "entries": []}))
    (tmp_path / "disttorch-trace-rank1-pid13.json").write_text("{not json")
    folder = TraceFolder({"DISTTORCH_TRACE_DUMP_DIR": str(tmp_path)})
    records = folder.read({11: 0, 13: 1})
    assert list(records) == [0] and records[0]["dumped_at_ns"] == 9
    folder.remove()
    assert tmp_path.is_dir()  # the user's folder stays
    owned = TraceFolder({})
    assert not owned.path.exists() and owned.read({}) == {}  # workers create it when they write
    owned.path.mkdir()
    owned.remove()
    assert not owned.path.exists()
