"""torch.backends.cpu."""


def get_cpu_capability():
    """disttorch has no vectorised kernels of its own to dispatch; numpy picks its SIMD level itself."""
    return "DEFAULT"
