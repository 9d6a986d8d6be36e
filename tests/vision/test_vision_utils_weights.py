"""torchvision.utils (make_grid, save_image), the weights enums with `pretrained=`, FakeData, and datasets that
find their files already on disk."""
import gzip
import os
import pickle
import warnings

import numpy as np
import pytest

import disttorch
from disttorch.vision import datasets, models, transforms, utils


def test_make_grid_tiles_images_row_major_with_padding():
    batch = disttorch.tensor(np.arange(5 * 3 * 2 * 4, dtype=np.float32).reshape(5, 3, 2, 4))
    grid = utils.make_grid(batch, nrow=2, padding=1, pad_value=-1.0).numpy()
    # 2 columns x 3 rows of (2 x 4) cells, 1 pixel of padding around each
    assert grid.shape == (3, 3 * 3 + 1, 2 * 5 + 1)
    for index in range(5):
        top, left = 1 + (index // 2) * 3, 1 + (index % 2) * 5
        np.testing.assert_array_equal(grid[:, top:top + 2, left:left + 4], batch.numpy()[index])
    # the sixth cell is empty: padding colour only
    assert (grid[:, 7:9, 6:10] == -1).all()
    assert (grid[:, 0, :] == -1).all() and (grid[:, :, 0] == -1).all()


def test_make_grid_one_channel_becomes_three_and_normalize_scales_to_unit_range():
    batch = disttorch.tensor(np.array([[[[0.0, 2.0]]], [[[4.0, 8.0]]]], dtype=np.float32))
    grid = utils.make_grid(batch, padding=0, normalize=True).numpy()
    assert grid.shape == (3, 1, 4)
    np.testing.assert_allclose(grid[0, 0], [0, 0.25, 0.5, 1.0])
    each = utils.make_grid(batch, padding=0, normalize=True, scale_each=True).numpy()
    np.testing.assert_allclose(each[1, 0], [0, 1, 0, 1])
    fixed = utils.make_grid(batch, padding=0, normalize=True, value_range=(0.0, 4.0)).numpy()
    np.testing.assert_allclose(fixed[2, 0], [0, 0.5, 1, 1])
    single = utils.make_grid(disttorch.ones(1, 5, 5))
    assert tuple(single.shape) == (3, 5, 5)
    with pytest.raises(TypeError, match="tensor or list of tensors"):
        utils.make_grid(np.zeros((2, 3, 4, 4)))


def test_save_image_writes_the_grid_as_8_bit_pixels(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    values = np.linspace(0, 1, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    path = tmp_path / "grid.png"
    utils.save_image(disttorch.tensor(values), path, nrow=2, padding=0)
    saved = np.asarray(image_module.open(path))
    expected = np.clip(np.concatenate(list(values), axis=2) * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(saved, expected)


def test_weights_none_builds_randomly_initialised_models():
    assert models.resnet18(weights=None).fc.out_features == 1000
    assert models.resnet18(weights=None, num_classes=7).fc.out_features == 7
    assert models.ResNet18_Weights.DEFAULT is models.ResNet18_Weights.IMAGENET1K_V1
    assert models.ResNet50_Weights.DEFAULT is models.ResNet50_Weights.IMAGENET1K_V2
    assert models.get_weight("VGG16_Weights.DEFAULT") is models.VGG16_Weights.IMAGENET1K_V1


def test_default_weights_give_an_offline_error_that_says_how_to_convert(monkeypatch):
    monkeypatch.delenv("DISTTORCH_WEIGHTS_DIR", raising=False)
    with pytest.raises(RuntimeError, match="does not download pretrained weights") as raised:
        models.resnet18(weights=models.ResNet18_Weights.DEFAULT)
    assert "resnet18-f37072fd.safetensors" in str(raised.value) and "DISTTORCH_WEIGHTS_DIR" in str(raised.value)
    with pytest.raises(RuntimeError, match="does not download"):
        models.alexnet(weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="IMAGENET1K_V9"):
        models.resnet18(weights="IMAGENET1K_V9")
    with pytest.raises(TypeError, match="ResNet18_Weights"):
        models.resnet18(weights=models.ResNet34_Weights.DEFAULT)


def test_weights_enum_loads_a_converted_file_from_the_weights_dir(tmp_path, monkeypatch):
    source = models.resnet18(weights=None, num_classes=3)
    disttorch.save(source.state_dict(), tmp_path / "resnet18-f37072fd.safetensors")
    monkeypatch.setenv("DISTTORCH_WEIGHTS_DIR", str(tmp_path))
    loaded = models.resnet18(weights=models.ResNet18_Weights.IMAGENET1K_V1)
    assert loaded.fc.out_features == 3
    np.testing.assert_array_equal(loaded.conv1.weight.detach().numpy(), source.conv1.weight.detach().numpy())
    state = models.ResNet18_Weights.DEFAULT.get_state_dict(progress=False)
    assert set(state) == set(source.state_dict())


def test_pretrained_keyword_warns_and_maps_onto_weights(monkeypatch):
    monkeypatch.delenv("DISTTORCH_WEIGHTS_DIR", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = models.resnet18(pretrained=False, num_classes=4)
    assert model.fc.out_features == 4
    assert any("'pretrained' is deprecated" in str(w.message) for w in caught)
    with pytest.warns(UserWarning, match="equivalent to passing `weights=ResNet18_Weights.IMAGENET1K_V1`"):
        with pytest.raises(RuntimeError, match="does not download"):
            models.resnet18(pretrained=True)


def test_weights_transforms_is_the_imagenet_preset():
    preset = models.ResNet18_Weights.DEFAULT.transforms()
    image = np.random.default_rng(0).integers(0, 256, size=(300, 260, 3), dtype=np.uint8)
    out = preset(image)
    assert tuple(out.shape) == (3, 224, 224)
    assert preset.mean == [0.485, 0.456, 0.406]


def test_fakedata_samples_are_stable_and_shaped_like_the_request():
    data = datasets.FakeData(size=6, image_size=(3, 8, 10), num_classes=4, transform=transforms.ToTensor())
    assert len(data) == 6
    image, label = data[2]
    assert tuple(image.shape) == (3, 8, 10) and 0 <= label < 4 and isinstance(label, int)
    again, label_again = data[2]
    np.testing.assert_array_equal(image.numpy(), again.numpy())
    assert label == label_again
    gray, _ = datasets.FakeData(size=2, image_size=(1, 5, 5))[0]
    assert gray.shape == (5, 5) and gray.dtype == np.uint8
    with pytest.raises(IndexError):
        data[6]
    loader = disttorch.utils.data.DataLoader(data, batch_size=3)
    images, labels = next(iter(loader))
    assert tuple(images.shape) == (3, 3, 8, 10) and tuple(labels.shape) == (3,)


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compressed", [False, True])
def test_mnist_with_download_true_uses_files_already_on_disk(tmp_path, compressed):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 6), ("t10k", 3)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(count, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, size=count))
    if compressed:
        for name in os.listdir(raw):
            with open(raw / name, "rb") as plain, gzip.open(raw / (name + ".gz"), "wb") as packed:
                packed.write(plain.read())
            os.unlink(raw / name)

    class MNIST(datasets.MNIST):  # the class name is the folder name, as in torchvision
        mirrors = ["http://127.0.0.1:9/unreachable/"]  # a download attempt would fail loudly

    train = MNIST(str(tmp_path), train=True, download=True)
    assert len(train) == 6
    test = MNIST(str(tmp_path), train=False, download=True)
    assert len(test) == 3


def test_cifar10_reads_torchvisions_extracted_pickles_without_downloading(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    expected = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=4)]
        expected[name] = (data, labels)
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, handle, protocol=2)

    class Offline(datasets.CIFAR10):
        mirrors = ["http://127.0.0.1:9/unreachable/"]

    test = Offline(str(tmp_path), train=False, download=True)
    data, labels = expected["test_batch"]
    assert test.targets == labels
    np.testing.assert_array_equal(test.data[1], data[1].reshape(3, 32, 32).transpose(1, 2, 0))
    assert len(Offline(str(tmp_path), train=True)) == 20


def test_cifar10_pickles_may_not_name_other_globals(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"data": os.getcwd, "labels": []}, handle)
    with pytest.raises(pickle.UnpicklingError, match="posix.getcwd"):
        datasets.CIFAR10(str(tmp_path), train=False)
