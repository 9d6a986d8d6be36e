"""Host identity: which ranks compete for this process's CPU cores."""
import os

from disttorch.comm import host


def _rank(boot, netns, cpus):
    return {"boot": boot, "netns": netns, "shm": [1, 2], "cpus": cpus}


def test_ranks_in_other_network_namespaces_of_this_kernel_share_its_cores():
    mine = _rank("boot-a", [4, 1], [0, 1])
    other_namespace = _rank("boot-a", [4, 2], [0, 1])
    assert host.cores_per_rank(mine, [mine, other_namespace]) == 1.0


def test_other_kernels_and_disjoint_cpu_sets_do_not_compete():
    mine = _rank("boot-a", [4, 1], [0, 1, 2, 3])
    other_machine = _rank("boot-b", [4, 1], [0, 1, 2, 3])
    pinned_elsewhere = _rank("boot-a", [4, 1], [4, 5])
    half_overlapping = _rank("boot-a", [4, 3], [3, 4])
    assert host.cores_per_rank(mine, [mine, other_machine, pinned_elsewhere]) == 4.0
    # The overlapping rank's cores join the pool it competes for.
    assert host.cores_per_rank(mine, [mine, other_machine, half_overlapping]) == 2.5


def test_an_unknown_kernel_counts_only_this_rank():
    mine = _rank(None, [4, 1], [0, 1])
    assert host.cores_per_rank(mine, [mine, _rank(None, [4, 1], [0, 1])]) == 2.0


def test_identity_names_the_cpus_this_process_may_use():
    assert host.identity()["cpus"] == sorted(os.sched_getaffinity(0))
