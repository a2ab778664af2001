"""Concatenating architectures: DenseNet-121 (Huang et al. 2017) and GoogLeNet's inception (3a)
block (Szegedy et al. 2015)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import IMAGENET, IMAGENET_SIZES, IMAGENET_WHY, Entry, register, scaled


# ---------------------------------------------------------------------------- DenseNet-121

class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bn_size * growth) then BN-ReLU-3x3 conv (growth), on the concatenated inputs."""

    def __init__(self, cin: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """Each layer reads every earlier feature map; the block returns all of them concatenated."""

    def __init__(self, layers: int, cin: int, growth: int, bn_size: int) -> None:
        super().__init__()
        for i in range(layers):
            self[f"denselayer{i + 1}"] = DenseLayer(cin + i * growth, growth, bn_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(cin))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(cin, cout, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    def __init__(self, growth: int = 32, blocks: tuple[int, ...] = (6, 12, 24, 16), init: int = 64,
                 bn_size: int = 4, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, init, 7, stride=2, padding=3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(init))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        c = init
        for i, n in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i != len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x), inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)


def densenet121(width: float = 1.0) -> DenseNet:
    return DenseNet(growth=scaled(32, width), init=scaled(64, width))


# ---------------------------------------------------------------------------- inception (3a)

class BasicConv2d(nn.Module):
    """conv (no bias) -> BN (eps 1e-3) -> functional ReLU, as torchvision's GoogLeNet."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four branches (1x1; 1x1-3x3; 1x1-5x5 as in the paper; 3x3 max pool-1x1) concatenated."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, 1), BasicConv2d(c3r, c3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, 1), BasicConv2d(c5r, c5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(cin, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def inception_3a(width: float = 1.0) -> Inception:
    s = lambda c: scaled(c, width)  # noqa: E731
    return Inception(192, s(64), s(96), s(128), s(16), s(32), s(32))


#: Szegedy et al. 2015, Table 1, inception (3a): 159K parameters and 128M operations at 28x28x192.
#: Both are conv weights without biases or BN: 163,328 weights = 159.5 K with K = 1024, and
#: 163,328 * 28 * 28 = 128,049,152 multiply-adds.
INCEPTION_3A_WEIGHTS = 163_328
INCEPTION_3A_MACS = 128_049_152

register(Entry(
    "densenet121", densenet121, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("features.norm5", 2304), ("features.transition1.pool", 128)), rf_width=1 / 32, params=7_978_856,
    source="Huang et al. 2017, Table 1 (DenseNet-121, k = 32); torchvision densenet121: 7,978,856"))
register(Entry(
    "inception_3a", inception_3a, (192, 28, 28), (28, 29),
    "the block runs at 28x28x192 in GoogLeNet; 29 (odd) also builds, every layer has stride 1",
    rf_layers=(("", 32),), rf_width=1 / 8, params=None,
    source="Szegedy et al. 2015, Table 1, inception (3a) (159K weights, 128M ops; see INCEPTION_3A_*)"))
