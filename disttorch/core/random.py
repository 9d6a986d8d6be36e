"""Random number generation: a global generator seeded by manual_seed, and torch.Generator objects."""
import numpy as np

_DEFAULT_SEED = 67280421310721


class Generator:
    """A seedable stream of random numbers (numpy's PCG64 underneath)."""

    def __init__(self, device="cpu"):
        self.device = device
        self._seed = _DEFAULT_SEED
        self._rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed):
        seed = int(seed)
        if seed < 0:
            seed &= (1 << 64) - 1
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        return self

    def seed(self):
        self.manual_seed(int(np.random.SeedSequence().entropy) & ((1 << 63) - 1))
        return self._seed

    def initial_seed(self):
        return self._seed

    def get_state(self):
        from .tensor import Tensor
        state = self._rng.bit_generator.state
        words = [state["state"]["state"], state["state"]["inc"], state["has_uint32"], state["uinteger"]]
        as_bytes = b"".join(int(w).to_bytes(16, "little") for w in words)
        return Tensor._wrap(np.frombuffer(as_bytes, dtype=np.uint8).copy())

    def set_state(self, new_state):
        raw = bytes(np.asarray(new_state._data, dtype=np.uint8))
        words = [int.from_bytes(raw[i:i + 16], "little") for i in range(0, 64, 16)]
        self._rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": words[0], "inc": words[1]},
            "has_uint32": words[2],
            "uinteger": words[3],
        }
        return self

    @property
    def numpy(self):
        return self._rng


default_generator = Generator()


def manual_seed(seed):
    default_generator.manual_seed(seed)
    return default_generator


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)


def rng(generator=None):
    return (generator or default_generator)._rng


def uniform_array(shape, low, high, generator=None):
    return rng(generator).uniform(low, high, size=shape)


def normal_array(shape, mean, std, generator=None):
    return rng(generator).normal(mean, std, size=shape)
