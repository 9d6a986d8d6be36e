"""disttorch.vision: datasets and transforms with torchvision's names."""
from . import datasets, transforms

__all__ = ["datasets", "transforms"]
