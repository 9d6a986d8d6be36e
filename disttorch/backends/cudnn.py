"""torch.backends.cudnn: disttorch's GPU path is cupy without cuDNN, so cuDNN is never available.

The flags keep PyTorch's defaults and hold whatever a script assigns; no kernel reads them.
"""
enabled = True
benchmark = False
deterministic = False
allow_tf32 = True
benchmark_limit = 10


def is_available():
    return False


def version():
    return None


def is_acceptable(tensor):
    return False
