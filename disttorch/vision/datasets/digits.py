"""The UCI optical handwritten digits (8x8, 1797 samples), bundled with the package: no download needed."""
import gzip
import os

import numpy as np

from disttorch.core.tensor import Tensor

from .vision import VisionDataset

_DATA_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                          "digits.csv.gz")
MAX_PIXEL = 16


def load_digits():
    """(images, targets): uint8 array (1797, 8, 8) with pixels in 0..16 and int64 labels (1797,)."""
    with gzip.open(_DATA_FILE, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    images = table[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    targets = table[:, 64].astype(np.int64)
    return images, targets


def _split_indices(count, split_seed, test_fraction):
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    order = np.random.default_rng(split_seed).permutation(count)
    test_count = int(round(count * test_fraction))
    return np.sort(order[test_count:]), np.sort(order[:test_count])


class Digits(VisionDataset):
    """The bundled digits as (image, label) pairs, with a deterministic train/test split.

    Without a transform an image is a float32 tensor 1x8x8 in [0, 1]. A transform receives the image as a
    float32 numpy array 8x8 in [0, 1] (so ToTensor() yields the same 1x8x8 tensor). `data` (N, 1, 8, 8)
    and `targets` (N,) hold the whole split as tensors, handy for a TensorDataset. `root` is accepted for
    torchvision-shaped call sites and unused: the data ships inside the package.
    """

    classes = [str(digit) for digit in range(10)]

    def __init__(self, root=None, train=True, transform=None, target_transform=None, split_seed=0,
                 test_fraction=0.2):
        super().__init__(root, train, transform, target_transform)
        images, targets = load_digits()
        train_indices, test_indices = _split_indices(len(targets), split_seed, test_fraction)
        chosen = train_indices if train else test_indices
        self._images = images[chosen].astype(np.float32) / MAX_PIXEL
        self._targets = targets[chosen]
        self.data = Tensor._wrap(self._images[:, None])
        self.targets = Tensor._wrap(self._targets)

    def __len__(self):
        return len(self._targets)

    def __getitem__(self, index):
        target = int(self._targets[index])
        image = self._images[index].copy()
        if self.transform is None:
            image = Tensor._wrap(image[None])  # the default view: a 1x8x8 float32 tensor
        return self._transformed(image, target)
