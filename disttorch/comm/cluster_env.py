"""Who this process is in the job, from the variables its starter set: torchrun or disttorch-launch,
Open MPI's mpirun, an MPI with PMI (MPICH, Intel MPI, `srun --mpi=pmi2`), or a Slurm `srun` step.

    disttorch-launch / torchrun   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    mpirun (Open MPI)             OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE
    PMI                           PMI_RANK, PMI_SIZE (local rank: MPI_LOCALRANKID or SLURM_LOCALID)
    srun                          SLURM_PROCID, SLURM_STEP_NUM_TASKS or SLURM_NTASKS, SLURM_LOCALID

The first that is present wins, in that order: MPI before Slurm because mpirun inside an allocation
starts its daemons with srun, and its ranks then carry a SLURM_PROCID that numbers nodes, not ranks.
Slurm counts only inside a step (SLURM_STEP_ID set): a batch script's own shell is not a task.

MASTER_ADDR and MASTER_PORT always win when set. Otherwise the address is the first host of the
step's node list (SLURM_STEP_NODELIST, else SLURM_JOB_NODELIST; `node[01-03,07]` style ranges are
expanded), or loopback when every rank runs on this host. The port comes from the job id (and the
Slurm step id, so that steps running side by side differ), in 15000-31383, below the kernel's
ephemeral range.
"""
import os
import re
import zlib
from dataclasses import dataclass

PORT_BASE = 15000
PORT_SPAN = 16384
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ClusterEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    source: str  # "torchrun", "openmpi", "pmi" or "slurm"
    node_rank: int = 0


def detect(environ=os.environ) -> ClusterEnv | None:
    """This process's place in the job, or None when no known starter set one up."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return _torchrun(environ)
    if "OMPI_COMM_WORLD_RANK" in environ:
        return _openmpi(environ)
    if "PMI_RANK" in environ and "PMI_SIZE" in environ:
        return _pmi(environ)
    if "SLURM_PROCID" in environ and _slurm_step(environ):
        return _slurm(environ)
    return None


def _torchrun(environ) -> ClusterEnv:
    world_size = int(environ["WORLD_SIZE"])
    local_world_size = int(environ.get("LOCAL_WORLD_SIZE", world_size))
    if "MASTER_PORT" not in environ:
        raise ValueError("RANK and WORLD_SIZE are set but MASTER_PORT is not; set MASTER_ADDR and MASTER_PORT "
                         "(disttorch-launch and torchrun do), or use init_method='tcp://host:port'")
    return ClusterEnv(int(environ["RANK"]), world_size, int(environ.get("LOCAL_RANK", 0)), local_world_size,
                      environ.get("MASTER_ADDR", LOOPBACK), int(environ["MASTER_PORT"]), "torchrun",
                      int(environ.get("GROUP_RANK", 0)))


def _openmpi(environ) -> ClusterEnv:
    world_size = int(environ["OMPI_COMM_WORLD_SIZE"])
    local_world_size = int(environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", world_size))
    addr = _master_addr(environ, all_local=local_world_size == world_size, starter="mpirun -x MASTER_ADDR=<host>")
    port = _master_port(environ, environ.get("OMPI_MCA_ess_base_jobid"))
    return ClusterEnv(int(environ["OMPI_COMM_WORLD_RANK"]), world_size,
                      int(environ.get("OMPI_COMM_WORLD_LOCAL_RANK", 0)), local_world_size, addr, port, "openmpi",
                      int(environ.get("OMPI_COMM_WORLD_NODE_RANK", 0)))


def _pmi(environ) -> ClusterEnv:
    world_size = int(environ["PMI_SIZE"])
    local_rank = int(environ.get("MPI_LOCALRANKID", environ.get("SLURM_LOCALID", 0)))
    local_world_size = int(environ.get("MPI_LOCALNRANKS", _slurm_local_world_size(environ) or world_size))
    addr = _master_addr(environ, all_local=local_world_size == world_size, starter="mpiexec -env MASTER_ADDR <host>")
    port = _master_port(environ, environ.get("SLURM_JOB_ID") or environ.get("PMI_JOBID"),
                        environ.get("SLURM_STEP_ID"))
    return ClusterEnv(int(environ["PMI_RANK"]), world_size, local_rank, local_world_size, addr, port, "pmi",
                      int(environ.get("SLURM_NODEID", 0)))


def _slurm_step(environ) -> bool:
    return "SLURM_STEP_ID" in environ or "SLURM_STEPID" in environ


def _slurm(environ) -> ClusterEnv:
    world_size = int(environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS") or environ["SLURM_NPROCS"])
    local_world_size = _slurm_local_world_size(environ) or 1
    addr = _master_addr(environ, all_local=local_world_size == world_size, starter="export MASTER_ADDR=<host>")
    port = _master_port(environ, environ.get("SLURM_JOB_ID"), environ.get("SLURM_STEP_ID", environ.get("SLURM_STEPID")))
    return ClusterEnv(int(environ["SLURM_PROCID"]), world_size, int(environ.get("SLURM_LOCALID", 0)),
                      local_world_size, addr, port, "slurm", int(environ.get("SLURM_NODEID", 0)))


def _slurm_local_world_size(environ) -> int | None:
    """Tasks on this node: SLURM_STEP_TASKS_PER_NODE (`2(x3),1`) at this node's index."""
    spec = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
    if not spec:
        return None
    counts = []
    for item in spec.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", item.strip())
        if match is None:
            return None
        counts += [int(match[1])] * int(match[2] or 1)
    node = int(environ.get("SLURM_NODEID", 0))
    return counts[node] if node < len(counts) else None


def _master_addr(environ, all_local: bool, starter: str) -> str:
    if environ.get("MASTER_ADDR"):
        return environ["MASTER_ADDR"]
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if nodelist:
        return expand_hostlist(nodelist)[0]
    if all_local:
        return LOOPBACK
    raise ValueError(f"the ranks of this job run on several hosts and nothing names rank 0's host; set "
                     f"MASTER_ADDR to it ({starter})")


def _master_port(environ, job_id: str | None, step_id: str | None = None) -> int:
    if environ.get("MASTER_PORT"):
        return int(environ["MASTER_PORT"])
    if not job_id:
        raise ValueError("no MASTER_PORT and no job id to derive one from; set MASTER_PORT")
    number = int(job_id) if job_id.isdigit() else zlib.crc32(job_id.encode())
    step = int(step_id) if step_id and step_id.isdigit() else 0
    return PORT_BASE + (number * 64 + step) % PORT_SPAN


def expand_hostlist(hostlist: str) -> list[str]:
    """Slurm's compact host list as names: `node[01-03,07],gpu1` -> node01 node02 node03 node07 gpu1;
    several brackets in one name give every combination (`r[1-2]n[1-2]`)."""
    hosts = []
    for item in _split_top_level(hostlist):
        names = [""]
        for prefix, ranges in re.findall(r"([^\[]*)(?:\[([^\]]*)\])?", item):
            if not prefix and not ranges:
                continue
            expanded = [prefix + number for number in _expand_ranges(ranges, hostlist)] if ranges else [prefix]
            names = [name + suffix for name in names for suffix in expanded]
        hosts.extend(names)
    return hosts


def _split_top_level(hostlist: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in hostlist:
        if char == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += (char == "[") - (char == "]")
        current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def _expand_ranges(ranges: str, hostlist: str) -> list[str]:
    numbers = []
    for part in ranges.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if match is None:
            raise ValueError(f"cannot read the Slurm host list {hostlist!r}: {part!r} is not N or N-M")
        first, last = match[1], match[2] or match[1]
        width = len(first)  # node[01-03] keeps its zero padding
        numbers += [str(number).zfill(width) for number in range(int(first), int(last) + 1)]
    return numbers


__all__ = ["ClusterEnv", "detect", "expand_hostlist"]
