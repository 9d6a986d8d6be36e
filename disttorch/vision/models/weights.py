"""torchvision's weights enums (ResNet18_Weights.IMAGENET1K_V1, .DEFAULT, ...) and the legacy `pretrained=`.

disttorch never downloads pretrained weights: the machine may be offline, and torchvision's .pth files
are pickles, which disttorch does not load. A weights enum resolves to a local safetensors file instead:
the .pth file's name with the suffix .safetensors, looked up in $DISTTORCH_WEIGHTS_DIR. A missing file
raises an error that says how to make one once with PyTorch. `weights=` also takes a file path.
"""
import enum
import functools
import os
import warnings
from dataclasses import dataclass, field

WEIGHTS_DIR_ENV = "DISTTORCH_WEIGHTS_DIR"
_URL_ROOT = "https://download.pytorch.org/models/"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageClassification:
    """The preset behind `Weights.transforms()`: resize, center crop, to a float tensor, normalise."""

    def __init__(self, crop_size, resize_size=256, mean=_IMAGENET_MEAN, std=_IMAGENET_STD):
        from .. import transforms
        self.crop_size = [crop_size]
        self.resize_size = [resize_size]
        self.mean = list(mean)
        self.std = list(std)
        self._pipeline = transforms.Compose([
            transforms.Resize(resize_size), transforms.CenterCrop(crop_size), transforms.ToTensor(),
            transforms.Normalize(mean, std)])

    def __call__(self, img):
        return self._pipeline(img)

    def __repr__(self):
        return (f"ImageClassification(\n    crop_size={self.crop_size}\n    resize_size={self.resize_size}\n"
                f"    mean={self.mean}\n    std={self.std}\n)")


@dataclass(frozen=True, eq=False)
class Weights:
    url: str
    transforms: functools.partial
    meta: dict = field(default_factory=dict)


class WeightsEnum(enum.Enum):
    """Base of the per-model enums; members carry a Weights value (url, transforms, meta)."""

    @classmethod
    def verify(cls, obj):
        """None, a member of this enum, or its name as a string ("IMAGENET1K_V1", "DEFAULT")."""
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            name = obj.replace(cls.__name__ + ".", "")
            try:
                return cls[name]
            except KeyError:
                raise ValueError(f"Failed to find Weights {obj} in {cls.__name__}; it has "
                                 f"{', '.join(cls.__members__)}") from None
        raise TypeError(f"Invalid Weight class provided; expected {cls.__name__} but received "
                        f"{type(obj).__name__}.")

    @property
    def url(self):
        return self.value.url

    @property
    def transforms(self):
        return self.value.transforms

    @property
    def meta(self):
        return self.value.meta

    def local_path(self):
        """Where this member's converted file must be: $DISTTORCH_WEIGHTS_DIR/<pth name>.safetensors."""
        filename = os.path.splitext(os.path.basename(self.url))[0] + ".safetensors"
        return os.path.join(os.environ.get(WEIGHTS_DIR_ENV, ""), filename), filename

    def get_state_dict(self, progress=True, check_hash=False):
        from ._weights import load_state_dict_file
        return load_state_dict_file(self._existing_file())

    def _existing_file(self):
        path, filename = self.local_path()
        if os.environ.get(WEIGHTS_DIR_ENV) and os.path.isfile(path):
            return path
        member = f"{type(self).__name__}.{self.name}"
        where = (f"{path} does not exist" if os.environ.get(WEIGHTS_DIR_ENV)
                 else f"${WEIGHTS_DIR_ENV} is not set")
        raise RuntimeError(
            f"{member}: disttorch does not download pretrained weights ({self.url} is a pickled PyTorch file, "
            f"and this machine may be offline), and {where}. Convert the weights once where PyTorch and "
            f"torchvision are installed:\n"
            f"    from safetensors.torch import save_file\n"
            f"    save_file(torchvision.models.get_weight('{member}').get_state_dict(), '{filename}')\n"
            f"then put {filename} in a folder named by ${WEIGHTS_DIR_ENV}, or pass weights='/path/to/{filename}'.")

    def __repr__(self):
        return f"{type(self).__name__}.{self.name}"


def _classification(filename, num_params, crop_size=224, resize_size=256, **meta):
    return Weights(url=_URL_ROOT + filename,
                   transforms=functools.partial(ImageClassification, crop_size=crop_size, resize_size=resize_size),
                   meta={"num_params": num_params, "min_size": (1, 1), **meta})


class ResNet18_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("resnet18-f37072fd.pth", 11689512)
    DEFAULT = IMAGENET1K_V1


class ResNet34_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("resnet34-b627a593.pth", 21797672)
    DEFAULT = IMAGENET1K_V1


class ResNet50_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("resnet50-0676ba61.pth", 25557032)
    IMAGENET1K_V2 = _classification("resnet50-11ad3fa6.pth", 25557032, resize_size=232)
    DEFAULT = IMAGENET1K_V2


class AlexNet_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("alexnet-owt-7be5be79.pth", 61100840, min_size=(63, 63))
    DEFAULT = IMAGENET1K_V1


class VGG11_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("vgg11-8a719046.pth", 132863336, min_size=(32, 32))
    DEFAULT = IMAGENET1K_V1


class VGG11_BN_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("vgg11_bn-6002323d.pth", 132868840, min_size=(32, 32))
    DEFAULT = IMAGENET1K_V1


class VGG16_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("vgg16-397923af.pth", 138357544, min_size=(32, 32))
    DEFAULT = IMAGENET1K_V1


class VGG16_BN_Weights(WeightsEnum):
    IMAGENET1K_V1 = _classification("vgg16_bn-6c64b313.pth", 138365992, min_size=(32, 32))
    DEFAULT = IMAGENET1K_V1


_ENUMS = (ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, AlexNet_Weights, VGG11_Weights, VGG11_BN_Weights,
          VGG16_Weights, VGG16_BN_Weights)


def get_weight(name):
    """A member from its full name, e.g. get_weight("ResNet18_Weights.IMAGENET1K_V1")."""
    enum_name, _, member = name.partition(".")
    for weights_enum in _ENUMS:
        if weights_enum.__name__ == enum_name:
            return weights_enum.verify(member)
    raise ValueError(f"Unknown weights enum name: {enum_name}")


def with_weights_enum(weights_enum):
    """Decorate a model builder: take `pretrained=` the way torchvision does (deprecated, mapped onto
    weights=), accept enum members and their names, and hand the builder a file path or None."""
    def decorate(builder):
        @functools.wraps(builder)
        def wrapper(*, weights=None, progress=True, **kwargs):
            if "pretrained" in kwargs:
                pretrained = kwargs.pop("pretrained")
                warnings.warn("The parameter 'pretrained' is deprecated since 0.13 and may be removed in the "
                              "future, please use 'weights' instead.", UserWarning, stacklevel=2)
                if pretrained:
                    warnings.warn(
                        "Arguments other than a weight enum or `None` for 'weights' are deprecated since 0.13 and "
                        "may be removed in the future. The current behavior is equivalent to passing "
                        f"`weights={weights_enum.__name__}.IMAGENET1K_V1`. You can also use "
                        f"`weights={weights_enum.__name__}.DEFAULT` to get the most up-to-date weights.",
                        UserWarning, stacklevel=2)
                    weights = weights_enum.IMAGENET1K_V1
            return builder(weights=_weights_file(weights_enum, weights), **kwargs)
        wrapper.weights_enum = weights_enum
        return wrapper
    return decorate


def _weights_file(weights_enum, weights):
    if weights is None or isinstance(weights, os.PathLike):
        return weights
    if isinstance(weights, str) and (os.sep in weights or os.path.isfile(weights)):
        return weights  # a local file; enum names never hold a path separator
    return weights_enum.verify(weights)._existing_file()
