"""DistributedSampler: each of num_replicas processes reads its own, equally long share of the dataset."""
import math

import numpy as np

from .sampler import Sampler


def _default_group_value(getter_name):
    from disttorch import distributed
    is_initialized = getattr(distributed, "is_initialized", None)
    if is_initialized is None or not is_initialized():
        raise ValueError("Default process group has not been initialized, please make sure to call "
                         "init_process_group (or pass num_replicas and rank to DistributedSampler).")
    return getattr(distributed, getter_name)()


class DistributedSampler(Sampler):
    """PyTorch's partition: optionally shuffle with seed + epoch, pad by repeating indices from the start
    (or drop the tail when drop_last), then rank r takes indices[r::num_replicas]."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None:
            num_replicas = _default_group_value("get_world_size")
        if rank is None:
            rank = _default_group_value("get_rank")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        if drop_last and len(dataset) % num_replicas != 0:
            # the largest per-replica count that every replica can fill without padding
            self.num_samples = math.ceil((len(dataset) - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(len(dataset) / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def _epoch_order(self):
        if self.shuffle:
            # every replica derives the same permutation from (seed, epoch), so shares never overlap
            return np.random.default_rng(self.seed + self.epoch).permutation(len(self.dataset)).tolist()
        return list(range(len(self.dataset)))

    def __iter__(self):
        indices = self._epoch_order()
        if self.drop_last:
            indices = indices[:self.total_size]
        else:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        assert len(indices) == self.total_size
        share = indices[self.rank:self.total_size:self.num_replicas]
        assert len(share) == self.num_samples
        return iter(share)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Call at the start of every epoch so that shuffle=True gives a new order each epoch."""
        self.epoch = epoch


__all__ = ["DistributedSampler"]
