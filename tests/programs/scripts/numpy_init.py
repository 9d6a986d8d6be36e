"""Shared by the test programs: parameters and data drawn from numpy, so that a program run on PyTorch and
the same program run on disttorch start from identical numbers (their own random streams differ)."""
import math

import numpy as np
import torch
import torch.nn as nn

_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def init_parameters(model, seed=0):
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every parameter outside normalisation layers, which keep
    their deterministic ones/zeros. fan_in comes from the module's first matrix-shaped parameter."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _NORM_LAYERS):
                continue
            params = list(module.named_parameters(recurse=False))
            matrices = [p for _, p in params if p.dim() >= 2]
            for _, param in params:
                shape = tuple(param.shape)
                reference = tuple(matrices[0].shape) if matrices else shape
                fan_in = max(1, int(np.prod(reference[1:])) if len(reference) > 1 else reference[0])
                bound = 1.0 / math.sqrt(fan_in)
                values = rng.uniform(-bound, bound, size=shape).astype(np.float32)
                param.copy_(torch.from_numpy(values).to(param.dtype))
    return model


def normal(shape, seed, scale=1.0):
    """A float32 tensor of standard-normal draws (times scale) from numpy."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy((scale * rng.standard_normal(shape)).astype(np.float32))


def labels(count, classes, seed):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, classes, size=count).astype(np.int64))
