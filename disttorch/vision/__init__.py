"""disttorch.vision: datasets, models, transforms and utils with torchvision's names."""
from . import datasets, models, transforms, utils

__all__ = ["datasets", "models", "transforms", "utils"]
