import numpy as np
import pytest

import disttorch
from disttorch.utils.data import (BatchSampler, ConcatDataset, Dataset, RandomSampler, SequentialSampler,
                                  Subset, SubsetRandomSampler, TensorDataset, WeightedRandomSampler,
                                  random_split)


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if not 0 <= index < self.n:
            raise IndexError(index)
        return index


def test_tensor_dataset_rows_and_length_check():
    x, y = disttorch.arange(12).reshape(6, 2), disttorch.arange(6)
    dataset = TensorDataset(x, y)
    assert len(dataset) == 6
    row, label = dataset[4]
    assert row.tolist() == [8, 9] and label.item() == 4
    with pytest.raises(AssertionError, match="Size mismatch"):
        TensorDataset(x, disttorch.arange(5))


def test_concat_subset_and_add():
    combined = Range(3) + Range(4)
    assert isinstance(combined, ConcatDataset)
    assert [combined[i] for i in range(len(combined))] == [0, 1, 2, 0, 1, 2, 3]
    assert combined[-1] == 3 and combined.cumulative_sizes == [3, 7]
    subset = Subset(Range(10), [7, 2, 5])
    assert len(subset) == 3 and [subset[i] for i in range(3)] == [7, 2, 5]
    assert subset.__getitems__([0, 2]) == [7, 5]


def test_random_split_lengths_fractions_and_generator():
    dataset = Range(10)
    first, second = random_split(dataset, [3, 7], generator=disttorch.Generator().manual_seed(1))
    assert len(first) == 3 and len(second) == 7
    assert sorted(first.indices + second.indices) == list(range(10))
    again, _ = random_split(dataset, [3, 7], generator=disttorch.Generator().manual_seed(1))
    assert again.indices == first.indices
    parts = random_split(Range(11), [0.5, 0.3, 0.2])
    assert [len(part) for part in parts] == [6, 3, 2]  # the remainder goes to the first splits, as in PyTorch
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(dataset, [3, 3])


def test_random_split_fraction_lengths_match_torch():
    torch = pytest.importorskip("torch")
    for total, fractions in [(11, [0.5, 0.3, 0.2]), (7, [0.25, 0.25, 0.5]), (100, [0.333, 0.333, 0.334])]:
        ours = [len(part) for part in random_split(Range(total), fractions)]
        theirs = [len(part) for part in torch.utils.data.random_split(range(total), fractions)]
        assert ours == theirs


def test_sequential_and_random_sampler():
    assert list(SequentialSampler(Range(4))) == [0, 1, 2, 3]
    disttorch.manual_seed(3)
    order = list(RandomSampler(Range(20)))
    assert sorted(order) == list(range(20)) and order != list(range(20))
    disttorch.manual_seed(3)
    assert list(RandomSampler(Range(20))) == order
    drawn = list(RandomSampler(Range(5), replacement=True, num_samples=50))
    assert len(drawn) == 50 and set(drawn) <= set(range(5))
    longer = list(RandomSampler(Range(4), num_samples=10))
    assert len(longer) == 10 and sorted(longer[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_random_sampler_generator_advances():
    generator = disttorch.Generator().manual_seed(0)
    sampler = RandomSampler(Range(30), generator=generator)
    first, second = list(sampler), list(sampler)
    assert first != second
    generator.manual_seed(0)
    assert list(sampler) == first


def test_sampler_argument_errors_match_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (lambda m: m.RandomSampler(range(3), replacement=1)),
        (lambda m: m.RandomSampler(range(3), num_samples=0)),
        (lambda m: m.BatchSampler(range(3), 0, False)),
        (lambda m: m.BatchSampler(range(3), True, False)),
        (lambda m: m.BatchSampler(range(3), 2, 1)),
        (lambda m: m.WeightedRandomSampler([1.0, 2.0], 0)),
        (lambda m: m.WeightedRandomSampler([[1.0, 2.0]], 1)),
        (lambda m: m.WeightedRandomSampler([1.0, 2.0], 1, replacement=0)),
    ]
    import disttorch.utils.data as ours
    for case in cases:
        with pytest.raises(Exception) as theirs:
            case(torch.utils.data)
        with pytest.raises(type(theirs.value)) as mine:
            case(ours)
        assert str(mine.value) == str(theirs.value)


def test_subset_random_and_weighted_samplers():
    indices = [10, 20, 30, 40]
    drawn = list(SubsetRandomSampler(indices, generator=disttorch.Generator().manual_seed(2)))
    assert sorted(drawn) == indices
    weights = [0.0, 0.0, 1.0, 3.0]
    draws = list(WeightedRandomSampler(weights, 4000, generator=disttorch.Generator().manual_seed(0)))
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == counts[1] == 0
    assert 2.5 < counts[3] / counts[2] < 3.5
    assert sorted(WeightedRandomSampler(weights, 2, replacement=False)) == [2, 3]
    with pytest.raises(RuntimeError, match="without replacement"):
        list(WeightedRandomSampler(weights, 3, replacement=False))


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_matches_torch(drop_last):
    torch = pytest.importorskip("torch")
    ours = BatchSampler(range(10), 3, drop_last)
    theirs = torch.utils.data.BatchSampler(range(10), 3, drop_last)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_random_sampler_with_replacement_draws_lazily():
    import itertools
    import tracemalloc
    from disttorch.utils.data import DataLoader, RandomSampler
    sampler = RandomSampler(range(10), replacement=True, num_samples=10 ** 10)
    assert len(sampler) == 10 ** 10
    tracemalloc.start()
    try:
        first = list(itertools.islice(iter(sampler), 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # a chunk at a time, not 10**10 indices (80 GB)
    assert len(first) == 1000 and set(first) <= set(range(10)) and len(set(first)) == 10
    loader = DataLoader(list(range(10)), batch_size=4, sampler=sampler)
    assert next(iter(loader)).shape == (4,)


def test_random_sampler_draws_are_reproducible_and_cover_uneven_counts():
    from disttorch.utils.data import RandomSampler
    for replacement, count in ((True, 70), (False, 23)):
        g1, g2 = disttorch.Generator().manual_seed(3), disttorch.Generator().manual_seed(3)
        a = list(RandomSampler(range(10), replacement, count, generator=g1))
        b = list(RandomSampler(range(10), replacement, count, generator=g2))
        assert a == b and len(a) == count
    no_replacement = list(RandomSampler(range(10), num_samples=23, generator=g1))
    assert sorted(no_replacement[:10]) == list(range(10)) and sorted(no_replacement[10:20]) == list(range(10))
