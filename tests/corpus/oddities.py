"""Small modules, each isolating one pattern real code uses: a Conv2d subclass that strides in
forward, one conv applied twice, a Parameter shared by two modules, slicing and concatenating a
slice, split/stack, a spatial ``torch.amax`` and DANet's channel attention written with ``torch.einsum``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import IMAGENET, IMAGENET_SIZES, Entry, register, scaled

TOY_WHY = "a toy module; any size builds (stride 1 throughout); 32 and 33 keep it fast"


class StridedConv2d(nn.Conv2d):
    """A Conv2d whose forward always strides 2 (its ``stride`` attribute still says 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, 2, self.padding, self.dilation, self.groups)


class StridedSubclassNet(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c1, c2 = scaled(16, width), scaled(32, width)
        self.stem = StridedConv2d(3, c1, 3, padding=1)
        self.down = StridedConv2d(c1, c2, 3, padding=1)
        self.conv = nn.Conv2d(c2, c2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem(x))
        x = self.relu(self.down(x))
        x = self.relu(self.conv(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class SharedConv(nn.Module):
    """One 3x3 conv (8 -> 8 channels, 584 parameters) applied twice, with one ReLU module."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv(x))
        return self.relu(self.conv(x))


class TiedConvs(nn.Module):
    """Two Conv2d modules holding the same weight Parameter (their biases are their own)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x)))


class SliceCat(nn.Module):
    """``x[:, 0]`` (a channel, unsqueezed back), ``y[:, :4]`` and ``torch.cat([y, y[:, :4]], 1)``."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(12, 8, 3, padding=1)
        self.gray = nn.Conv2d(1, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x[:, 0].unsqueeze(1)
        y = F.relu(self.conv1(x))
        z = torch.cat([y, y[:, :4]], 1)
        return self.conv2(z) + self.gray(g)


class SplitStackAmax(nn.Module):
    """``split`` into two groups of channels, ``stack`` them interleaved, a conv, ``torch.amax`` over H, W."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).split(4, dim=1)
        y = torch.stack([a, b], dim=2).flatten(1, 2)      # channels a0 b0 a1 b1 ...
        y = F.relu(self.mix(y))
        return self.fc(torch.amax(y, dim=(2, 3)))


class EinsumChannelAttention(nn.Module):
    """DANet's channel attention module (Fu et al., 2019, "Dual Attention Network for Scene
    Segmentation", Fig. 3B), written with ``torch.einsum``: the C x C Gram matrix of the feature map,
    a softmax over it, the channels re-mixed by it, and a learnt scale ``gamma`` on a residual."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        energy = torch.einsum("bchw,bdhw->bcd", x, x)
        attention = energy.softmax(dim=-1)
        y = torch.einsum("bcd,bdhw->bchw", attention, x)
        return self.head(self.gamma * y + x)


for name, cls, shape, rf_layers, params, why in (
        ("strided_subclass", StridedSubclassNet, IMAGENET, (("relu#3", 32),), None,
         "224 and 225 (odd): both strided convs floor; the head is global"),
        ("shared_conv", SharedConv, (8, 32, 32), (("relu#2", 32), ("conv#1", 32)), 584, TOY_WHY),
        ("tied_convs", TiedConvs, (8, 32, 32), (("b", 32),), 592, TOY_WHY),
        ("slice_cat", SliceCat, (3, 32, 32), (("", 32),), None, TOY_WHY),
        ("split_stack_amax", SplitStackAmax, (3, 32, 32), (("mix", 32),), None, TOY_WHY),
        ("einsum_channel_attention", EinsumChannelAttention, (3, 32, 32), (("head", 32), ("conv", 32)), None,
         TOY_WHY)):
    register(Entry(
        name, cls, shape, IMAGENET_SIZES if shape == IMAGENET else (32, 33), why, rf_layers=rf_layers,
        rf_width=1.0, params=params,
        source="written for the corpus from issue 12's list of patterns" + (
            f"; {params} parameters by design (8*8*9 weights + biases)" if params else "")))
