"""Randomness for samplers and splits: numpy Generators behind disttorch's generators.

Drawing from the generator the user passed (or the global one) keeps shuffling reproducible under
disttorch.manual_seed, and every draw advances that generator's state, as in PyTorch.
"""
from disttorch.core.random import rng

_SEED_BOUND = 2 ** 62


def numpy_rng(generator=None):
    return rng(generator)


def draw_seed(generator=None):
    """A fresh 62-bit seed taken from `generator`, or from the global RNG when it is None."""
    return int(rng(generator).integers(0, _SEED_BOUND))


def permutation(n, generator=None):
    return rng(generator).permutation(n)
