"""disttorch.utils.resume: every rank resumes from one checkpoint, with real worker processes."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import disttorch as torch
from disttorch import nn
from disttorch.utils.resume import CheckpointDir

REPO = Path(__file__).resolve().parents[2]

# Each rank gets its own directory, like nodes with local disks: only rank 0's holds checkpoints.
RESUMING_WORKER = """
    import json, os, sys
    import disttorch as torch
    import disttorch.distributed as dist
    from disttorch import nn
    from disttorch.utils.resume import CheckpointDir

    shared = sys.argv[1] == "shared"
    dist.init_process_group()
    rank = dist.get_rank()
    torch.manual_seed(100 + rank)  # different fresh weights per rank: only a real resume makes them equal
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    try:
        point = CheckpointDir(f"local_{rank}", prefix="job", shared=shared).resume(model, optimizer)
    except RuntimeError as error:
        json.dump({"error": str(error)}, open(f"view_{rank}.json", "w"))
        sys.exit(3)
    state = optimizer.state_dict()["state"][0]
    json.dump({"path": point.path, "epoch": point.epoch, "step": point.step, "extra": point.extra,
               "weight": model.weight.tolist(), "exp_avg": state["exp_avg"].tolist()},
              open(f"view_{rank}.json", "w"))
    dist.destroy_process_group()
"""


def _trained_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def _launch(tmp_path, mode, nproc=2):
    (tmp_path / "worker.py").write_text(textwrap.dedent(RESUMING_WORKER))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DISTTORCH_", "RANK", "WORLD_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "disttorch.launcher", "--nproc", str(nproc), "--grace-period", "1",
                             "worker.py", mode], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    views = [json.loads((tmp_path / f"view_{rank}.json").read_text()) for rank in range(nproc)]
    return result, views


def test_a_fresh_directory_starts_at_epoch_zero(tmp_path):
    model, optimizer = _trained_model()
    before = model.weight.tolist()
    point = CheckpointDir(tmp_path / "none").resume(model, optimizer)
    assert (point.path, point.epoch, point.step, point.resumed) == (None, 0, 0, False)
    assert model.weight.tolist() == before


def test_resume_restores_the_newest_checkpoint_and_keeps_only_the_last_ones(tmp_path):
    checkpoints = CheckpointDir(tmp_path, prefix="run", keep=2)
    model, optimizer = _trained_model()
    for epoch in range(4):
        checkpoints.save(model, optimizer, epoch=epoch, step=10 * (epoch + 1), best=0.5 + epoch)
    assert sorted(os.listdir(tmp_path)) == ["run-e00002-s000000030.pt", "run-e00003-s000000040.pt"]
    fresh, fresh_optimizer = _trained_model(seed=1)
    point = checkpoints.resume(fresh, fresh_optimizer)
    assert point.path == str(tmp_path / "run-e00003-s000000040.pt")
    assert (point.epoch, point.step, point.extra) == (4, 40, {"best": 3.5})
    assert fresh.weight.tolist() == model.weight.tolist()
    assert fresh_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    checkpoints = CheckpointDir(tmp_path, prefix="run")
    model, optimizer = _trained_model()
    checkpoints.save(model, optimizer, epoch=0)
    newest = Path(checkpoints.save(model, optimizer, epoch=1))
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="skipping checkpoint .*e00001"):
        point = checkpoints.resume(*_trained_model(seed=1))
    assert point.epoch == 1


def test_prefix_and_keep_are_validated():
    with pytest.raises(ValueError, match="keep must be at least 1"):
        CheckpointDir("x", keep=0)
    with pytest.raises(ValueError, match="prefix"):
        CheckpointDir("x", prefix="a/b")


@pytest.mark.timeout(150)
def test_rank_zero_sends_its_checkpoint_to_ranks_without_one(tmp_path):
    model, optimizer = _trained_model()
    CheckpointDir(tmp_path / "local_0", prefix="job").save(model, optimizer, epoch=6, step=77, note="x")
    result, views = _launch(tmp_path, "rank0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "local_1").exists()
    for view in views:
        assert (view["epoch"], view["step"], view["extra"]) == (7, 77, {"note": "x"})
        assert view["weight"] == model.weight.tolist()
        assert view["exp_avg"] == optimizer.state_dict()["state"][0]["exp_avg"].tolist()


@pytest.mark.timeout(150)
def test_ranks_reading_different_directories_as_shared_fail_naming_both_views(tmp_path):
    model, optimizer = _trained_model()
    CheckpointDir(tmp_path / "local_0", prefix="job", shared=True).save(model, optimizer, epoch=2, step=5)
    result, views = _launch(tmp_path, "shared")
    assert result.returncode != 0
    for view in views:
        message = view["error"]
        assert "rank 0 would resume from local_0/job-e00002-s000000005.pt (starting at epoch 4, step 5" in message
        assert "rank 1 from nothing (a fresh start at epoch 1)" in message
