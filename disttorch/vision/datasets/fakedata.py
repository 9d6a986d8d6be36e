"""FakeData: random images and labels on demand, for trying a pipeline without a download."""
import numpy as np

from .vision import VisionDataset


class FakeData(VisionDataset):
    """`size` samples of (image, label). Sample i is drawn from its own seed (i + random_offset), so it is the
    same every time it is read, in any worker. Without a transform an image is a uint8 numpy array HxWxC
    (HxW for one channel), what disttorch's other datasets give where torchvision gives a PIL image; the
    numbers differ from torchvision's, which come from torch's generator."""

    def __init__(self, size=1000, image_size=(3, 224, 224), num_classes=10, transform=None, target_transform=None,
                 random_offset=0):
        super().__init__(None, True, transform, target_transform)
        if len(image_size) != 3:
            raise ValueError(f"image_size must be (channels, height, width), got {image_size}")
        self.size = size
        self.image_size = tuple(image_size)
        self.num_classes = num_classes
        self.random_offset = random_offset

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        if not -self.size <= index < self.size:
            raise IndexError(f"{type(self).__name__} index out of range: {index} for size {self.size}")
        index %= self.size
        rng = np.random.default_rng(index + self.random_offset)
        channels, height, width = self.image_size
        image = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
        if channels == 1:
            image = image[:, :, 0]
        target = int(rng.integers(0, self.num_classes))
        return self._transformed(image, target)
