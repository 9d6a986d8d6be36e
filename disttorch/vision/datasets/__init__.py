"""disttorch.vision.datasets: the bundled UCI digits, FakeData, MNIST, FashionMNIST and CIFAR-10 (torchvision's names)."""
from .cifar import CIFAR10
from .digits import Digits, load_digits
from .fakedata import FakeData
from .mnist import MNIST, FashionMNIST, read_idx
from .vision import VisionDataset

__all__ = ["CIFAR10", "Digits", "FakeData", "FashionMNIST", "MNIST", "VisionDataset", "load_digits", "read_idx"]
