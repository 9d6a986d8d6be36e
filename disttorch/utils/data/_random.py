"""Randomness for samplers and splits.

Index permutations are drawn with numpy Generators, but every one is seeded from disttorch's RNG (the
global one, or the `generator` the user passed), so `disttorch.manual_seed` and user generators make
shuffling reproducible exactly as they do in PyTorch, and every draw advances the generator's state.
"""
import numpy as np

_SEED_BOUND = 2 ** 62


def draw_seed(generator=None):
    """A fresh 62-bit seed taken from `generator`, or from the global RNG when it is None."""
    import disttorch
    if generator is None:
        return int(disttorch.randint(0, _SEED_BOUND, (1,)).item())
    return int(disttorch.randint(0, _SEED_BOUND, (1,), generator=generator).item())


def numpy_rng(generator=None):
    return np.random.default_rng(draw_seed(generator))


def permutation(n, generator=None):
    return numpy_rng(generator).permutation(n)
