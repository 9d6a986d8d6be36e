"""disttorch.vision: datasets and transforms with torchvision's names."""
from . import datasets, models, transforms

__all__ = ["datasets", "models", "transforms"]
