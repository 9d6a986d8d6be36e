"""torchvision.utils: make_grid (a batch of images tiled into one) and save_image (Pillow, an optional extra)."""
import math

import numpy as np

from ..core.tensor import Tensor


def _as_batch(tensor):
    if isinstance(tensor, (list, tuple)):
        if not all(isinstance(t, Tensor) for t in tensor):
            raise TypeError(f"tensor or list of tensors expected, got a list holding "
                            f"{sorted({type(t).__name__ for t in tensor})}")
        return np.stack([np.asarray(t.detach().cpu()._data) for t in tensor])
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensor or list of tensors expected, got {type(tensor).__name__}")
    return np.asarray(tensor.detach().cpu()._data)


def _normalize(images, value_range, scale_each):
    def scaled(array):
        low, high = value_range if value_range is not None else (float(array.min()), float(array.max()))
        return (np.clip(array, low, high) - low) / max(high - low, 1e-5)
    if scale_each:
        return np.stack([scaled(image) for image in images])
    return scaled(images)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """Tile a (B, C, H, W) batch (or a list of (C, H, W) images) into one (3 or C, H', W') image, `nrow`
    images per row with `padding` pixels of `pad_value` around each. Single-channel images become
    three-channel ones, as in torchvision."""
    images = _as_batch(tensor)
    if value_range is not None and not isinstance(value_range, tuple):
        raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        if images.shape[0] == 1:
            images = np.concatenate([images] * 3, axis=0)
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"make_grid expects images of 2, 3 or 4 dimensions, got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = np.concatenate([images] * 3, axis=1)
    if normalize:
        images = _normalize(images.astype(np.float32, copy=True), value_range, scale_each)
    if images.shape[0] == 1:
        return Tensor._wrap(np.ascontiguousarray(images[0]))
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = int(math.ceil(count / columns))
    cell_height, cell_width = height + padding, width + padding
    grid = np.full((channels, cell_height * rows + padding, cell_width * columns + padding), pad_value,
                   dtype=images.dtype)
    for index in range(count):
        top = (index // columns) * cell_height + padding
        left = (index % columns) * cell_width + padding
        grid[:, top:top + height, left:left + width] = images[index]
    return Tensor._wrap(grid)


def save_image(tensor, fp, format=None, **kwargs):
    """make_grid(tensor, **kwargs), scaled from [0, 1] to 8-bit and written by Pillow to a path or file object."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("save_image needs Pillow to encode images: pip install 'disttorch[vision]' "
                          "(or pip install pillow)") from None
    grid = _as_batch(make_grid(tensor, **kwargs))
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    Image.fromarray(np.ascontiguousarray(pixels)).save(fp, format=format)
