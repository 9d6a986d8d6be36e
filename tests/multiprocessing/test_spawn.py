"""torch.multiprocessing on disttorch: spawn's contract, its failures, and the DDP tutorial end to end."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import disttorch
import disttorch.multiprocessing as mp

import spawn_targets

HERE = os.path.dirname(os.path.abspath(__file__))


def test_spawn_runs_fn_with_the_process_index(tmp_path):
    assert mp.spawn(spawn_targets.write_index, args=(str(tmp_path), "ok"), nprocs=3) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.ok", "1.ok", "2.ok"]


def test_a_raising_child_surfaces_its_traceback(tmp_path):
    with pytest.raises(mp.ProcessRaisedException) as info:
        mp.spawn(spawn_targets.fail_on_one, args=(str(tmp_path),), nprocs=2)
    assert info.value.error_index == 1
    assert "-- Process 1 terminated with the following error:" in str(info.value)
    assert "ValueError: child 1 refuses" in str(info.value)
    assert "fail_on_one" in str(info.value)  # the child's own frames, not the parent's


def test_exit_codes_and_signals_become_process_exited_exceptions():
    with pytest.raises(mp.ProcessExitedException, match="process 0 terminated with exit code 3") as info:
        mp.spawn(spawn_targets.exit_with_code, args=(3,), nprocs=2)
    assert info.value.exit_code == 3
    with pytest.raises(mp.ProcessExitedException, match="terminated with signal SIGKILL") as info:
        mp.spawn(spawn_targets.kill_self, nprocs=2)
    assert info.value.signal_name == "SIGKILL" and info.value.error_index == 1


def test_a_failure_stops_the_children_still_running(tmp_path):
    context = mp.spawn(spawn_targets.wait_forever, args=(str(tmp_path),), nprocs=2, join=False)
    with pytest.raises(mp.ProcessRaisedException, match="first child fails"):
        while not context.join(grace_period=1):
            pass
    assert all(not p.is_alive() for p in context.processes)


def test_join_false_returns_a_context_with_pids(tmp_path):
    context = mp.start_processes(spawn_targets.write_index, args=(str(tmp_path), "x"), nprocs=2, join=False,
                                 start_method="fork")
    assert len(context.pids()) == 2
    while not context.join():
        pass
    assert context.join() is True


def test_queue_carries_tensors_between_processes():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    children = [ctx.Process(target=spawn_targets.put_tensor, args=(i, queue)) for i in range(2)]
    for child in children:
        child.start()
    got = dict(queue.get(timeout=120) for _ in children)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert {k: v.tolist() for k, v in got.items()} == {0: [0.0, 0.0], 1: [1.0, 1.0]}


def test_start_methods_and_sharing_strategy_are_torchs():
    assert mp.get_start_method(allow_none=True) in (None, "fork", "spawn", "forkserver")
    assert mp.cpu_count() >= 1
    assert mp.get_sharing_strategy() == "file_descriptor"
    assert mp.get_all_sharing_strategies() == {"file_descriptor", "file_system"}
    with pytest.raises(ValueError):
        mp.set_sharing_strategy("carrier_pigeon")
    torch = pytest.importorskip("torch")
    import torch.multiprocessing as tmp
    assert issubclass(mp.ProcessRaisedException, Exception)
    assert [c.__name__ for c in mp.ProcessExitedException.__mro__[:3]] == [
        c.__name__ for c in tmp.ProcessExitedException.__mro__[:3]]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_tutorial_with_mp_spawn_trains_in_lockstep(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(HERE, "ddp_tutorial.py"), str(tmp_path), str(_free_port())],
                            capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [disttorch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, value in ranks[0]["state"].items():
        np.testing.assert_array_equal(value.numpy(), ranks[1]["state"][name].numpy())

    # The same three steps in one process on the gradients averaged over both ranks' data.
    sys.path.insert(0, HERE)
    try:
        import ddp_tutorial
    finally:
        sys.path.remove(HERE)
    disttorch.manual_seed(0)
    model = ddp_tutorial.ToyModel()
    optimizer = disttorch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        loss = sum(disttorch.nn.functional.mse_loss(model(r["inputs"]), r["labels"]) for r in ranks) / 2
        loss.backward()
        optimizer.step()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value.numpy(), ranks[0]["state"][name].numpy(), rtol=1e-5, atol=1e-6)
