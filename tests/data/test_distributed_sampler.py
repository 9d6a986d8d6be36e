import itertools

import pytest

from disttorch.utils.data import DataLoader, DistributedSampler

CASES = [(n, replicas, drop_last) for n in (1, 2, 7, 10, 12, 13) for replicas in (1, 2, 3, 4, 8)
         for drop_last in (False, True) if not (drop_last and n < replicas)]


def _shares(n, replicas, **options):
    return [list(DistributedSampler(range(n), num_replicas=replicas, rank=rank, **options))
            for rank in range(replicas)]


@pytest.mark.parametrize("n,replicas,drop_last", CASES)
def test_unshuffled_partition_equals_torch(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    for rank in range(replicas):
        ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        theirs = torch.utils.data.DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False,
                                                     drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs) and ours.total_size == theirs.total_size


@pytest.mark.parametrize("n,replicas,drop_last", CASES)
def test_shuffled_partition_structure(n, replicas, drop_last):
    shares = _shares(n, replicas, shuffle=True, seed=5, drop_last=drop_last)
    lengths = {len(share) for share in shares}
    assert len(lengths) == 1  # every replica runs the same number of steps
    merged = list(itertools.chain.from_iterable(shares))
    if drop_last:
        assert len(set(merged)) == len(merged) == (n // replicas) * replicas
    else:
        assert set(merged) == set(range(n))
        assert len(merged) == -(-n // replicas) * replicas
    # rank r holds positions r, r + R, ... of one permutation (padded from its start) shared by all ranks
    interleaved = [shares[position % replicas][position // replicas] for position in range(len(merged))]
    order = interleaved[:n] if not drop_last else interleaved
    assert len(set(order)) == len(order)
    if not drop_last:
        assert interleaved[n:] == (interleaved[:n] * replicas)[:len(merged) - n]


def test_seed_and_epoch_control_the_order():
    first = _shares(50, 2, seed=0)
    assert first == _shares(50, 2, seed=0)
    assert first != _shares(50, 2, seed=1)
    sampler = DistributedSampler(range(50), num_replicas=2, rank=0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 == first[0] and epoch1 != epoch0
    sampler.set_epoch(0)
    assert list(sampler) == epoch0


def test_sampler_drives_a_dataloader():
    sampler = DistributedSampler(list(range(10)), num_replicas=3, rank=2, shuffle=False)
    batches = [batch.tolist() for batch in DataLoader(list(range(10)), batch_size=2, sampler=sampler)]
    assert batches == [[2, 5], [8, 1]]


def test_invalid_rank_matches_torch():
    torch = pytest.importorskip("torch")
    for rank in (-1, 3):
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.DistributedSampler(range(5), num_replicas=3, rank=rank)
        with pytest.raises(ValueError) as ours:
            DistributedSampler(range(5), num_replicas=3, rank=rank)
        assert str(ours.value) == str(theirs.value)


def test_missing_process_group_is_a_value_error():
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(range(5))


def _share_in_group(port, rank, results):
    import disttorch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    try:
        sampler = DistributedSampler(range(7), shuffle=False)
        results.put((rank, sampler.num_replicas, sampler.rank, list(sampler)))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(60)
def test_replicas_and_rank_come_from_the_process_group():
    import multiprocessing
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_share_in_group, args=(port, rank, results)) for rank in range(2)]
    for process in processes:
        process.start()
    reports = sorted(results.get(timeout=45) for _ in processes)
    for process in processes:
        process.join(timeout=15)
        assert process.exitcode == 0
    assert reports == [(0, 2, 0, [0, 2, 4, 6]), (1, 2, 1, [1, 3, 5, 0])]
