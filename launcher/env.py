"""The environment each worker starts with."""

from collections.abc import Mapping

from disttorch.launcher.config import LaunchSpec, RoundPlan
from disttorch.launcher.flight_records import DUMP_DIR_VARIABLE

# One thread per library per worker: N workers each starting a full thread pool would oversubscribe the cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env(base: Mapping[str, str], spec: LaunchSpec, plan: RoundPlan, local_rank: int,
               trace_dir: str | None = None) -> dict[str, str]:
    env = dict(base)
    if trace_dir is not None:
        # Where the workers' flight records go, for the failure summary (see flight_records.py).
        env[DUMP_DIR_VARIABLE] = trace_dir
    for name in THREAD_VARIABLES:
        env.setdefault(name, "1")
    # Unbuffered output, so lines reach the console in time and are not lost when a worker is killed.
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(
        RANK=str(plan.rank_offset + local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(plan.world_size),
        LOCAL_WORLD_SIZE=str(spec.nproc),
        GROUP_RANK=str(plan.group_rank),
        MASTER_ADDR=spec.master_addr,
        MASTER_PORT=str(plan.worker_master_port),
        DISTTORCH_RESTART_COUNT=str(plan.restart_count),
        DISTTORCH_SECRET=plan.secret,
        DISTTORCH_HOST_ADDR=plan.host_addr,
    )
    env.pop("DISTTORCH_SECRET_FILE", None)
    return env
