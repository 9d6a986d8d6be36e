"""torch.backends: what this build can run on, and the tuning flags scripts set before training.

disttorch computes with numpy (and cupy on a GPU); it links neither cuDNN, MKL-DNN, MPS nor OpenMP
itself, so those report unavailable. Flags such as `cudnn.benchmark` are accepted and recorded (the
attribute reads back what was set) but change nothing, since no kernel here consults them.
"""
from . import cpu, cuda, cudnn, mkl, mkldnn, mps, openmp  # noqa: F401

__all__ = ["cpu", "cuda", "cudnn", "mkl", "mkldnn", "mps", "openmp"]
