"""Samplers: which dataset indices to visit, in what order, and how to group them into batches."""
import itertools

import numpy as np

from disttorch.core.tensor import Tensor

from ._random import numpy_rng


class Sampler:
    """Iterates over dataset indices (or over lists of indices, for batch samplers)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _check_positive_int(name, value, error=ValueError):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise error(f"{name} should be a positive integer value, but got {name}={value}")


def _check_bool(name, value, error=ValueError):
    if not isinstance(value, bool):
        raise error(f"{name} should be a boolean value, but got {name}={value}")


class RandomSampler(Sampler):
    """A random permutation each epoch, or `num_samples` draws with replacement."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        _check_bool("replacement", replacement, TypeError)
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    # Draws with replacement come in chunks of this many, as torch's sampler takes them, so an epoch of
    # num_samples=10**10 costs memory for one chunk, not for every index up front.
    _CHUNK = 32

    def __iter__(self):
        n = len(self.data_source)
        rng = numpy_rng(self.generator)
        if self.replacement:
            full_chunks, remainder = divmod(self.num_samples, self._CHUNK)
            for _ in range(full_chunks):
                yield from rng.integers(0, n, self._CHUNK).tolist()
            if remainder:
                yield from rng.integers(0, n, remainder).tolist()
            return
        full_passes, remainder = divmod(self.num_samples, n)
        for _ in range(full_passes):
            yield from rng.permutation(n).tolist()
        if remainder:
            yield from rng.permutation(n)[:remainder].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order each epoch."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        order = numpy_rng(self.generator).permutation(len(self.indices))
        return (self.indices[i] for i in order.tolist())

    def __len__(self):
        return len(self.indices)


def _as_float64_array(values):
    if isinstance(values, Tensor):
        values = values.numpy() if values.device.type == "cpu" else values.cpu().numpy()
    return np.asarray(values, dtype=np.float64)


class WeightedRandomSampler(Sampler):
    """`num_samples` indices drawn with probability proportional to `weights`."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        _check_positive_int("num_samples", num_samples)
        _check_bool("replacement", replacement)
        weights_array = _as_float64_array(weights)
        if weights_array.ndim != 1:
            raise ValueError("weights should be a 1d sequence but given "
                             f"weights have shape {tuple(weights_array.shape)}")
        self.weights = Tensor._wrap(weights_array)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        weights = self.weights.numpy()
        if np.any(weights < 0) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (weights must be finite, non-negative, and "
                               "sum to a positive value)")
        nonzero = int(np.count_nonzero(weights))
        if not self.replacement and self.num_samples > nonzero:
            raise RuntimeError(f"cannot sample n_sample={self.num_samples} > number of non-zero weights "
                               f"({nonzero}) without replacement; lower num_samples or set replacement=True")
        rng = numpy_rng(self.generator)
        draws = rng.choice(len(weights), self.num_samples, replace=self.replacement, p=weights / weights.sum())
        return iter(draws.tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups the indices of `sampler` into lists of `batch_size`."""

    def __init__(self, sampler, batch_size, drop_last):
        _check_positive_int("batch_size", batch_size)
        _check_bool("drop_last", drop_last)
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        while True:
            batch = list(itertools.islice(indices, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler"]
