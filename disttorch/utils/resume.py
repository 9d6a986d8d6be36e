"""Checkpoints a multi-process job resumes from identically on every rank.

    checkpoints = CheckpointDir("checkpoints", prefix="digits")
    start = checkpoints.resume(model, optimizer)        # every rank calls it (a collective)
    for epoch in range(start.epoch, epochs):
        ...
        checkpoints.save(model, optimizer, epoch=epoch, step=step)   # global rank 0 writes

A job restarted by the launcher, or run again, must continue from one state on every rank: if node 0
finds a checkpoint and node 1 does not, their ranks run different epochs and the first collective that
differs kills the job. Two ways to get one state:

- ``shared=False`` (default): only global rank 0 looks at the directory. It picks the latest checkpoint
  and broadcasts the file's bytes, so the other ranks need no access to the directory (a disk local to
  node 0 is enough).
- ``shared=True``: every node mounts the same directory (NFS, a Docker volume). Each rank picks the
  latest checkpoint and reads it itself.

Either way the ranks then compare what they resume from (file, epoch, step, content digest) and every
rank raises a RuntimeError naming both views when one differs from rank 0's, instead of training on
out of step. Without an initialised process group it works as a plain single-process resume.

Files are ``<prefix>-e<epoch>-s<step>.pt`` written atomically by ``disttorch.save``; the newest ``keep``
are kept. A newest file that cannot be read (damaged by hand or by a full disk) is skipped with a warning
in favour of the one before it.
"""
import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field

from disttorch import distributed as dist
from disttorch.serialization import load, save


@dataclass(frozen=True)
class ResumePoint:
    """Where a job (re)starts. ``epoch`` is the first epoch still to run (0 for a fresh start)."""

    path: str | None
    epoch: int = 0
    step: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def resumed(self) -> bool:
        return self.path is not None


class CheckpointDir:
    def __init__(self, directory, prefix="checkpoint", shared=False, keep=2):
        if keep < 1:
            raise ValueError(f"keep must be at least 1 (the checkpoint to resume from), got {keep}")
        if not re.fullmatch(r"[\w.]+", prefix):
            raise ValueError(f"prefix may hold letters, digits, '_' and '.' only, got {prefix!r}")
        self.directory = os.fspath(directory)
        self.prefix = prefix
        self.shared = shared
        self.keep = keep
        self._name = re.compile(rf"{re.escape(prefix)}-e(\d+)-s(\d+)\.pt")

    # ---- saving -----------------------------------------------------------------------------------

    def save(self, model, optimizer=None, *, epoch, step=0, **extra):
        """Global rank 0 writes the state after finishing ``epoch`` (0-based); the others return at once.

        ``extra`` holds anything else to restore (numbers, strings, tensors, dicts of them); it comes
        back as ``ResumePoint.extra``."""
        if _rank() != 0:
            return None
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"{self.prefix}-e{epoch:05d}-s{step:09d}.pt")
        state = {"model": model.state_dict(), "epoch": epoch, "step": step, "extra": extra}
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        save(state, path)
        for _, _, old in self._candidates()[self.keep:]:
            os.remove(old)
        return path

    # ---- resuming ---------------------------------------------------------------------------------

    def latest(self):
        """Path of the newest checkpoint this process sees, or None."""
        candidates = self._candidates()
        return candidates[0][2] if candidates else None

    def resume(self, model, optimizer=None) -> ResumePoint:
        """Loads the newest checkpoint into ``model`` (and ``optimizer``) on every rank; a collective."""
        distributed = dist.is_initialized()
        if not self.shared and distributed:
            payload = [self._read_newest() if _rank() == 0 else None]
            dist.broadcast_object_list(payload, src=0)
            path, data = payload[0]
        else:
            path, data = self._read_newest()
        state = load(data) if data is not None else None
        point = ResumePoint(path) if state is None else ResumePoint(
            path, state["epoch"] + 1, state.get("step", 0), dict(state.get("extra") or {}))
        if distributed:
            self._check_agreement(point, data)
        if state is not None:
            model.load_state_dict(state["model"])
            if optimizer is not None:
                if "optimizer" not in state:
                    raise RuntimeError(f"{path} holds no optimizer state; save it with "
                                       f"CheckpointDir.save(model, optimizer, ...) or resume the model alone")
                optimizer.load_state_dict(state["optimizer"])
        return point

    def _candidates(self):
        """(epoch, step, path) of every checkpoint file here, newest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = self._name.fullmatch(name)
            if match:
                found.append((int(match[1]), int(match[2]), os.path.join(self.directory, name)))
        return sorted(found, reverse=True)

    def _read_newest(self):
        """(path, bytes) of the newest checkpoint that loads, or (None, None)."""
        for _, _, path in self._candidates():
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                load(data)
            except RuntimeError as damaged:
                warnings.warn(f"skipping checkpoint {path}: {damaged}", RuntimeWarning, stacklevel=3)
                continue
            return path, data
        return None, None

    def _check_agreement(self, point: ResumePoint, data):
        digest = hashlib.sha256(data).hexdigest()[:16] if data is not None else None
        views = [None] * dist.get_world_size()
        dist.all_gather_object(views, [point.path, point.epoch, point.step, digest])
        reference = views[0]
        for rank, view in enumerate(views):
            if view != reference:
                hint = ("every node must mount the same --checkpoint-dir when shared=True; without a shared "
                        "directory use shared=False, where rank 0 sends its checkpoint to the others"
                        if self.shared else "every rank must use the same CheckpointDir arguments")
                raise RuntimeError(f"ranks disagree on where to resume: rank 0 would resume from "
                                   f"{_describe(reference)} but rank {rank} from {_describe(view)}; {hint}")


def _describe(view) -> str:
    path, epoch, step, digest = view
    if path is None:
        return "nothing (a fresh start at epoch 1)"
    return f"{path} (starting at epoch {epoch + 1}, step {step}; sha256 {digest})"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


__all__ = ["CheckpointDir", "ResumePoint"]
