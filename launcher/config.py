"""What one launcher was asked to do (LaunchSpec) and what it was assigned for one attempt (RoundPlan)."""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from disttorch.launcher.streams import OutputRouting

DEFAULT_MULTI_NODE_PORT = 29500


@dataclass(frozen=True)
class LaunchSpec:
    nproc: int
    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int | None
    max_restarts: int
    log_dir: Path | None
    output: OutputRouting  # which streams of which local rank go to --log-dir files and/or the console
    monitor_interval: float
    rdzv_timeout: float
    grace_period: float
    command: tuple[str, ...]  # what follows `python -u`: a script path or `-m module`, then its args
    user_secret: str | None  # DISTTORCH_SECRET(_FILE) as the user passed it, or None
    min_nodes: int | None = None  # --nnodes MIN:MAX: the job goes on while MIN nodes remain; None: MIN = MAX

    @property
    def multi_node(self) -> bool:
        return self.nnodes > 1

    @property
    def fewest_nodes(self) -> int:
        return self.nnodes if self.min_nodes is None else self.min_nodes

    @property
    def nnodes_text(self) -> str:
        return str(self.nnodes) if self.fewest_nodes == self.nnodes else f"{self.fewest_nodes}:{self.nnodes}"

    def rank_label(self, rank: int) -> str:
        return f"{self.node_rank}:{rank}" if self.multi_node else f"rank {rank}"


@dataclass(frozen=True)
class RoundPlan:
    """One attempt of the job, as seen by one node: the same on every node except rank_offset."""

    restart_count: int
    world_size: int
    rank_offset: int
    worker_master_port: int
    secret: str
    host_addr: str  # this node's address on the network that reaches node 0
    group_rank: int = 0  # this node's index among the nodes of this attempt (nodes may have left)


def parse_nnodes(value: str) -> tuple[int, int]:
    """`N`, or `MIN:MAX` like torchrun: the job starts with up to MAX nodes and goes on while MIN remain."""
    parts = value.split(":")
    try:
        low, high = (int(parts[0]), int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        raise ValueError(f"--nnodes expects N or MIN:MAX (e.g. 2:3); got {value!r}") from None
    if len(parts) > 2 or not 1 <= low <= high:
        raise ValueError(f"--nnodes expects N or MIN:MAX with 1 <= MIN <= MAX; got {value!r}")
    return low, high


def resolve_nproc(value: str) -> int:
    """`N`, or `auto`/`gpu`/`cpu` like torchrun: one worker per visible GPU, else per usable CPU core."""
    if value in ("auto", "gpu"):
        gpus = visible_gpu_count()
        if gpus or value == "gpu":
            if not gpus:
                raise ValueError("--nproc gpu found no GPU; use --nproc auto or a number")
            return gpus
        return usable_cpu_count()
    if value == "cpu":
        return usable_cpu_count()
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--nproc expects a positive number, auto, gpu or cpu; got {value!r}") from None
    if count < 1:
        raise ValueError(f"--nproc must be at least 1; got {count}")
    return count


def visible_gpu_count() -> int:
    # Counted without importing cupy: the launcher stays light and never touches the GPU itself.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([device for device in visible.split(",") if device.strip() and device.strip() != "-1"])
    gpu_dir = Path("/proc/driver/nvidia/gpus")
    return len(list(gpu_dir.iterdir())) if gpu_dir.is_dir() else 0


def usable_cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def user_secret_from_env(environ=os.environ) -> str | None:
    if environ.get("DISTTORCH_SECRET"):
        return environ["DISTTORCH_SECRET"]
    secret_file = environ.get("DISTTORCH_SECRET_FILE")
    if secret_file:
        secret = Path(secret_file).read_text().strip()
        if not secret:
            raise ValueError(f"DISTTORCH_SECRET_FILE={secret_file} is empty; put the job secret in it")
        return secret
    return None


def new_secret() -> str:
    return secrets.token_hex(32)
