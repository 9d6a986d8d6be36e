"""disttorch.comm.cluster_env: the rank, world and master address srun, mpirun and torchrun describe.

The environments below are the variables these starters set (copied from real srun, sbatch and
mpirun runs); tests/launcher/test_cluster_engines.py runs the real programs where installed."""
import pytest

from disttorch.comm.cluster_env import PORT_BASE, PORT_SPAN, detect, expand_hostlist

SRUN_TASK_3 = {  # srun -N 2 -n 4 on nodes n1, n2: the second task on n2
    "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_NTASKS": "4", "SLURM_NPROCS": "4",
    "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURM_TASKS_PER_NODE": "2(x2)",
    "SLURM_JOB_ID": "2", "SLURM_STEP_ID": "0", "SLURM_STEPID": "0", "SLURM_STEP_NODELIST": "n[1-2]",
    "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_NODELIST": "n[1-2]",
}
OMPI_RANK_1 = {
    "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_COMM_WORLD_NODE_RANK": "1", "OMPI_MCA_ess_base_jobid": "1042939905",
    "PMIX_RANK": "1",
}


@pytest.mark.parametrize("hostlist, expected", [
    ("n1", ["n1"]),
    ("n[1-2]", ["n1", "n2"]),
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
    ("gpu[8-10],cpu1", ["gpu8", "gpu9", "gpu10", "cpu1"]),
    ("a[1-2]-b[1,3]", ["a1-b1", "a1-b3", "a2-b1", "a2-b3"]),
    ("x[098-100].site", ["x098.site", "x099.site", "x100.site"]),
])
def test_expand_hostlist(hostlist, expected):
    assert expand_hostlist(hostlist) == expected


def test_a_bad_hostlist_names_the_part_it_cannot_read():
    with pytest.raises(ValueError, match="'a' is not N or N-M"):
        expand_hostlist("n[1-2,a]")


def test_an_srun_task():
    found = detect(SRUN_TASK_3)
    assert (found.source, found.rank, found.world_size, found.local_rank, found.local_world_size, found.node_rank) \
        == ("slurm", 3, 4, 1, 2, 1)
    assert found.master_addr == "n1"
    assert PORT_BASE <= found.master_port < PORT_BASE + PORT_SPAN


def test_the_port_follows_the_job_and_step():
    ports = {detect({**SRUN_TASK_3, "SLURM_JOB_ID": job, "SLURM_STEP_ID": step}).master_port
             for job, step in (("2", "0"), ("2", "1"), ("3", "0"))}
    assert len(ports) == 3
    assert detect({**SRUN_TASK_3, "SLURM_LOCALID": "0"}).master_port == detect(SRUN_TASK_3).master_port


def test_uneven_tasks_per_node():
    env = {**SRUN_TASK_3, "SLURM_STEP_TASKS_PER_NODE": "3,1", "SLURM_NODEID": "1"}
    assert detect(env).local_world_size == 1


def test_explicit_master_addr_and_port_win():
    found = detect({**SRUN_TASK_3, "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29999"})
    assert (found.master_addr, found.master_port) == ("10.0.0.5", 29999)


def test_a_batch_script_is_not_a_task():
    batch = {key: value for key, value in SRUN_TASK_3.items() if not key.startswith("SLURM_STEP")}
    assert detect(batch) is None


def test_mpirun_on_one_host():
    found = detect(OMPI_RANK_1)
    assert (found.source, found.rank, found.world_size, found.local_rank, found.local_world_size) \
        == ("openmpi", 1, 2, 1, 2)
    assert found.master_addr == "127.0.0.1"
    assert found.master_port == detect({**OMPI_RANK_1, "OMPI_COMM_WORLD_RANK": "0"}).master_port


def test_mpirun_across_hosts_needs_master_addr_unless_slurm_names_the_nodes():
    across = {**OMPI_RANK_1, "OMPI_COMM_WORLD_SIZE": "4"}
    with pytest.raises(ValueError, match=r"set MASTER_ADDR to it \(mpirun -x MASTER_ADDR=<host>\)"):
        detect(across)
    assert detect({**across, "MASTER_ADDR": "h0"}).master_addr == "h0"
    # Inside an allocation mpirun's ranks also carry Slurm's variables; the MPI rank is the one to use.
    inside = {**SRUN_TASK_3, **across, "SLURM_PROCID": "1"}
    found = detect(inside)
    assert (found.source, found.rank, found.world_size, found.master_addr) == ("openmpi", 1, 4, "n1")


def test_pmi_under_srun():
    found = detect({**SRUN_TASK_3, "PMI_RANK": "3", "PMI_SIZE": "4", "PMI_JOBID": "2.0"})
    assert (found.source, found.rank, found.world_size, found.local_rank, found.local_world_size) \
        == ("pmi", 3, 4, 1, 2)
    assert found.master_port == detect(SRUN_TASK_3).master_port


def test_torchrun_variables_win_over_everything():
    env = {**SRUN_TASK_3, **OMPI_RANK_1, "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "m",
           "MASTER_PORT": "1234"}
    found = detect(env)
    assert (found.source, found.rank, found.world_size, found.master_addr, found.master_port) \
        == ("torchrun", 5, 8, "m", 1234)


def test_nothing_known():
    assert detect({"HOME": "/root"}) is None
