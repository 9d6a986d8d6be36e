"""CIFAR-10 from its binary version (cifar-10-batches-bin): fixed-size records, read without pickle.

A folder torchvision extracted (cifar-10-batches-py, pickled batches) is read too, through an unpickler
that admits nothing but numpy's array reconstruction, so no download is needed where either exists.
"""
import os
import pickle
import tarfile

import numpy as np


from ._download import check_integrity, download_file
from .vision import VisionDataset

_IMAGE_BYTES = 3 * 32 * 32
_RECORD_BYTES = 1 + _IMAGE_BYTES


def read_cifar_batch(path):
    """(images uint8 N x 32 x 32 x 3, labels int64 N) from one .bin file of 1-byte-label records."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % _RECORD_BYTES:
        raise RuntimeError(f"{path} is truncated or corrupt: {raw.size} bytes is not a whole number of "
                           f"{_RECORD_BYTES}-byte CIFAR-10 records")
    records = raw.reshape(-1, _RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.size and labels.max() > 9:
        raise RuntimeError(f"{path} holds label {labels.max()}, but CIFAR-10 labels are 0..9; is it a "
                           "CIFAR-100 file?")
    # each record stores the red plane, then green, then blue, each 32x32 row-major
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


_PICKLE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"a CIFAR-10 batch may hold only numpy arrays, lists and dicts; this one "
                                         f"refers to {module}.{name}")
        if module == "_codecs":
            import codecs
            return codecs.encode  # how protocol-2 pickles written by Python 3 spell bytes
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstruct, wherever numpy keeps it
        return getattr(np, name)


def read_cifar_pickle(path):
    """(images uint8 N x 32 x 32 x 3, labels int64 N) from one batch of torchvision's cifar-10-batches-py."""
    with open(path, "rb") as handle:
        batch = _ArraysOnlyUnpickler(handle, encoding="latin1").load()
    data = batch.get("data", batch.get(b"data"))
    labels = batch.get("labels", batch.get(b"labels"))
    images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


class CIFAR10(VisionDataset):
    """(image, label) pairs. Without a transform an image is a uint8 numpy array 32x32x3 (HWC, what
    torchvision gives as a PIL image); `data` is the N x 32 x 32 x 3 array and `targets` a list of ints."""

    base_folder = "cifar-10-batches-bin"
    torchvision_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    mirrors = ["https://www.cs.toronto.edu/~kriz/"]
    filename = "cifar-10-binary.tar.gz"
    tgz_md5 = "c32a1d4ab5d03f1284b67883e8d87530"
    train_list = [f"data_batch_{index}.bin" for index in range(1, 6)]
    test_list = ["test_batch.bin"]
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, train, transform, target_transform)
        if download:
            self.download()
        images, labels = [], []
        for name in self.train_list if train else self.test_list:
            path = os.path.join(self.root, self.base_folder, name)
            pickled = os.path.join(self.root, self.torchvision_folder, name[:-len(".bin")])
            if os.path.isfile(path):
                batch_images, batch_labels = read_cifar_batch(path)
            elif os.path.isfile(pickled):
                batch_images, batch_labels = read_cifar_pickle(pickled)
            else:
                raise RuntimeError(f"Dataset not found or corrupted: {path} is missing. You can use "
                                   "download=True to download it.")
            images.append(batch_images)
            labels.append(batch_labels)
        self.data = np.concatenate(images)
        self.targets = np.concatenate(labels).tolist()

    @property
    def class_to_idx(self):
        return {name: index for index, name in enumerate(self.classes)}

    def download(self):
        folder = os.path.join(self.root, self.base_folder)
        if all(os.path.isfile(os.path.join(folder, name)) for name in self.train_list + self.test_list):
            return
        pickled = os.path.join(self.root, self.torchvision_folder)
        if all(os.path.isfile(os.path.join(pickled, name[:-len(".bin")])) for name in self.train_list + self.test_list):
            return
        archive = download_file(self.filename, self.mirrors, self.root, self.tgz_md5)
        if not check_integrity(archive, self.tgz_md5):
            raise RuntimeError(f"{archive} does not match its MD5 {self.tgz_md5}; delete it and retry")
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(self.root, filter="data")

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        image, target = self.data[index], self.targets[index]
        return self._transformed(image, target)
