"""torch.backends.cuda: whether the CUDA (cupy) backend is present, and recorded matmul/attention flags."""
from ..core import backend as _backend


class _MatmulFlags:
    """`torch.backends.cuda.matmul.allow_tf32 = True` is recorded; cupy matmuls keep full float32."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True


matmul = _MatmulFlags()

# scaled_dot_product_attention always takes the plain (math) path here; the toggles are recorded only.
_sdp = {"flash": True, "mem_efficient": True, "math": True, "cudnn": True}


def is_built():
    """True when cupy is importable, i.e. 'cuda' tensors could exist on a machine with a GPU."""
    return _backend._cupy is not None


def flash_sdp_enabled():
    return _sdp["flash"]


def enable_flash_sdp(enabled):
    _sdp["flash"] = bool(enabled)


def mem_efficient_sdp_enabled():
    return _sdp["mem_efficient"]


def enable_mem_efficient_sdp(enabled):
    _sdp["mem_efficient"] = bool(enabled)


def math_sdp_enabled():
    return _sdp["math"]


def enable_math_sdp(enabled):
    _sdp["math"] = bool(enabled)


def cudnn_sdp_enabled():
    return _sdp["cudnn"]


def enable_cudnn_sdp(enabled):
    _sdp["cudnn"] = bool(enabled)
