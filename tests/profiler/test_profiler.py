"""torch.profiler on disttorch: op and backward timings, record_function ranges, tables, Chrome traces,
schedules and the TensorBoard trace handler."""
import glob
import json

import pytest

import disttorch
import disttorch.nn as nn
from disttorch.core import autograd as engine
from disttorch.profiler import (
    ProfilerAction, ProfilerActivity, profile, record_function, schedule, tensorboard_trace_handler,
)


def _model():
    disttorch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def _train_step(model, x):
    with record_function("forward_pass"):
        loss = model(x).pow(2).mean()
    loss.backward()
    return loss


def test_records_forward_ops_backward_nodes_and_user_ranges():
    model, x = _model(), disttorch.randn(5, 8)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        _train_step(model, x)
    averages = {event.key: event for event in prof.key_averages()}
    assert averages["disttorch::Linear"].count == 2
    assert averages["LinearBackward0"].count == 2
    assert averages["ReluBackward0"].count == 1
    forward = averages["forward_pass"]
    assert forward.count == 1
    inside = [e for e in prof.events() if e.kind == "cpu_op" and "Backward" not in e.name]
    # the user range holds the forward ops: its total covers theirs, its self time excludes them
    assert forward.cpu_time_total >= sum(e.cpu_time_total for e in inside)
    assert forward.self_cpu_time_total == pytest.approx(forward.cpu_time_total - sum(e.cpu_time_total for e in inside))
    shaped = {(e.key, e.input_shapes) for e in prof.key_averages(group_by_input_shape=True)}
    assert ("disttorch::Linear", str([[5, 8], [16, 8], [16]])) in shaped


def test_dispatch_is_untouched_when_no_profiler_records():
    plain_apply = engine.Function.__dict__["apply"]
    plain_run = engine.Function.__dict__["_run"]
    with profile() as outer:
        assert engine.Function.__dict__["apply"] is not plain_apply
        with profile() as inner:
            _model()(disttorch.randn(2, 8))
        assert engine.Function.__dict__["apply"] is not plain_apply  # the outer one still records
        _model()(disttorch.randn(2, 8))
    assert engine.Function.__dict__["apply"] is plain_apply
    assert engine.Function.__dict__["_run"] is plain_run
    assert inner.key_averages() and outer.key_averages()
    with record_function("nothing_records"):
        disttorch.ones(2) + 1


def test_table_sorts_limits_and_totals():
    model, x = _model(), disttorch.randn(5, 8)
    with profile() as prof:
        for _ in range(3):
            _train_step(model, x)
    averages = prof.key_averages()
    table = averages.table(sort_by="cpu_time_total", row_limit=3)
    lines = table.strip().splitlines()
    assert "Self CPU %" in lines[1] and "# of Calls" in lines[1]
    assert lines[-1].startswith("Self CPU time total:")
    body = lines[3:-2]
    largest = sorted(averages, key=lambda event: event.cpu_time_total, reverse=True)[:3]
    assert [row.split()[0] for row in body] == [event.key for event in largest]
    calls = {event.key: event.count for event in averages}
    assert calls["forward_pass"] == 3 and calls["LinearBackward0"] == 6
    by_self = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=0)
    assert "LinearBackward0" in by_self
    with pytest.raises(AttributeError, match="sort_by"):
        prof.key_averages().table(sort_by="bogus")


def test_chrome_trace_is_valid_json_with_complete_events(tmp_path):
    model, x = _model(), disttorch.randn(3, 8)
    with profile(record_shapes=True) as prof:
        _train_step(model, x)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    assert len(events) == len(prof.events())
    for event in events:
        assert event["ph"] == "X" and event["dur"] >= 0 and isinstance(event["ts"], float)
        assert {"name", "pid", "tid", "cat", "args"} <= set(event)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    names = {e["name"] for e in events}
    assert {"forward_pass", "disttorch::Linear", "LinearBackward0"} <= names


def test_results_before_the_window_closes_raise():
    with profile() as prof:
        with pytest.raises(RuntimeError, match="still recording"):
            prof.key_averages()


@pytest.mark.parametrize("kwargs", [dict(wait=1, warmup=1, active=2), dict(wait=0, warmup=2, active=1, repeat=2),
                                    dict(wait=2, warmup=1, active=3, repeat=1, skip_first=3)])
def test_schedule_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours = schedule(**kwargs)
    theirs = torch.profiler.schedule(**kwargs)
    assert [ours(step).name for step in range(25)] == [theirs(step).name for step in range(25)]


def test_schedule_windows_reach_the_trace_handler(tmp_path):
    model, x = _model(), disttorch.randn(4, 8)
    windows = []

    def on_ready(prof):
        windows.append(prof.step_num)
        tensorboard_trace_handler(str(tmp_path), worker_name="worker0")(prof)

    with profile(schedule=schedule(wait=1, warmup=1, active=2, repeat=2), on_trace_ready=on_ready) as prof:
        for _ in range(10):
            _train_step(model, x)
            prof.step()
    assert windows == [4, 8]  # as in torch: step() has already counted the step that closed the window
    files = sorted(glob.glob(str(tmp_path / "worker0.*.pt.trace.json")))
    assert len(files) == 2
    # a window holds the two active steps only
    assert prof.key_averages().table().count("\n") > 4
    assert {e.key: e.count for e in prof.key_averages()}["forward_pass"] == 2
    assert schedule(wait=0, warmup=1, active=1)(1) is ProfilerAction.RECORD_AND_SAVE


def test_cuda_activity_without_a_gpu_warns_and_profiles_the_cpu():
    with pytest.warns(UserWarning, match="CPU only"):
        prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    with prof:
        disttorch.ones(3).sum()
    assert prof.key_averages()


def test_autograd_profiler_spelling_after_a_bare_import():
    model, x = _model(), disttorch.randn(3, 8)
    with disttorch.autograd.profiler.profile(record_shapes=True) as prof:
        with disttorch.autograd.profiler.record_function("step"):
            model(x).sum().backward()
    assert "step" in prof.table(sort_by="self_cpu_time_total")
    assert prof.total_average().count == len(prof.function_events)
    with disttorch.autograd.profiler.profile(enabled=False) as idle:
        model(x)
    with pytest.raises(RuntimeError, match="recorded nothing"):
        idle.key_averages()
