"""SummaryWriter writes event files that TensorBoard's own reader (EventAccumulator) reads back."""
import glob
import io
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import disttorch  # noqa: E402
from disttorch.utils.tensorboard import SummaryWriter  # noqa: E402


def _accumulator(log_dir):
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0,
                                                                "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_scalars_histograms_text_read_back(tmp_path):
    with SummaryWriter(log_dir=tmp_path) as writer:
        for step in range(5):
            writer.add_scalar("Loss/train", disttorch.tensor(1.0 / (step + 1)), step)
            writer.add_scalar("lr", 0.1 * step, global_step=step)
        values = np.random.default_rng(0).standard_normal(1000)
        writer.add_histogram("weights", disttorch.tensor(values), 3)
        writer.add_text("notes", "hello **tensorboard**", 0)
    accumulator = _accumulator(tmp_path)
    losses = accumulator.Scalars("Loss/train")
    assert [event.step for event in losses] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([event.value for event in losses], [1 / (s + 1) for s in range(5)], rtol=1e-6)
    assert accumulator.Scalars("lr")[-1].value == pytest.approx(0.4)
    histogram = accumulator.Histograms("weights")[0]
    assert histogram.step == 3
    assert histogram.histogram_value.num == 1000
    assert histogram.histogram_value.sum == pytest.approx(values.sum())
    assert sum(histogram.histogram_value.bucket) == 1000
    text = accumulator.Tensors("notes/text_summary")[0]
    assert text.tensor_proto.string_val[0].decode() == "hello **tensorboard**"


def test_images_are_png_of_the_right_pixels(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    chw = rng.uniform(0, 1, size=(3, 5, 7)).astype(np.float32)
    with SummaryWriter(log_dir=tmp_path) as writer:
        writer.add_image("sample", disttorch.tensor(chw), 2)
        writer.add_image("gray", np.zeros((4, 6), dtype=np.uint8), 0, dataformats="HW")
        writer.add_images("batch", disttorch.tensor(rng.uniform(0, 1, size=(4, 3, 2, 2)).astype(np.float32)), 0)
    accumulator = _accumulator(tmp_path)
    event = accumulator.Images("sample")[0]
    assert (event.step, event.width, event.height) == (2, 7, 5)
    decoded = np.asarray(image_module.open(io.BytesIO(event.encoded_image_string)))
    np.testing.assert_array_equal(decoded, np.clip(chw * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    assert accumulator.Images("gray")[0].width == 6
    assert accumulator.Images("batch")[0].width == 8  # make_grid: 4 images of 2x2 in one row


def test_add_scalars_writes_one_run_per_entry_and_hparams_a_session(tmp_path):
    writer = SummaryWriter(log_dir=tmp_path)
    for step in range(3):
        writer.add_scalars("loss", {"train": 1.0 - 0.1 * step, "val": 2.0 - 0.1 * step}, step)
    writer.add_hparams({"lr": 0.01, "batch_size": 32, "optimizer": "adam", "nesterov": False},
                       {"hparam/accuracy": 0.9}, run_name="trial")
    with pytest.warns(UserWarning, match="add_graph writes nothing"):
        writer.add_graph(object())  # documented no-op
    writer.flush()
    writer.close()
    train = _accumulator(tmp_path / "loss_train").Scalars("loss")
    val = _accumulator(tmp_path / "loss_val").Scalars("loss")
    assert [e.value for e in train] == pytest.approx([1.0, 0.9, 0.8])
    assert [e.value for e in val] == pytest.approx([2.0, 1.9, 1.8])
    session = _accumulator(tmp_path / "trial")
    assert session.Scalars("hparam/accuracy")[0].value == pytest.approx(0.9)
    from tensorboard.plugins.hparams import metadata
    content = session.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    start = metadata.parse_session_start_info_plugin_data(content)
    assert start.hparams["lr"].number_value == pytest.approx(0.01)
    assert start.hparams["optimizer"].string_value == "adam"
    assert start.hparams["nesterov"].bool_value is False


def test_default_log_dir_is_runs_date_host_comment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    writer = SummaryWriter(comment="_lr0.1")
    writer.add_scalar("x", 1.0, 0)
    writer.close()
    (run,) = os.listdir(tmp_path / "runs")
    assert run.endswith("_lr0.1")
    assert glob.glob(str(tmp_path / "runs" / run / "events.out.tfevents.*"))
    with pytest.raises(RuntimeError, match="closed"):
        writer.add_scalar("x", 2.0, 1)
    with pytest.raises(ValueError, match="single number"):
        SummaryWriter(log_dir=tmp_path / "bad").add_scalar("x", disttorch.ones(3))


def test_missing_tensorboard_package_says_how_to_install_it():
    probe = ("import sys; sys.modules['tensorboard'] = None\n"
             "try:\n    import disttorch.utils.tensorboard\nexcept ImportError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'disttorch[tensorboard]'" in result.stdout
