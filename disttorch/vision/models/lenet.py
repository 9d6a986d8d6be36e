"""LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, for 1x32x32 or 1x28x28 digits."""
from ... import nn
from ._weights import build


class LeNet5(nn.Module):
    """conv(6,5x5) - pool - conv(16,5x5) - pool - fc120 - fc84 - fc(num_classes).

    28x28 inputs get 2 pixels of padding in the first convolution so both sizes reach 16x5x5 features.
    """

    def __init__(self, num_classes=10, in_channels=1, input_size=32):
        super().__init__()
        if input_size not in (28, 32):
            raise ValueError(f"LeNet5 supports input_size 28 or 32, got {input_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=(32 - input_size) // 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = x.flatten(1)
        return self.classifier(x)


def lenet5(*, weights=None, **kwargs):
    return build(LeNet5, weights, "classifier.4.weight", kwargs)
