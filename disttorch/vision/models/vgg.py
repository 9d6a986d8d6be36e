"""VGG-11/16 with and without BatchNorm, with torchvision's layer layout and state_dict keys."""
from ... import nn
from ._weights import build
from .weights import VGG11_Weights, VGG11_BN_Weights, VGG16_Weights, VGG16_BN_Weights, with_weights_enum

# Channel counts of the 3x3 convolutions; "M" is a 2x2 max pool.
_CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = x.flatten(1)
        return self.classifier(x)


def make_layers(cfg, batch_norm=False):
    layers = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


def _vgg(cfg, batch_norm, weights, kwargs):
    if weights is not None:
        kwargs["init_weights"] = False

    def construct(**model_kwargs):
        return VGG(make_layers(_CONFIGS[cfg], batch_norm=batch_norm), **model_kwargs)
    return build(construct, weights, "classifier.6.weight", kwargs)


@with_weights_enum(VGG11_Weights)
def vgg11(*, weights=None, **kwargs):
    return _vgg("A", False, weights, kwargs)


@with_weights_enum(VGG11_BN_Weights)
def vgg11_bn(*, weights=None, **kwargs):
    return _vgg("A", True, weights, kwargs)


@with_weights_enum(VGG16_Weights)
def vgg16(*, weights=None, **kwargs):
    return _vgg("D", False, weights, kwargs)


@with_weights_enum(VGG16_BN_Weights)
def vgg16_bn(*, weights=None, **kwargs):
    return _vgg("D", True, weights, kwargs)
