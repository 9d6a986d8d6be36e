import os
import subprocess
import sys

import numpy as np
import pytest

import disttorch
import disttorch.nn as dnn
from disttorch.vision import models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- a torch reference of torchvision's architectures (torchvision itself is not installed) -------
def _torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    class ResNet(nn.Module):
        def __init__(self, block, layers, num_classes):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make_layer(block, 64, layers[0], 1)
            self.layer2 = self._make_layer(block, 128, layers[1], 2)
            self.layer3 = self._make_layer(block, 256, layers[2], 2)
            self.layer4 = self._make_layer(block, 512, layers[3], 2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * block.expansion, num_classes)

        def _make_layer(self, block, planes, blocks, stride):
            downsample = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes * block.expansion))
            layers = [block(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * block.expansion
            layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    def vgg(cfg, batch_norm, num_classes):
        layers, channels = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(channels, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            channels = v
        model = nn.Module()
        model.features = nn.Sequential(*layers)
        model.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        model.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096),
                                         nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes))
        return model

    def alexnet(num_classes):
        model = nn.Module()
        model.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(True), nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True),
            nn.MaxPool2d(3, 2))
        model.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        model.classifier = nn.Sequential(nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(True), nn.Dropout(),
                                         nn.Linear(4096, 4096), nn.ReLU(True), nn.Linear(4096, num_classes))
        return model

    cfg_a = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    cfg_d = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    return torch, {
        "resnet18": lambda n: ResNet(BasicBlock, [2, 2, 2, 2], n),
        "resnet34": lambda n: ResNet(BasicBlock, [3, 4, 6, 3], n),
        "resnet50": lambda n: ResNet(Bottleneck, [3, 4, 6, 3], n),
        "vgg11": lambda n: vgg(cfg_a, False, n), "vgg11_bn": lambda n: vgg(cfg_a, True, n),
        "vgg16": lambda n: vgg(cfg_d, False, n), "vgg16_bn": lambda n: vgg(cfg_d, True, n),
        "alexnet": alexnet,
    }


def _shapes(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _assert_keys_match_torch(name, model, num_classes):
    _, builders = _torch_models()
    reference = builders[name](num_classes)
    assert list(model.state_dict()) == list(reference.state_dict())
    assert _shapes(model.state_dict()) == _shapes(reference.state_dict())


@pytest.mark.timeout(60)
def test_resnet18_loads_torch_safetensors_bit_exactly(tmp_path):
    torch, builders = _torch_models()
    save_file = pytest.importorskip("safetensors.torch").save_file
    torch.manual_seed(0)
    reference = builders["resnet18"](7).eval()
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    path = tmp_path / "resnet18.safetensors"
    save_file(reference.state_dict(), str(path))

    model = models.resnet18(weights=path).eval()  # num_classes comes from the file
    assert model.fc.out_features == 7
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key].numpy(), value.numpy())
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    with disttorch.no_grad():
        got = model(disttorch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_safetensors_reader_rejects_corrupt_header(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes((10 ** 9).to_bytes(8, "little") + b"{}")
    with pytest.raises(RuntimeError, match="header length"):
        models.load_safetensors(path)


def test_weights_from_disttorch_checkpoint(tmp_path):
    disttorch.manual_seed(0)
    source = models.lenet5(num_classes=5, input_size=28)
    disttorch.save(source.state_dict(), tmp_path / "lenet.pt")
    loaded = models.lenet5(weights=tmp_path / "lenet.pt", input_size=28)
    x = disttorch.randn(2, 1, 28, 28)
    np.testing.assert_array_equal(loaded(x).detach().numpy(), source(x).detach().numpy())


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_resnet_keys_match_torchvision_layout(name):
    model = getattr(models, name)(num_classes=3)
    _assert_keys_match_torch(name, model, 3)
    assert "layer1.0.conv1.weight" in model.state_dict()
    assert ("layer2.0.downsample.1.running_mean" in model.state_dict())


@pytest.mark.timeout(120)
def test_alexnet_keys_match_torchvision_layout():
    _assert_keys_match_torch("alexnet", models.alexnet(num_classes=3), 3)


@pytest.mark.parametrize("name,cfg,batch_norm", [("vgg11", "A", False), ("vgg16", "D", False),
                                                 ("vgg16_bn", "D", True)])
def test_vgg_feature_keys(name, cfg, batch_norm):
    # The classifier is shared by all VGGs (vgg11_bn is checked whole in the training-step test);
    # building only the features keeps this quick.
    _, builders = _torch_models()
    features = models.vgg.make_layers(models.vgg._CONFIGS[cfg], batch_norm=batch_norm)
    reference = builders[name](3).features
    assert _shapes(features.state_dict()) == _shapes(reference.state_dict())


def _train_step(model, x, num_classes):
    loss_fn = dnn.CrossEntropyLoss()
    optimizer = disttorch.optim.SGD(model.parameters(), lr=0.01)
    target = disttorch.randint(0, num_classes, (x.shape[0],))
    out = model(x)
    assert tuple(out.shape) == (x.shape[0], num_classes)
    before = [p.detach().clone() for p in model.parameters()]
    loss = loss_fn(out, target)
    optimizer.zero_grad()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer.step()
    changed = sum(not np.array_equal(b.numpy(), p.detach().numpy()) for b, p in zip(before, model.parameters()))
    assert changed == len(before)
    assert np.isfinite(loss.item())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name,shape", [
    ("lenet5", (2, 1, 32, 32)), ("resnet18", (2, 3, 32, 32)), ("resnet50", (2, 3, 32, 32)),
    ("alexnet", (1, 3, 63, 63)), ("vgg11_bn", (2, 3, 32, 32)),
])
def test_forward_shape_and_training_step(name, shape):
    disttorch.manual_seed(0)
    model = getattr(models, name)(num_classes=4)
    if name == "vgg11_bn":
        _assert_keys_match_torch(name, model, 4)
    _train_step(model, disttorch.randn(*shape), 4)


def test_lenet5_on_28x28_and_bad_size():
    model = models.lenet5(input_size=28)
    assert tuple(model(disttorch.randn(3, 1, 28, 28)).shape) == (3, 10)
    with pytest.raises(ValueError, match="input_size"):
        models.lenet5(input_size=20)


@pytest.mark.timeout(120)
def test_train_resnet_cifar_example_runs_on_synthetic_data(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "train_resnet_cifar.py"), "--steps", "2",
         "--batch-size", "4", "--synthetic-size", "16", "--data", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=110, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "synthetic" in result.stdout
    assert "traced-vs-eager max diff 0.00e+00" in result.stdout
