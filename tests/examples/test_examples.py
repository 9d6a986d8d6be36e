"""The examples run end to end and learn what they claim to learn."""
import importlib.util
import os
import pathlib
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
    assert (checkpoints / "digits.pt").exists()
    # A second run resumes from the checkpoint instead of starting over.
    resumed = load("train_digits").main(["--epochs", "3", "--checkpoint-dir", str(checkpoints)])
    assert resumed == pytest.approx(accuracy)


@pytest.mark.timeout(240)
def test_train_digits_through_the_launcher_reaches_95_percent(tmp_path):
    """The README's main job, shortened only by where the checkpoint goes."""
    result = subprocess.run(
        [sys.executable, "-m", "launcher", "--nproc", "2", str(EXAMPLES / "train_digits.py"),
         "--checkpoint-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=220, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    final = [line for line in result.stdout.splitlines() if "final test accuracy" in line]
    assert final and final[0].startswith("[rank 0]"), result.stdout[-2000:]
    assert float(final[0].rsplit(" ", 1)[1].rstrip("%")) > 95.0
