"""SummaryWriter with torch.utils.tensorboard's constructor and add_* methods.

purge_step is accepted and ignored (no purge marker is written). add_graph is a documented no-op:
TensorBoard's graph view needs a GraphDef of the traced model, which disttorch does not build (it warns
once). add_figure, add_audio, add_video, add_embedding and add_mesh are not provided.
"""
import os
import socket
import time
import warnings
from datetime import datetime

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from . import summary


class FileWriter:
    """One event file in one directory; SummaryWriter keeps one per run (add_scalars/add_hparams add more)."""

    def __init__(self, log_dir, max_queue=10, flush_secs=120, filename_suffix=""):
        self.event_writer = EventFileWriter(os.fspath(log_dir), max_queue, flush_secs, filename_suffix)

    def get_logdir(self):
        return self.event_writer.get_logdir()

    def add_summary(self, proto, global_step=None, walltime=None):
        event = Event(summary=proto, wall_time=time.time() if walltime is None else walltime)
        if global_step is not None:
            event.step = int(global_step)
        self.event_writer.add_event(event)

    def flush(self):
        self.event_writer.flush()

    def close(self):
        self.event_writer.close()


class SummaryWriter:
    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120, filename_suffix=""):
        if not log_dir:
            current_time = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", current_time + "_" + socket.gethostname() + comment)
        self.log_dir = os.fspath(log_dir)
        self.purge_step = purge_step
        self.max_queue = max_queue
        self.flush_secs = flush_secs
        self.filename_suffix = filename_suffix
        self.file_writer = FileWriter(self.log_dir, max_queue, flush_secs, filename_suffix)
        self.all_writers = {self.log_dir: self.file_writer}
        self._graph_warned = False

    def get_logdir(self):
        return self.log_dir

    def _get_file_writer(self):
        if self.file_writer is None:
            raise RuntimeError("this SummaryWriter is closed; make a new one to write more")
        return self.file_writer

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False):
        self._get_file_writer().add_summary(summary.scalar(tag, scalar_value), global_step, walltime)

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """Each entry goes to its own run, <log_dir>/<main_tag>_<tag>, under the tag main_tag (as torch does)."""
        walltime = time.time() if walltime is None else walltime
        base = self._get_file_writer().get_logdir()
        for tag, value in tag_scalar_dict.items():
            run_dir = os.path.join(base, main_tag.replace("/", "_") + "_" + tag)
            writer = self.all_writers.get(run_dir)
            if writer is None:
                writer = FileWriter(run_dir, self.max_queue, self.flush_secs, self.filename_suffix)
                self.all_writers[run_dir] = writer
            writer.add_summary(summary.scalar(main_tag, value), global_step, walltime)

    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None, max_bins=None):
        self._get_file_writer().add_summary(summary.histogram(tag, values, bins, max_bins), global_step, walltime)

    def add_image(self, tag, img_tensor, global_step=None, walltime=None, dataformats="CHW"):
        pixels = summary.to_hwc_uint8(img_tensor, dataformats)
        self._get_file_writer().add_summary(summary.image(tag, pixels), global_step, walltime)

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        """A batch of images tiled into one grid image, as torch does."""
        from ...vision.utils import make_grid
        array = summary.to_numpy(img_tensor)
        if dataformats.upper() == "NHWC":
            array = array.transpose(0, 3, 1, 2)
        elif dataformats.upper() != "NCHW":
            raise ValueError(f"add_images takes dataformats NCHW or NHWC, got {dataformats!r}")
        from ...core.tensor import Tensor
        grid = make_grid(Tensor._wrap(array.astype("float32") / (255.0 if array.dtype.kind == "u" else 1.0)),
                         padding=0)
        self.add_image(tag, grid, global_step, walltime, dataformats="CHW")

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        self._get_file_writer().add_summary(summary.text(tag, text_string), global_step, walltime)

    def add_hparams(self, hparam_dict, metric_dict, hparam_domain_discrete=None, run_name=None, global_step=None):
        """One hparams session in a sub-run (<log_dir>/<run_name or time>), its metrics logged there as scalars."""
        if not isinstance(hparam_dict, dict) or not isinstance(metric_dict, dict):
            raise TypeError("hparam_dict and metric_dict should be dictionary.")
        run_dir = os.path.join(self._get_file_writer().get_logdir(), run_name or str(time.time()))
        with SummaryWriter(log_dir=run_dir) as writer:
            for proto in summary.hparams(hparam_dict, metric_dict, hparam_domain_discrete):
                writer.file_writer.add_summary(proto)
            for tag, value in metric_dict.items():
                writer.add_scalar(tag, value, global_step)

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        """Accepted and ignored (see the module docstring), so training scripts that call it keep running."""
        if not self._graph_warned:
            warnings.warn("SummaryWriter.add_graph writes nothing on disttorch: TensorBoard's graph view needs a "
                          "GraphDef, which disttorch does not build", UserWarning, stacklevel=2)
            self._graph_warned = True

    def flush(self):
        for writer in self.all_writers.values():
            writer.flush()

    def close(self):
        if self.file_writer is None:
            return
        for writer in self.all_writers.values():
            writer.flush()
            writer.close()
        self.file_writer = None
        self.all_writers = {}

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()
