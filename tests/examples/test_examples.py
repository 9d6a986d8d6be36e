"""The examples run end to end and learn what they claim to learn."""
import importlib.util
import os
import pathlib
import socket
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(60)
def test_linear_regression_recovers_slope_and_intercept(capsys):
    weight, bias = load("linear_regression").main(["--steps", "200"])
    assert abs(weight - 3) < 0.05 and abs(bias - 1) < 0.05
    assert "learned y =" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_lstm_classifier_learns_the_sign_of_the_sum():
    accuracy = load("lstm_classifier").main(["--epochs", "4", "--length", "8"])
    assert accuracy > 0.85


@pytest.mark.timeout(120)
def test_train_digits_single_process_learns_and_checkpoints(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    checkpoints = tmp_path / "ckpt"
    accuracy = load("train_digits").main(["--epochs", "3", "--checkpoint-dir", str(checkpoints)])
    assert accuracy > 0.85
    assert sorted(os.listdir(checkpoints)) == ["digits-e00001-s000000000.pt", "digits-e00002-s000000000.pt"]
    # A second run of the finished job evaluates its checkpoint instead of starting over.
    resumed = load("train_digits").main(["--epochs", "3", "--checkpoint-dir", str(checkpoints)])
    assert resumed == pytest.approx(accuracy)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_node_digits(node_dirs, *args):
    """Two launchers on loopback, each node in its own directory (its own "local disk")."""
    port = str(_free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "DISTTORCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES.parent), os.environ.get("PYTHONPATH")]))
    launchers = [subprocess.Popen(
        [sys.executable, "-m", "disttorch.launcher", "--nnodes", "2", "--node-rank", str(node), "--nproc", "1",
         "--master-addr", "127.0.0.1", "--master-port", port, "--rdzv-timeout", "60", "--grace-period", "1",
         str(EXAMPLES / "train_digits.py"), *args],
        cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node, directory in enumerate(node_dirs)]
    try:
        outputs = [launcher.communicate(timeout=150) for launcher in launchers]
    finally:
        for launcher in launchers:
            launcher.kill()
    for launcher, (stdout, stderr) in zip(launchers, outputs):
        assert launcher.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return outputs[0][0]


def _final_accuracy(stdout):
    final = [line for line in stdout.splitlines() if "final test accuracy" in line]
    assert len(final) == 1, stdout[-2000:]
    return float(final[0].rsplit(" ", 1)[1].rstrip("%"))


@pytest.mark.timeout(240)
def test_train_digits_resumes_on_every_node_from_node_zeros_checkpoint(tmp_path, monkeypatch):
    """Only node 0's directory holds the checkpoint (the rerun of `docker compose up`): every rank
    resumes from it, and running the finished job again evaluates it and exits 0."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    node_dirs = [tmp_path / "node0", tmp_path / "node1"]
    for directory in node_dirs:
        directory.mkdir()
    load("train_digits").main(["--epochs", "2", "--checkpoint-dir", str(node_dirs[0] / "checkpoints")])
    stdout = _two_node_digits(node_dirs, "--epochs", "3")
    assert "[0:0] resumed from checkpoints/digits-e00001-s000000000.pt at epoch 3/3" in stdout
    assert "epoch 3: train_loss=" in stdout and "epoch 2: train_loss=" not in stdout
    accuracy = _final_accuracy(stdout)
    assert accuracy > 85.0
    assert not (node_dirs[1] / "checkpoints").exists()
    again = _two_node_digits(node_dirs, "--epochs", "3")
    assert "digits-e00002-s000000000.pt already finished all 3 epochs" in again
    assert "train_loss=" not in again
    assert _final_accuracy(again) == accuracy


@pytest.mark.timeout(240)
def test_train_digits_through_the_launcher_reaches_95_percent(tmp_path):
    """The README's main job, shortened only by where the checkpoint goes."""
    result = subprocess.run(
        [sys.executable, "-m", "disttorch.launcher", "--nproc", "2", str(EXAMPLES / "train_digits.py"),
         "--checkpoint-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=220, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    final = [line for line in result.stdout.splitlines() if "final test accuracy" in line]
    assert final and final[0].startswith("[rank 0]"), result.stdout[-2000:]
    assert float(final[0].rsplit(" ", 1)[1].rstrip("%")) > 95.0
