"""Mobile networks: MobileNetV2 (Sandler et al. 2018), ShuffleNetV2 1.0x (Ma et al. 2018) and
EfficientNet-B0 (Tan & Le 2019) with timm-style squeeze-and-excitation in its MBConv blocks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import IMAGENET, IMAGENET_SIZES, IMAGENET_WHY, Entry, register, scaled


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor``, never more than 10% below it (MobileNet convention)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> activation (None for a linear bottleneck)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 act: type | None = nn.ReLU6) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


# ---------------------------------------------------------------------------- MobileNetV2

class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, linear 1x1 projection; identity shortcut when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNAct(cin, hidden, 1)]
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))   # expansion t, channels c, repeats n, first stride s (paper Table 2)


class MobileNetV2(nn.Module):
    def __init__(self, width: float = 1.0, num_classes: int = 1000, divisor: int = 8) -> None:
        super().__init__()
        cin = make_divisible(32 * width, divisor)
        self.last_channel = make_divisible(1280 * max(1.0, width), divisor)
        features: list[nn.Module] = [ConvBNAct(3, cin, stride=2)]
        for t, c, n, s in MOBILENET_V2:
            cout = make_divisible(c * width, divisor)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNAct(cin, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def mobilenet_v2(width: float = 1.0) -> MobileNetV2:
    """Channels rounded to multiples of 8 as published; a thin build rounds to 1 (any width keeps the
    depthwise structure valid)."""
    return MobileNetV2(width, divisor=8 if width == 1.0 else 1)


# ---------------------------------------------------------------------------- ShuffleNetV2

def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: split channels in two (stride 1) or process both copies (stride 2), concat, shuffle."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        self.branch2 = nn.Sequential(
            nn.Conv2d(cin if stride > 1 else half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (24, 116, 232, 464, 1024), repeats: tuple[int, ...] = (4, 8, 4),
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = widths[0]
        for i, (n, cout) in enumerate(zip(repeats, widths[1:4]), start=2):
            units = [ShuffleUnit(cin, cout, 2)] + [ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]
            setattr(self, f"stage{i}", nn.Sequential(*units))
            cin = cout
        self.conv5 = nn.Sequential(nn.Conv2d(cin, widths[4], 1, bias=False), nn.BatchNorm2d(widths[4]),
                                   nn.ReLU(inplace=True))
        self.fc = nn.Linear(widths[4], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        x = self.conv5(x)
        x = x.mean([2, 3])
        return self.fc(x)


def shufflenet_v2(width: float = 1.0) -> ShuffleNetV2:
    widths = (24, 116, 232, 464, 1024)
    if width != 1.0:
        widths = tuple(scaled(c, width, divisor=2) for c in widths)
    return ShuffleNetV2(widths)


# ---------------------------------------------------------------------------- EfficientNet-B0

class SqueezeExcite(nn.Module):
    """timm-style SE: spatial mean, 1x1 reduce, SiLU, 1x1 expand, sigmoid gate, ``x * gate``."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act1 = nn.SiLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act1(self.conv_reduce(s)))
        return x * s.sigmoid()


class MBConv(nn.Module):
    """Inverted bottleneck with SE (reduced to a quarter of the block's *input* channels)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_skip = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNAct(cin, mid, 1, act=nn.SiLU)]
        layers += [ConvBNAct(mid, mid, kernel, stride, groups=mid, act=nn.SiLU),
                   SqueezeExcite(mid, max(1, cin // 4)),
                   ConvBNAct(mid, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.has_skip else out


EFFICIENTNET_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                   (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
#: expansion, kernel, first stride, in, out, repeats (Tan & Le 2019, Table 1)


class EfficientNet(nn.Module):
    def __init__(self, width: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        ch = lambda c: make_divisible(c * width)  # noqa: E731
        stages: list[nn.Module] = [ConvBNAct(3, ch(32), 3, 2, act=nn.SiLU)]
        for e, k, s, cin, cout, n in EFFICIENTNET_B0:
            blocks = [MBConv(ch(cin) if i == 0 else ch(cout), ch(cout), k, s if i == 0 else 1, e) for i in range(n)]
            stages.append(nn.Sequential(*blocks))
        stages.append(ConvBNAct(ch(320), ch(1280), 1, act=nn.SiLU))
        self.features = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2, inplace=True), nn.Linear(ch(1280), num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def efficientnet_b0(width: float = 1.0) -> EfficientNet:
    return EfficientNet(width)


register(Entry(
    "mobilenet_v2", mobilenet_v2, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("features.18.2", 512),), rf_width=1 / 16, params=3_504_872,
    source="Sandler et al. 2018, Table 2; torchvision mobilenet_v2: 3,504,872"))
register(Entry(
    "shufflenet_v2", shufflenet_v2, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("conv5.2", 640), ("stage2.3.branch2.7", 128)), rf_width=0.125, params=2_278_604,
    source="Ma et al. 2018, Table 5 (1.0x); torchvision shufflenet_v2_x1_0: 2,278,604"))
register(Entry(
    "efficientnet_b0", efficientnet_b0, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("features.8.2", 64), ("features.1.0.block.0.2", 32)), rf_width=0.25, params=5_288_548,
    source="Tan & Le 2019, Table 1 (B0); torchvision efficientnet_b0: 5,288,548"))
