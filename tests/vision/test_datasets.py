import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading

import numpy as np
import pytest

import disttorch
from disttorch.utils.data import DataLoader
from disttorch.vision import datasets, transforms

pytestmark = pytest.mark.timeout(60)


def test_bundled_digits():
    images, targets = datasets.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert targets.shape == (1797,) and sorted(set(targets.tolist())) == list(range(10))
    train, test = datasets.Digits(train=True), datasets.Digits(train=False)
    assert len(train) + len(test) == 1797 and len(test) == round(1797 * 0.2)
    image, label = train[0]
    assert tuple(image.shape) == (1, 8, 8) and image.dtype == disttorch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and isinstance(label, int)
    assert tuple(train.data.shape) == (len(train), 1, 8, 8) and train.targets.dtype == disttorch.int64
    np.testing.assert_array_equal(datasets.Digits(train=True).targets.numpy(), train.targets.numpy())
    assert not np.array_equal(datasets.Digits(split_seed=1).targets.numpy(), train.targets.numpy())


def test_digits_sklearn_agrees_when_installed():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    reference = sklearn_datasets.load_digits()
    images, targets = datasets.load_digits()
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(targets, reference.target)


def test_digits_transform_and_loader():
    dataset = datasets.Digits(transform=transforms.Compose([transforms.ToTensor(),
                                                             transforms.Normalize((0.5,), (0.5,))]),
                              target_transform=lambda label: label + 100)
    image, label = dataset[3]
    default_image, default_label = datasets.Digits()[3]
    np.testing.assert_allclose(image.numpy(), (default_image.numpy() - 0.5) / 0.5)
    assert label == default_label + 100
    images, labels = next(iter(DataLoader(dataset, batch_size=16, shuffle=True)))
    assert tuple(images.shape) == (16, 1, 8, 8) and tuple(labels.shape) == (16,)


def _write_idx(path, array, compress):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if compress else open
    with opener(str(path) + (".gz" if compress else ""), "wb") as handle:
        handle.write(header + array.tobytes())


def _tiny_mnist(root, name, compress):
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sets = {}
    for prefix, count in (("train", 5), ("t10k", 3)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count).astype(np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images, compress)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)
        sets[prefix] = (images, labels)
    return sets


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("cls", [datasets.MNIST, datasets.FashionMNIST])
def test_mnist_readers(tmp_path, cls, compress):
    sets = _tiny_mnist(tmp_path, cls.__name__, compress)
    train = cls(tmp_path, train=True)
    test = cls(str(tmp_path), train=False, transform=transforms.ToTensor())
    assert len(train) == 5 and len(test) == 3
    image, label = train[2]
    np.testing.assert_array_equal(image, sets["train"][0][2])
    assert label == int(sets["train"][1][2])
    tensor_image, _ = test[1]
    assert tuple(tensor_image.shape) == (1, 28, 28)
    np.testing.assert_allclose(tensor_image.numpy()[0], sets["t10k"][0][1] / 255.0, rtol=1e-6)
    assert train.data.dtype == disttorch.uint8 and train.targets.dtype == disttorch.int64


def test_mnist_missing_and_corrupt_files(tmp_path):
    with pytest.raises(RuntimeError, match="download=True"):
        datasets.MNIST(tmp_path)
    _tiny_mnist(tmp_path, "MNIST", compress=False)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(RuntimeError, match="truncated"):
        datasets.MNIST(tmp_path)


def _tiny_cifar(root):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        images = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)  # channel planes, as stored
        labels = rng.integers(0, 10, 2).astype(np.uint8)
        records = np.concatenate([labels[:, None], images.reshape(2, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        written[name] = (images, labels)
    return written


def test_cifar10_binary_reader(tmp_path):
    written = _tiny_cifar(tmp_path)
    train = datasets.CIFAR10(tmp_path, train=True)
    test = datasets.CIFAR10(tmp_path, train=False, transform=transforms.ToTensor())
    assert len(train) == 10 and len(test) == 2 and train.data.shape == (10, 32, 32, 3)
    image, label = train[3]  # second record of data_batch_2
    images, labels = written["data_batch_2.bin"]
    np.testing.assert_array_equal(image, images[1].transpose(1, 2, 0))
    assert label == int(labels[1])
    tensor_image, _ = test[0]
    np.testing.assert_allclose(tensor_image.numpy(), written["test_batch.bin"][0][0] / 255.0, rtol=1e-6)
    assert train.class_to_idx["truck"] == 9


def test_cifar10_rejects_partial_records(tmp_path):
    _tiny_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(RuntimeError, match="truncated"):
        datasets.CIFAR10(tmp_path, train=False)


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(RuntimeError, match=r"(?s)Could not download train-images-idx3-ubyte.gz .*127.0.0.1:9"):
        datasets.MNIST(tmp_path, download=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_mirror(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_verifies_md5_over_loopback(tmp_path, monkeypatch, local_mirror):
    served, url = local_mirror
    source = tmp_path / "source"
    _tiny_mnist(source, "MNIST", compress=True)
    resources = []
    for path in sorted((source / "MNIST" / "raw").iterdir()):
        (served / path.name).write_bytes(path.read_bytes())
        resources.append((path.name, hashlib.md5(path.read_bytes()).hexdigest()))
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/", url])
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    dataset = datasets.MNIST(tmp_path / "root", download=True)
    assert len(dataset) == 5
    bad = [(name, "0" * 32) for name, _ in resources]
    monkeypatch.setattr(datasets.MNIST, "resources", bad)
    with pytest.raises(RuntimeError, match="MD5 mismatch"):
        datasets.MNIST(tmp_path / "other", download=True)
    assert not [name for name in os.listdir(tmp_path / "other" / "MNIST" / "raw") if not name.startswith(".")]


def test_cifar10_download_and_extract_over_loopback(tmp_path, monkeypatch, local_mirror):
    import tarfile
    served, url = local_mirror
    _tiny_cifar(tmp_path / "source")
    archive = served / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "source" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    monkeypatch.setattr(datasets.CIFAR10, "mirrors", [url])
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
    dataset = datasets.CIFAR10(tmp_path / "root", train=False, download=True)
    assert len(dataset) == 2 and dataset.data.shape == (2, 32, 32, 3)
