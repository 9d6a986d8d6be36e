"""The flight recorder's ring, its setting, and dump_flight_recorder() in a real process."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from comm_harness import REPO, assert_all_ok, finish_job, free_port, reports, start_job

from disttorch.comm import flight_recorder
from disttorch.comm.errors import CollectiveTimeout, RankFailure


def test_ring_keeps_the_last_n_collectives_oldest_first():
    ring = flight_recorder.FlightRecorder(3)
    entries = [ring.record(0, [0, 1], seq, "all_reduce", ((seq, 2),), (np.float32,), "sum")
               for seq in range(1, 6)]
    flight_recorder.started(entries[3])
    flight_recorder.started(entries[4])
    flight_recorder.completed(entries[3])
    flight_recorder.failed(entries[4], RankFailure("rank 1 died", 1))
    kept = ring.entries()
    assert [entry["seq"] for entry in kept] == [3, 4, 5] and ring.recorded() == 5
    assert [entry["state"] for entry in kept] == ["scheduled", "completed", "failed"]
    assert kept[0]["input_sizes"] == [[3, 2]] and kept[0]["input_dtypes"] == ["float32"]
    assert kept[2]["blamed_ranks"] == [1] and kept[2]["error"] == "RankFailure: rank 1 died"
    assert kept[1]["time_ended_ns"] >= kept[1]["time_started_ns"] >= kept[1]["time_created_ns"]


def test_zero_slots_record_nothing():
    ring = flight_recorder.FlightRecorder(0)
    entry = ring.record(0, [0], 1, "barrier", ((),), (np.uint8,), None)
    flight_recorder.started(entry)
    flight_recorder.failed(entry, RuntimeError("x"))
    assert entry is None and ring.entries() == [] and ring.recorded() == 0


def test_timeouts_blame_the_missing_ranks():
    assert flight_recorder.blamed_ranks(CollectiveTimeout("late", [2, 3])) == [2, 3]
    assert flight_recorder.blamed_ranks(CollectiveTimeout("late")) == []
    assert flight_recorder.blamed_ranks(RuntimeError("other")) == []


@pytest.mark.parametrize("text", ["-1", "lots"])
def test_a_bad_buffer_size_names_the_variable(text):
    with pytest.raises(ValueError, match="DISTTORCH_TRACE_BUFFER_SIZE"):
        flight_recorder.buffer_size_from_env({"DISTTORCH_TRACE_BUFFER_SIZE": text})
    assert flight_recorder.buffer_size_from_env({}) == flight_recorder.DEFAULT_BUFFER_SIZE
    assert flight_recorder.buffer_size_from_env({"DISTTORCH_TRACE_BUFFER_SIZE": "7"}) == 7


ON_DEMAND = """
    import sys
    import disttorch
    import disttorch.distributed as dist

    dist.init_process_group("gloo")
    values = disttorch.ones(2, 3, dtype=disttorch.float64)
    for _ in range(4):
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    dist.broadcast(values, src=0)
    print(dist.dump_flight_recorder(sys.argv[1] if len(sys.argv) > 1 else None))
    dist.destroy_process_group()
"""


def _run_alone(tmp_path, buffer_size, *args):
    env = dict(os.environ, RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               PYTHONPATH=str(REPO), DISTTORCH_TRACE_BUFFER_SIZE=buffer_size,
               DISTTORCH_TRACE_DUMP_DIR=str(tmp_path / "traces"))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(ON_DEMAND), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.timeout(90)
def test_dump_on_demand_writes_the_last_collectives_as_json(tmp_path):
    path = _run_alone(tmp_path, "3", str(tmp_path / "mine.json"))
    assert path == str(tmp_path / "mine.json")
    record = json.loads((tmp_path / "mine.json").read_text())
    assert record["reason"] == "dump_flight_recorder()" and record["rank"] == 0 and record["recorded"] == 6
    entries = record["entries"]
    assert [(entry["op"], entry["seq"]) for entry in entries] == [("all_reduce", 4), ("all_reduce", 5),
                                                                  ("broadcast", 6)]
    assert all(entry["state"] == "completed" for entry in entries)
    assert entries[0]["input_sizes"] == [[2, 3]] and entries[0]["input_dtypes"] == ["float64"]
    assert entries[0]["reduce_op"] == "max" and entries[2]["reduce_op"] is None
    # With DISTTORCH_TRACE_DUMP_DIR set the rank also wrote its record when it exited.
    at_exit = json.loads((tmp_path / "traces" / "disttorch-trace-rank0.json").read_text())
    assert at_exit["reason"] == "exit" and at_exit["entries"][-1]["op"] == "broadcast"


@pytest.mark.timeout(90)
def test_zero_buffer_size_turns_recording_off(tmp_path):
    path = _run_alone(tmp_path, "0")
    assert os.path.dirname(path) == str(tmp_path / "traces")
    record = json.loads(open(path).read())
    assert record["buffer_size"] == 0 and record["entries"] == []


@pytest.mark.timeout(90)
def test_point_to_point_sends_and_receives_are_recorded_with_peer_and_tag(tmp_path):
    procs, _ = start_job("p2p_record", 2, env={"DISTTORCH_TRACE_DUMP_DIR": str(tmp_path)})
    results = finish_job(procs, timeout=60)
    assert_all_ok(results)
    error = reports(results[1][1])[0]["error"]
    assert error is not None and error["type"] == "CollectiveTimeout", error
    assert str(tmp_path / "disttorch-trace-rank1.json") in error["message"], error
    # Rank 1 wrote at the failure and again at exit; the later file holds the all-clear send too.
    # (init_process_group's own barrier is collective #1; the point-to-point ops count apart.)
    waiting = json.loads((tmp_path / "disttorch-trace-rank1.json").read_text())["entries"][1:]
    assert [(e["op"], e["seq"], e["peer"], e["tag"], e["state"]) for e in waiting] == [
        ("recv", 1, 0, 5, "completed"), ("recv", 2, 0, 5, "completed"),
        ("recv", 3, 0, 5, "failed"), ("send", 4, 0, 9, "completed")]
    assert waiting[2]["blamed_ranks"] == [0] and waiting[2]["input_sizes"] == [[3]]
    assert flight_recorder.where(waiting[:3], waiting[2]["time_ended_ns"]).startswith(
        "failed in recv #3 from rank 0 (tag 5) after ")
    sender = json.loads((tmp_path / "disttorch-trace-rank0.json").read_text())["entries"][1:]
    assert [(e["op"], e["peer"], e["tag"], e["state"]) for e in sender] == [
        ("send", 1, 5, "completed"), ("send", 1, 5, "completed"), ("recv", 1, 9, "completed")]
    assert sender[0]["reduce_op"] is None and sender[0]["input_dtypes"] == ["float32"]
