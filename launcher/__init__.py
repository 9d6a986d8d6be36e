"""disttorch-launch: start, watch and tear down the worker processes of a data-parallel job.

One launcher runs per node. It spawns ``--nproc`` workers, gives each the RANK/WORLD_SIZE/MASTER_*
environment, prefixes their output, and stops the whole job (on every node) when any worker fails.

Installed as the package ``disttorch.launcher`` (run it with ``python -m disttorch.launcher``).
"""
