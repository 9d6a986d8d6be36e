"""torch.backends.mkldnn: disttorch does not use oneDNN (numpy's BLAS does the CPU work)."""
enabled = True


def is_available():
    return False
