"""VGG-11 with BatchNorm (Simonyan & Zisserman 2015, configuration A), the PyTorch MNIST example
net and the PyTorch CIFAR-10 tutorial net."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import IMAGENET, IMAGENET_SIZES, IMAGENET_WHY, Entry, register, scaled

VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """``features`` (3x3 conv + BN + ReLU, 2x2 max pools), a 7x7 adaptive pool, three linear layers."""

    def __init__(self, cfg: tuple = VGG11, width: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                cout = scaled(v, width)
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = scaled(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(cin * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def vgg11_bn(width: float = 1.0) -> VGG:
    return VGG(VGG11, width)


class MnistNet(nn.Module):
    """pytorch/examples mnist/main.py ``Net``: two 3x3 convs, a functional 2x2 max pool, two linears."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, hidden = scaled(32, width), scaled(64, width), scaled(128, width)
        self.conv1 = nn.Conv2d(1, c1, 3, 1)
        self.conv2 = nn.Conv2d(c1, c2, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(c2 * 12 * 12, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def mnist_net(width: float = 1.0) -> MnistNet:
    return MnistNet(width)


class CifarNet(nn.Module):
    """The CIFAR-10 tutorial ``Net``: conv 5x5, pool, conv 5x5, pool (one MaxPool2d module used twice),
    three linears, ``torch.flatten``."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2 = scaled(6, width), scaled(16, width)
        self.conv1 = nn.Conv2d(3, c1, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def cifar_net(width: float = 1.0) -> CifarNet:
    return CifarNet(width)


register(Entry(
    "vgg11_bn", vgg11_bn, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("features.28", 192),), rf_width=1 / 16, params=132_868_840,
    source="Simonyan & Zisserman 2015, Table 1 configuration A, with BatchNorm; torchvision vgg11_bn: 132,868,840"))
register(Entry(
    "mnist_net", mnist_net, (1, 28, 28), (28, 29),
    "MNIST is 28x28; 29 (odd) gives the same 12x12 map after the floor of the 2x2 pool, which fc1 needs",
    rf_layers=(("dropout1", 28),), rf_width=1 / 8, params=1_199_882,
    source="pytorch/examples mnist/main.py Net (1,199,882 parameters)"))
register(Entry(
    "cifar_net", cifar_net, (3, 32, 32), (32, 33),
    "CIFAR-10 is 32x32; 33 (odd) gives the same 5x5 map after the floors of the pools, which fc1 needs",
    rf_layers=(("pool#2", 32),), rf_width=1.0, params=62_006,
    source="PyTorch tutorial 'Training a Classifier' (CIFAR-10) Net (62,006 parameters)"))
