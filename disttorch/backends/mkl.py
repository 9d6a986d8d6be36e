"""torch.backends.mkl: disttorch does not call MKL directly (numpy's BLAS, whichever it is, does)."""


def is_available():
    return False
