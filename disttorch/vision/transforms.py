"""Image transforms with torchvision's names, on numpy images (HxW or HxWxC, like PIL images), on tensors
(..., C, H, W), and on PIL images when Pillow is installed (converted to numpy arrays on entry).

Random transforms draw from disttorch's RNG, so disttorch.manual_seed and DataLoader worker seeding make
them reproducible.
"""
import math
import numbers

import numpy as np

from disttorch.core.tensor import Tensor

__all__ = ["CenterCrop", "Compose", "InterpolationMode", "Lambda", "Normalize", "RandomCrop",
           "RandomHorizontalFlip", "RandomRotation", "RandomVerticalFlip", "Resize", "ToTensor"]


class InterpolationMode:
    NEAREST = "nearest"
    BILINEAR = "bilinear"


def _is_pil_image(img):
    return type(img).__module__.startswith("PIL.")


class _Image:
    """An image as an ndarray plus where its height and width axes are, to rebuild the same kind after."""

    def __init__(self, img):
        self.is_tensor = isinstance(img, Tensor)
        if self.is_tensor:
            self.array = img._data
            if self.array.ndim < 2:
                raise TypeError(f"Tensor images need at least 2 dimensions (..., H, W); got shape "
                                f"{tuple(self.array.shape)}")
            self.height_axis = self.array.ndim - 2
        else:
            self.array = np.asarray(img) if _is_pil_image(img) else img
            if not isinstance(self.array, np.ndarray) or self.array.ndim not in (2, 3):
                raise TypeError(f"img should be a numpy image (HxW or HxWxC), a PIL image or a tensor (..., C, "
                                f"H, W); got {type(img).__name__}")
            self.height_axis = 0

    @property
    def size(self):
        return self.array.shape[self.height_axis], self.array.shape[self.height_axis + 1]

    def spatial_index(self, rows, cols):
        index = [slice(None)] * self.array.ndim
        index[self.height_axis], index[self.height_axis + 1] = rows, cols
        return tuple(index)

    def rebuild(self, array):
        return Tensor._wrap(array) if self.is_tensor else array


def _uniform(low, high):
    import disttorch
    return low + (high - low) * float(disttorch.rand(1).item())


def _randint(low, high):
    import disttorch
    return int(disttorch.randint(low, high, (1,)).item())


def _pair(size, name):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if len(size) == 1:
        return int(size[0]), int(size[0])
    if len(size) != 2:
        raise ValueError(f"Please provide only two dimensions (h, w) for {name}; got {size}")
    return int(size[0]), int(size[1])


class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, img):
        for transform in self.transforms:
            img = transform(img)
        return img

    def __repr__(self):
        lines = "".join(f"\n    {transform}" for transform in self.transforms)
        return f"{type(self).__name__}({lines}\n)"


class ToTensor:
    """HxWxC (or HxW) image -> CxHxW tensor; uint8 is scaled to float32 in [0, 1], other dtypes keep
    their values."""

    def __call__(self, pic):
        if isinstance(pic, Tensor):
            raise TypeError("pic should be a numpy array or PIL image, got a Tensor; it is already a tensor")
        array = np.asarray(pic) if _is_pil_image(pic) else pic
        if not isinstance(array, np.ndarray) or array.ndim not in (2, 3):
            raise TypeError(f"pic should be a numpy array (HxW or HxWxC) or PIL image, got {type(pic).__name__}"
                            + (f" with {array.ndim} dimensions" if isinstance(array, np.ndarray) else ""))
        if array.ndim == 2:
            array = array[:, :, None]
        chw = np.ascontiguousarray(array.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            from disttorch.core.dtype import get_default_dtype
            chw = chw.astype(get_default_dtype().numpy) / np.asarray(255, dtype=get_default_dtype().numpy)
        return Tensor._wrap(chw)

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    """(image - mean) / std per channel, on a float tensor (..., C, H, W)."""

    def __init__(self, mean, std, inplace=False):
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def __call__(self, tensor):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"img should be Tensor Image. Got {type(tensor)}; apply ToTensor() first")
        array = tensor._data
        if array.dtype.kind != "f":
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if array.ndim < 3:
            raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = "
                             f"{tuple(array.shape)}")
        from disttorch.core.backend import get_array_module
        xp = get_array_module(array)
        mean = xp.asarray(self.mean, dtype=array.dtype).reshape(-1, 1, 1)
        std = xp.asarray(self.std, dtype=array.dtype).reshape(-1, 1, 1)
        if bool((std == 0).any()):
            raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading to division by "
                             "zero.")
        if self.inplace:
            array -= mean
            array /= std
            return tensor
        return Tensor._wrap((array - mean) / std)

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def _resize_axis(array, axis, out_size, mode):
    """Interpolate along one axis with half-pixel centres (align_corners=False), like F.interpolate."""
    in_size = array.shape[axis]
    scale = in_size / out_size
    positions = np.arange(out_size, dtype=np.float64)
    if mode == InterpolationMode.NEAREST:
        source = np.minimum(np.floor(positions * scale).astype(np.int64), in_size - 1)
        return np.take(array, source, axis=axis)
    source = np.maximum((positions + 0.5) * scale - 0.5, 0.0)
    lower = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    upper = np.minimum(lower + 1, in_size - 1)
    weight_shape = [1] * array.ndim
    weight_shape[axis] = out_size
    upper_weight = (source - lower).reshape(weight_shape)
    return np.take(array, lower, axis=axis) * (1 - upper_weight) + np.take(array, upper, axis=axis) * upper_weight


def _output_size(size, height, width, max_size):
    if not isinstance(size, numbers.Number) and len(size) == 2:
        return int(size[0]), int(size[1])
    requested = int(size if isinstance(size, numbers.Number) else size[0])
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = requested, int(requested * long / short)
    if max_size is not None:
        if max_size <= requested:
            raise ValueError(f"max_size = {max_size} must be strictly greater than the requested size for the "
                             f"smaller edge size = {size}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if height <= width else (new_long, new_short)


class Resize:
    """Resize to (h, w), or scale the smaller edge to `size` keeping the aspect ratio. Bilinear (default)
    or nearest; bilinear does not antialias, like F.interpolate(..., antialias=False)."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        if interpolation not in (InterpolationMode.BILINEAR, InterpolationMode.NEAREST):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest'; got {interpolation!r}")
        self.size = size
        self.interpolation = interpolation
        self.max_size = max_size
        self.antialias = antialias

    def __call__(self, img):
        image = _Image(img)
        out_height, out_width = _output_size(self.size, *image.size, self.max_size)
        array = image.array
        if image.is_tensor:
            from disttorch.core.backend import is_cuda_array
            if is_cuda_array(array):
                array = array.get()
        source_dtype = array.dtype
        working = array if self.interpolation == InterpolationMode.NEAREST else array.astype(np.float32)
        working = _resize_axis(working, image.height_axis, out_height, self.interpolation)
        working = _resize_axis(working, image.height_axis + 1, out_width, self.interpolation)
        if source_dtype.kind in "ui":
            info = np.iinfo(source_dtype)
            working = np.clip(np.rint(working), info.min, info.max)
        return image.rebuild(np.ascontiguousarray(working.astype(source_dtype, copy=False)))

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation})"


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def _pad(image, left, top, right, bottom, fill, padding_mode):
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"Padding mode should be either constant, edge, reflect or symmetric; got "
                         f"{padding_mode!r}")
    widths = [(0, 0)] * image.array.ndim
    widths[image.height_axis] = (top, bottom)
    widths[image.height_axis + 1] = (left, right)
    from disttorch.core.backend import get_array_module
    xp = get_array_module(image.array)
    if padding_mode == "constant":
        return xp.pad(image.array, widths, mode="constant", constant_values=fill)
    return xp.pad(image.array, widths, mode=_PAD_MODES[padding_mode])


def _padding_sides(padding):
    """torchvision's padding forms: int (all sides), (lr, tb), or (left, top, right, bottom)."""
    if isinstance(padding, numbers.Number):
        return (int(padding),) * 4
    if len(padding) == 2:
        return padding[0], padding[1], padding[0], padding[1]
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} element tuple")


class CenterCrop:
    """The central (h, w) region; zero-padded first when the image is smaller."""

    def __init__(self, size):
        self.size = _pair(size, "size")

    def __call__(self, img):
        image = _Image(img)
        crop_height, crop_width = self.size
        height, width = image.size
        if crop_height > height or crop_width > width:
            pad_height, pad_width = max(crop_height - height, 0), max(crop_width - width, 0)
            image = _Image(image.rebuild(_pad(image, pad_width // 2, pad_height // 2, (pad_width + 1) // 2,
                                              (pad_height + 1) // 2, 0, "constant")))
            height, width = image.size
        top = int(round((height - crop_height) / 2.0))
        left = int(round((width - crop_width) / 2.0))
        rows, cols = slice(top, top + crop_height), slice(left, left + crop_width)
        return image.rebuild(image.array[image.spatial_index(rows, cols)].copy())

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size})"


class RandomCrop:
    """A random (h, w) region, after optional padding."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _pair(size, "size")
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode

    def __call__(self, img):
        image = _Image(img)
        if self.padding is not None:
            image = _Image(image.rebuild(_pad(image, *_padding_sides(self.padding), self.fill,
                                              self.padding_mode)))
        crop_height, crop_width = self.size
        height, width = image.size
        if self.pad_if_needed and (height < crop_height or width < crop_width):
            extra_width, extra_height = max(crop_width - width, 0), max(crop_height - height, 0)
            image = _Image(image.rebuild(_pad(image, extra_width, extra_height, extra_width, extra_height,
                                              self.fill, self.padding_mode)))
            height, width = image.size
        if height < crop_height or width < crop_width:
            raise ValueError(f"Required crop size {(crop_height, crop_width)} is larger than input image size "
                             f"{(height, width)}; pass padding= or pad_if_needed=True")
        top = _randint(0, height - crop_height + 1)
        left = _randint(0, width - crop_width + 1)
        rows, cols = slice(top, top + crop_height), slice(left, left + crop_width)
        return image.rebuild(image.array[image.spatial_index(rows, cols)].copy())

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, img):
        if _uniform(0.0, 1.0) >= self.p:
            return img
        image = _Image(img)
        return image.rebuild(image.array[image.spatial_index(slice(None), slice(None, None, -1))].copy())

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability p."""

    def __call__(self, img):
        if _uniform(0.0, 1.0) >= self.p:
            return img
        image = _Image(img)
        return image.rebuild(image.array[image.spatial_index(slice(None, None, -1), slice(None))].copy())


class RandomRotation:
    """Rotate counter-clockwise by an angle drawn uniformly from `degrees`, about the image centre, keeping
    the size (nearest-neighbour sampling; uncovered corners get `fill`)."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=0):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError("If degrees is a single number, it must be positive.")
            degrees = (-degrees, degrees)
        if interpolation != InterpolationMode.NEAREST or expand:
            raise NotImplementedError("RandomRotation supports interpolation='nearest' and expand=False only")
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation = interpolation
        self.center = center
        self.fill = fill

    def __call__(self, img):
        return rotate(img, _uniform(*self.degrees), self.center, self.fill)

    def __repr__(self):
        return f"{type(self).__name__}(degrees={self.degrees})"


def rotate(img, angle, center=None, fill=0):
    """Rotate counter-clockwise by `angle` degrees about `center` (x, y; default the image centre)."""
    image = _Image(img)
    height, width = image.size
    center_x, center_y = ((width - 1) / 2, (height - 1) / 2) if center is None else center
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    dx, dy = cols - center_x, rows - center_y
    # inverse mapping: each output pixel reads the input pixel that the rotation carries onto it
    source_x = np.rint(cos * dx - sin * dy + center_x).astype(np.int64)
    source_y = np.rint(sin * dx + cos * dy + center_y).astype(np.int64)
    inside = (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
    array = image.array
    gathered = array[image.spatial_index(np.clip(source_y, 0, height - 1), np.clip(source_x, 0, width - 1))]
    mask_shape = [1] * array.ndim
    mask_shape[image.height_axis], mask_shape[image.height_axis + 1] = height, width
    result = np.where(inside.reshape(mask_shape), gathered, np.asarray(fill, dtype=array.dtype))
    return image.rebuild(result.astype(array.dtype, copy=False))


class Lambda:
    """Apply a user function."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {repr(type(lambd).__name__)}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return f"{type(self).__name__}()"
