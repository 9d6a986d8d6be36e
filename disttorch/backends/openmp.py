"""torch.backends.openmp: disttorch has no OpenMP kernels of its own (BLAS threads are numpy's)."""


def is_available():
    return False
