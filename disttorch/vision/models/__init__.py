"""Model architectures with torchvision's names, module layout and state_dict keys.

`weights=` takes None, a weights enum member such as ResNet18_Weights.DEFAULT (resolved to a local file, see
weights.py), or a path to a local safetensors file or disttorch checkpoint holding a state_dict.
"""
from ._weights import load_safetensors
from .alexnet import AlexNet, alexnet
from .digits import DigitsCNN
from .lenet import LeNet5, lenet5
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .vgg import VGG, vgg11, vgg11_bn, vgg16, vgg16_bn
from .weights import (
    AlexNet_Weights, ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, VGG11_BN_Weights, VGG11_Weights,
    VGG16_BN_Weights, VGG16_Weights, Weights, WeightsEnum, get_weight,
)

__all__ = ["AlexNet", "alexnet", "DigitsCNN", "LeNet5", "lenet5", "ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34",
           "resnet50", "VGG", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "load_safetensors", "Weights", "WeightsEnum",
           "get_weight", "AlexNet_Weights", "ResNet18_Weights", "ResNet34_Weights", "ResNet50_Weights",
           "VGG11_Weights", "VGG11_BN_Weights", "VGG16_Weights", "VGG16_BN_Weights"]
