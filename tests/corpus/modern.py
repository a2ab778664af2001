"""ConvNeXt-T's stem and first stage (Liu et al. 2022, timm style) and RegNetX/Y-400MF
(Radosavovic et al. 2020, torchvision layout)."""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .registry import IMAGENET, IMAGENET_SIZES, IMAGENET_WHY, Entry, register, scaled


# ---------------------------------------------------------------------------- ConvNeXt-T, stage 1

class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map: a LayerNorm subclass whose forward permutes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(0.0)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7, LayerNorm and a 4x MLP on channels-last, layer scale ``gamma``, residual."""

    def __init__(self, dim: int, ls_init: float = 1e-6) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma = nn.Parameter(ls_init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)
        x = x.permute(0, 2, 3, 1)
        x = self.mlp(self.norm(x))
        x = x.mul(self.gamma)
        x = x.permute(0, 3, 1, 2)
        return x + shortcut


class ConvNeXtStage1(nn.Module):
    """ConvNeXt-T up to the end of its first stage: 4x4/4 patchify stem, LayerNorm2d, 3 blocks of 96."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        dim = scaled(96, width)
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), LayerNorm2d(dim, eps=1e-6))
        self.stages = nn.Sequential(nn.Sequential(*[ConvNeXtBlock(dim) for _ in range(3)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


def convnext_t_stage1(width: float = 1.0) -> ConvNeXtStage1:
    return ConvNeXtStage1(width)


# ---------------------------------------------------------------------------- RegNet

def regnet_stages(depth: int, w0: float, wa: float, wm: float, group: int, quant: int = 8
                  ) -> list[tuple[int, int, int]]:
    """(width, depth, group width) per stage from the quantized linear rule of the RegNet paper (Sec. 3.3):
    u_j = w0 + wa*j, s_j = round(log_wm(u_j / w0)), w_j = w0 * wm**s_j rounded to a multiple of ``quant``;
    consecutive equal widths form a stage; widths are then made multiples of the group width."""
    widths = [int(round(w0 * wm ** round(math.log((w0 + wa * j) / w0, wm)) / quant) * quant) for j in range(depth)]
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:
        g = min(group, w)
        out.append((int(round(w / g) * g), d, g))
    return out


class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        super().__init__(*(layers + [nn.ReLU(inplace=True)] if act else layers))


class SqueezeExcitation(nn.Module):
    """torchvision-style SE: pool module, 1x1 conv fc1, ReLU, 1x1 conv fc2, Sigmoid module, ``scale * x``."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class BottleneckTransform(nn.Sequential):
    """1x1, grouped 3x3 (carrying the stride), optional SE (on the block's input width), 1x1."""

    def __init__(self, cin: int, cout: int, stride: int, group: int, se_ratio: float | None) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["a"] = ConvNormAct(cin, cout, 1)
        layers["b"] = ConvNormAct(cout, cout, 3, stride, groups=cout // group)
        if se_ratio:
            layers["se"] = SqueezeExcitation(cout, int(round(se_ratio * cin)))
        layers["c"] = ConvNormAct(cout, cout, 1, act=False)
        super().__init__(layers)


class ResBottleneckBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, group: int, se_ratio: float | None) -> None:
        super().__init__()
        self.proj = ConvNormAct(cin, cout, 1, stride, act=False) if (cin != cout or stride != 1) else None
        self.f = BottleneckTransform(cin, cout, stride, group, se_ratio)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x) + self.f(x) if self.proj is not None else x + self.f(x)
        return self.activation(x)


class RegNet(nn.Module):
    def __init__(self, stages: list[tuple[int, int, int]], se_ratio: float | None, stem: int = 32,
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, stem, 3, stride=2)
        trunk: OrderedDict[str, nn.Module] = OrderedDict()
        cin = stem
        for i, (w, d, g) in enumerate(stages, start=1):
            stage = nn.Sequential()
            for j in range(d):
                stage.add_module(f"block{i}-{j}", ResBottleneckBlock(cin, w, 2 if j == 0 else 1, g, se_ratio))
                cin = w
            trunk[f"block{i}"] = stage
        self.trunk_output = nn.Sequential(trunk)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.trunk_output(self.stem(x)))
        x = x.flatten(start_dim=1)
        return self.fc(x)


def _thin(stages: list[tuple[int, int, int]], width: float) -> list[tuple[int, int, int]]:
    """Scale widths and group widths together, so that every grouped conv keeps its number of groups."""
    if width == 1.0:
        return stages
    return [(max(1, round(w * width)) // max(1, round(g * width)) * max(1, round(g * width)), d,
             max(1, round(g * width))) for w, d, g in stages]


def regnet_x_400mf(width: float = 1.0) -> RegNet:
    return RegNet(_thin(regnet_stages(22, 24, 24.48, 2.54, 16), width), None, stem=scaled(32, width))


def regnet_y_400mf(width: float = 1.0) -> RegNet:
    return RegNet(_thin(regnet_stages(16, 48, 27.89, 2.09, 8), width), 0.25, stem=scaled(32, width))


register(Entry(
    "convnext_t_stage1", convnext_t_stage1, IMAGENET, IMAGENET_SIZES,
    "224 as published; 225 (odd) also builds: the 4x4/4 stem floors",
    rf_layers=(("", 128),), rf_width=1 / 8, params=None,
    source="Liu et al. 2022, ConvNeXt-T (stem + stage 1, C = 96, 3 blocks); timm layout; no published count"))
register(Entry(
    "regnet_x_400mf", regnet_x_400mf, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("trunk_output.block4.block4-11.activation", 1024),), rf_width=1 / 16, params_rounded="5.2M",
    source="Radosavovic et al. 2020, RegNetX-400MF (d=22, w0=24, wa=24.48, wm=2.54, g=16); pycls and timm "
           "(regnetx_004) list 5.2M parameters"))
register(Entry(
    "regnet_y_400mf", regnet_y_400mf, IMAGENET, IMAGENET_SIZES, IMAGENET_WHY,
    rf_layers=(("trunk_output.block4.block4-5.activation", 64), ("trunk_output.block1.block1-0.f.b.2", 32)),
    rf_width=1 / 8, params=4_344_144,
    source="Radosavovic et al. 2020, RegNetY-400MF (d=16, w0=48, wa=27.89, wm=2.09, g=8, SE 0.25); "
           "torchvision: 4,344,144"))
