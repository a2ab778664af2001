"""ResNet-18/50 (He et al. 2016, torchvision v1.5 layout) and the SE-ResNet bottleneck (Hu et al. 2018).

torchvision style: each block owns one ``self.relu`` that its forward calls two or three times,
the stride of a bottleneck sits on its 3x3 conv, and the head is ``AdaptiveAvgPool2d`` then
``torch.flatten``.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import IMAGENET, IMAGENET_SIZES, IMAGENET_WHY, Entry, register, scaled


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs and an identity (or 1x1 projection) shortcut; one ReLU module used twice."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4; one ReLU module used three times."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool), four stages, global average pool, linear classifier."""

    def __init__(self, block: type, layers: tuple[int, ...], width: float = 1.0, num_classes: int = 1000,
                 stages: int = 4) -> None:
        super().__init__()
        widths = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.stages = stages
        if stages == 4:
            self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(widths[3] * block.expansion, num_classes)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.stages == 3:      # a trunk (DeepLab's backbone)
            return x
        x = self.avgpool(self.layer4(x))
        x = torch.flatten(x, 1)
        return self.fc(x)


def resnet18(width: float = 1.0) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), width)


def resnet50(width: float = 1.0) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), width)


class SELayer(nn.Module):
    """Squeeze-and-excitation with fully connected layers, as in the SENet paper (reduction 16)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SEBottleneck(nn.Module):
    """SE-ResNet-50's bottleneck: SE on the residual branch before the addition."""

    def __init__(self, cin: int = 256, planes: int = 64, reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.se = SELayer(planes * 4, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        out += residual
        return self.relu(out)


def se_resnet_block(width: float = 1.0) -> SEBottleneck:
    """The block at conv2_x (256 -> 64 -> 256 channels); the input channels never shrink, so neither
    does anything else (``width`` is accepted for the registry's signature only)."""
    return SEBottleneck(256, 64)


register(Entry(
    "resnet18", resnet18, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("layer4.1.relu#2", 512), ("layer2.1.relu#2", 128)), rf_width=1 / 16, params=11_689_512,
    source="He et al. 2016, Table 1 (18-layer); torchvision resnet18 lists 11,689,512 parameters"))
register(Entry(
    "resnet50", resnet50, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("layer4.2.relu#3", 512),), rf_width=1 / 16, params=25_557_032,
    source="He et al. 2016, Table 1 (50-layer), stride on the 3x3 conv (v1.5); torchvision resnet50: 25,557,032"))
register(Entry(
    "se_resnet_block", se_resnet_block, (256, 56, 56), (56, 57),
    "the block sits at 56x56 in SE-ResNet-50 (conv2_x); 57 (odd) also builds, every layer has stride 1",
    rf_layers=(("relu#3", 32), ("conv3", 32)), rf_width=1.0, params=None,
    source="Hu et al. 2018, Fig. 3 (SE-ResNet module) and Table 1 (conv2_x, r = 16); no published count"))
