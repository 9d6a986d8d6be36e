import numpy as np
import pytest

import disttorch
from disttorch.vision import transforms


def _image(height=6, width=5, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def test_to_tensor():
    image = _image()
    tensor = transforms.ToTensor()(image)
    assert tuple(tensor.shape) == (3, 6, 5) and tensor.dtype == disttorch.float32
    np.testing.assert_allclose(tensor.numpy(), image.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    gray = transforms.ToTensor()(image[:, :, 0])
    assert tuple(gray.shape) == (1, 6, 5)
    floats = np.full((2, 2), 3.5, np.float32)
    assert transforms.ToTensor()(floats).numpy().max() == 3.5  # only uint8 is rescaled, as in torchvision
    with pytest.raises(TypeError, match="pic should be"):
        transforms.ToTensor()([1, 2])


def test_normalize_and_errors():
    tensor = transforms.ToTensor()(_image())
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    out = transforms.Normalize(mean, std)(tensor)
    expected = (tensor.numpy() - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert not np.allclose(tensor.numpy(), out.numpy())
    same = transforms.Normalize(mean, std, inplace=True)(tensor)
    assert same is tensor
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="std evaluated to zero"):
        transforms.Normalize((0.0,), (0.0,))(disttorch.ones(1, 2, 2))
    with pytest.raises(TypeError, match="float tensor"):
        transforms.Normalize((0.0,), (1.0,))(disttorch.ones(1, 2, 2, dtype=disttorch.int64))
    with pytest.raises(TypeError, match="Tensor Image"):
        transforms.Normalize((0.0,), (1.0,))(np.ones((2, 2, 1), np.float32))


@pytest.mark.parametrize("size", [(9, 7), (3, 2), (6, 12), 4])
def test_resize_bilinear_matches_torch_interpolate(size):
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(1).random((3, 6, 5)).astype(np.float32)
    ours = transforms.Resize(size)(disttorch.from_numpy(image))
    target = size if isinstance(size, tuple) else (int(size * 6 / 5), size)
    expected = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=target, mode="bilinear",
                                               align_corners=False, antialias=False)[0]
    assert tuple(ours.shape) == (3,) + target
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_resize_numpy_uint8_and_nearest():
    torch = pytest.importorskip("torch")
    image = _image()
    out = transforms.Resize((4, 10))(image)
    assert out.shape == (4, 10, 3) and out.dtype == np.uint8
    reference = torch.nn.functional.interpolate(torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32))[None],
                                                size=(4, 10), mode="bilinear", align_corners=False)[0]
    assert np.abs(out.transpose(2, 0, 1).astype(np.float32) - reference.numpy()).max() <= 0.5 + 1e-4
    nearest = transforms.Resize((12, 10), interpolation=transforms.InterpolationMode.NEAREST)(image)
    np.testing.assert_array_equal(nearest, image.repeat(2, axis=0).repeat(2, axis=1))


def test_center_crop():
    image = _image(7, 6)
    np.testing.assert_array_equal(transforms.CenterCrop(3)(image), image[2:5, 2:5])
    tensor = disttorch.from_numpy(image.transpose(2, 0, 1).copy())
    np.testing.assert_array_equal(transforms.CenterCrop((4, 2))(tensor).numpy(), tensor.numpy()[:, 2:6, 2:4])
    padded = transforms.CenterCrop(9)(image)
    assert padded.shape == (9, 9, 3)
    np.testing.assert_array_equal(padded[1:8, 1:7], image)
    assert padded[0].sum() == 0


def test_random_crop_with_padding_is_a_window_of_the_padded_image():
    image = _image(5, 5, 1)
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
    disttorch.manual_seed(0)
    crops = [transforms.RandomCrop(5, padding=2)(image) for _ in range(20)]
    windows = {(top, left) for top in range(5) for left in range(5)
               for crop in crops if np.array_equal(crop, padded[top:top + 5, left:left + 5])}
    assert all(crop.shape == (5, 5, 1) for crop in crops) and len(windows) > 3
    disttorch.manual_seed(0)
    again = [transforms.RandomCrop(5, padding=2)(image) for _ in range(20)]
    assert all(np.array_equal(a, b) for a, b in zip(crops, again))
    reflect = transforms.RandomCrop(9, padding=2, padding_mode="reflect")(image)
    np.testing.assert_array_equal(reflect, np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="reflect"))
    assert transforms.RandomCrop(8, pad_if_needed=True)(image).shape == (8, 8, 1)
    with pytest.raises(ValueError, match="larger than input image size"):
        transforms.RandomCrop(8)(image)


def test_flips():
    image = _image()
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(p=1.0)(image), image[:, ::-1])
    assert transforms.RandomHorizontalFlip(p=0.0)(image) is image
    tensor = disttorch.from_numpy(image.transpose(2, 0, 1).copy())
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(p=1.0)(tensor).numpy(), tensor.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(transforms.RandomVerticalFlip(p=1.0)(image), image[::-1])
    disttorch.manual_seed(1)
    flipped = sum(transforms.RandomHorizontalFlip()(image) is not image for _ in range(200))
    assert 60 < flipped < 140


def test_rotation():
    image = _image(5, 5)
    np.testing.assert_array_equal(transforms.RandomRotation((90, 90))(image), np.rot90(image))
    tensor = disttorch.from_numpy(image.transpose(2, 0, 1).copy())
    rotated = transforms.RandomRotation((-90, -90))(tensor).numpy()
    np.testing.assert_array_equal(rotated, np.rot90(tensor.numpy(), k=-1, axes=(1, 2)))
    assert transforms.RandomRotation(0)(image).tolist() == image.tolist()
    corner = transforms.RandomRotation((45, 45), fill=7)(image)
    assert (corner[0, 0] == 7).all()


def test_compose_and_lambda():
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda t: t * 2)])
    np.testing.assert_allclose(pipeline(_image()).numpy(), _image().transpose(2, 0, 1) / 255.0 * 2, rtol=1e-6)
    assert "ToTensor()" in repr(pipeline)
    with pytest.raises(TypeError, match="Argument lambd should be callable, got 'int'"):
        transforms.Lambda(3)


def test_pil_images_are_accepted_when_pillow_is_installed():
    image_module = pytest.importorskip("PIL.Image")
    array = _image(4, 6)
    pil = image_module.fromarray(array)
    np.testing.assert_allclose(transforms.ToTensor()(pil).numpy(), array.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(p=1.0)(pil), array[:, ::-1])
    assert transforms.Resize((8, 12))(pil).shape == (8, 12, 3)
