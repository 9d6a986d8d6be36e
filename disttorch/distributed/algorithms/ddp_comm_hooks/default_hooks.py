"""PyTorch's import path for the built-in hooks; they are defined in disttorch.nn.parallel.comm_hooks."""
from disttorch.nn.parallel.comm_hooks import (  # noqa: F401
    allreduce_hook, bf16_compress_hook, fp16_compress_hook,
)

__all__ = ["allreduce_hook", "bf16_compress_hook", "fp16_compress_hook"]
