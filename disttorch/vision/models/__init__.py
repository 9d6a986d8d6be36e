"""Model architectures with torchvision's names, module layout and state_dict keys.

`weights=` takes a path to a local safetensors file or disttorch checkpoint holding a state_dict.
"""
from ._weights import load_safetensors
from .alexnet import AlexNet, alexnet
from .digits import DigitsCNN
from .lenet import LeNet5, lenet5
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .vgg import VGG, vgg11, vgg11_bn, vgg16, vgg16_bn

__all__ = ["AlexNet", "alexnet", "DigitsCNN", "LeNet5", "lenet5", "ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34",
           "resnet50", "VGG", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "load_safetensors"]
