"""One launcher per node started by srun or mpirun: its node rank, the node count and node 0's address
come from the cluster's variables (disttorch.comm.cluster_env) for every flag not given explicitly.

    srun --nodes 2 --ntasks-per-node 1 disttorch-launch --nproc 2 train.py
    mpirun -n 2 --map-by ppr:1:node -x MASTER_ADDR=node1 disttorch-launch --nproc 2 train.py
"""

import click
from click.core import ParameterSource

from disttorch.comm import cluster_env
from disttorch.launcher.errors import LaunchError
from disttorch.launcher.output import log


def apply_cluster_placement(ctx: click.Context, nnodes: int, node_rank: int, master_addr: str,
                            master_port: int | None) -> tuple[int, int, str, int | None]:
    """(nnodes, node_rank, master_addr, master_port) with the cluster's values where the flags were left out."""
    try:
        found = cluster_env.detect()
    except ValueError as error:
        raise LaunchError(f"cannot place this launcher from the cluster's variables: {error}") from None
    # RANK/WORLD_SIZE belong to a job this launcher runs inside, not to launchers: leave them alone.
    if found is None or found.source == "torchrun":
        return nnodes, node_rank, master_addr, master_port

    def unset(name: str) -> bool:
        return ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, None)

    if unset("nnodes"):
        nnodes = found.world_size
    if unset("node_rank"):
        node_rank = found.rank
    if unset("master_addr"):
        master_addr = found.master_addr
    if unset("master_port"):
        master_port = found.master_port
    if node_rank == 0:
        log(f"started by {found.source}: {nnodes} node(s), node 0 at {master_addr}:{master_port}")
    return nnodes, node_rank, master_addr, master_port
