"""MNIST and FashionMNIST from their IDX files, in torchvision's layout: root/<ClassName>/raw/<file>[.gz]."""
import gzip
import os

import numpy as np

from disttorch.core.tensor import Tensor

from ._download import download_file
from .vision import VisionDataset

# IDX type codes (the third magic byte) -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Parse an IDX file (optionally gzip-compressed) into a numpy array of its declared type and shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        content = handle.read()
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
        raise RuntimeError(f"{path} is not an IDX file: bad magic number {content[:4].hex()}")
    ndim = content[3]
    header_end = 4 + 4 * ndim
    shape = tuple(int(size) for size in np.frombuffer(content[4:header_end], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[content[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(content) - header_end != expected:
        raise RuntimeError(f"{path} is truncated or corrupt: its header declares shape {shape} "
                           f"({expected} bytes of data) but it holds {len(content) - header_end}")
    array = np.frombuffer(content, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


class MNIST(VisionDataset):
    """(image, label) pairs. Without a transform an image is a uint8 numpy array HxW (what torchvision
    gives as a PIL image); transforms.ToTensor() turns it into a float32 1xHxW tensor in [0, 1]."""

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, train, transform, target_transform)
        if download:
            self.download()
        prefix = "train" if train else "t10k"
        images = read_idx(self._find(f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(self._find(f"{prefix}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise RuntimeError(f"{self.raw_folder} holds {len(images)} images but {len(labels)} labels")
        self.data = Tensor._wrap(images)
        self.targets = Tensor._wrap(labels.astype(np.int64))

    @property
    def raw_folder(self):
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def class_to_idx(self):
        return {name: index for index, name in enumerate(self.classes)}

    def _find(self, stem):
        for name in (stem, stem + ".gz"):
            path = os.path.join(self.raw_folder, name)
            if os.path.isfile(path):
                return path
        raise RuntimeError(f"Dataset not found: neither {stem} nor {stem}.gz is in {self.raw_folder}. "
                           "You can use download=True to download it.")

    def download(self):
        """Fetch what is missing; files already there, compressed or extracted, are never fetched again."""
        for filename, md5 in self.resources:
            stem = filename[:-len(".gz")]
            if any(os.path.isfile(os.path.join(self.raw_folder, name)) for name in (stem, filename)):
                continue
            download_file(filename, self.mirrors, self.raw_folder, md5)

    def __len__(self):
        return self.data.shape[0]

    def __getitem__(self, index):
        image = self.data._data[index]
        target = int(self.targets._data[index])
        return self._transformed(image, target)


class FashionMNIST(MNIST):
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
