"""Dense prediction: DeepLabV3 with ASPP (Chen et al. 2017) on a ResNet-18 trunk, U-Net with
bilinear upsampling (Ronneberger et al. 2015, milesial/Pytorch-UNet layout) and the ESPCN
sub-pixel super-resolution net (Shi et al. 2016)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import IMAGENET, IMAGENET_SIZES, Entry, register, scaled
from .resnet import BasicBlock, ResNet


# ---------------------------------------------------------------------------- DeepLabV3

class ASPPConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, rate: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=rate, dilation=rate, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class ASPPPooling(nn.Sequential):
    """Image-level features: a Sequential that overrides forward to upsample back to the input's size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """1x1 conv, three dilated 3x3 convs (padding = dilation) and image pooling, concatenated and projected."""

    def __init__(self, cin: int, rates: tuple[int, ...], cout: int = 256) -> None:
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                                                   nn.ReLU())]
        branches += [ASPPConv(cin, cout, r) for r in rates]
        branches.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(len(branches) * cout, cout, 1, bias=False), nn.BatchNorm2d(cout),
                                     nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = [conv(x) for conv in self.convs]
        return self.project(torch.cat(res, dim=1))


class DeepLabHead(nn.Sequential):
    def __init__(self, cin: int, num_classes: int, rates: tuple[int, ...], width: int = 256) -> None:
        super().__init__(ASPP(cin, rates, width), nn.Conv2d(width, width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, num_classes, 1))


class DeepLabV3(nn.Module):
    """A ResNet-18 trunk to layer3 (output stride 16), the ASPP head at rates 6/12/18 (the paper's rates
    for output stride 16), and bilinear upsampling of the logits to the input size."""

    def __init__(self, width: float = 1.0, num_classes: int = 21) -> None:
        super().__init__()
        self.backbone = ResNet(BasicBlock, (2, 2, 2), width, stages=3)
        self.classifier = DeepLabHead(scaled(256, width), num_classes, (6, 12, 18), scaled(256, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_shape = x.shape[-2:]
        x = self.classifier(self.backbone(x))
        return F.interpolate(x, size=input_shape, mode="bilinear", align_corners=False)


def deeplabv3(width: float = 1.0) -> DeepLabV3:
    return DeepLabV3(width)


# ---------------------------------------------------------------------------- U-Net

class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, mid: int | None = None) -> None:
        mid = mid or cout
        super().__init__(nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Bilinear x2 upsampling, pad to the skip's size, concatenate, double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(cin, cout, cin // 2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        dy = x2.size()[2] - x1.size()[2]
        dx = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels: int = 3, n_classes: int = 2, width: float = 1.0) -> None:
        super().__init__()
        c = [scaled(v, width) for v in (64, 128, 256, 512, 1024)]
        self.inc = DoubleConv(n_channels, c[0])
        self.down1, self.down2, self.down3 = Down(c[0], c[1]), Down(c[1], c[2]), Down(c[2], c[3])
        self.down4 = Down(c[3], c[4] // 2)
        self.up1, self.up2 = Up(c[4], c[3] // 2), Up(c[3], c[2] // 2)
        self.up3, self.up4 = Up(c[2], c[1] // 2), Up(c[1], c[0])
        self.outc = OutConv(c[0], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def unet(width: float = 1.0) -> UNet:
    return UNet(width=width)


# ---------------------------------------------------------------------------- ESPCN

class ESPCN(nn.Module):
    """5x5 conv 64, tanh, 3x3 conv 32, tanh, 3x3 conv to r^2 channels, PixelShuffle(r) (r = 3)."""

    def __init__(self, width: float = 1.0, upscale: int = 3, channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, scaled(64, width), 5, padding=2)
        self.conv2 = nn.Conv2d(scaled(64, width), scaled(32, width), 3, padding=1)
        self.conv3 = nn.Conv2d(scaled(32, width), channels * upscale ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(x))
        x = torch.tanh(self.conv2(x))
        return self.shuffle(self.conv3(x))


def espcn(width: float = 1.0) -> ESPCN:
    return ESPCN(width)


register(Entry(
    "deeplabv3", deeplabv3, IMAGENET, IMAGENET_SIZES,
    "224 and 225 (odd): the trunk floors, ASPP keeps the size (padding = dilation, even where it exceeds the "
    "14x14 map) and the logits are interpolated to the input size",
    rf_layers=(("", 64), ("classifier.0.convs.3.2", 896), ("classifier.0.convs.1.2", 512)), rf_width=1 / 16,
    params=None,
    source="Chen et al. 2017 (DeepLabV3: ASPP rates 6/12/18 at output stride 16, image pooling); torchvision "
           "DeepLabHead layout; ResNet-18 trunk to layer3; no published count"))
register(Entry(
    "unet", unet, IMAGENET, IMAGENET_SIZES,
    "224 and 225 (odd): the pools floor and each up block pads the upsampled map to its skip's size",
    rf_layers=(("outc.conv", 256), ("up1.up", 192)), rf_width=1 / 64, rf_walk=True, params=None,
    source="Ronneberger et al. 2015 (U-Net) with bilinear upsampling and channel halving as in "
           "milesial/Pytorch-UNet (n_channels=3, n_classes=2, bilinear=True); no published count"))
register(Entry(
    "espcn", espcn, (1, 224, 224), IMAGENET_SIZES,
    "a single-channel low-resolution input; any size builds (stride 1), 224 and 225 as for the ImageNet models",
    rf_layers=(("shuffle", 16),), rf_width=1 / 8, rf_walk=True, params=None,
    source="Shi et al. 2016 (ESPCN: f1=5, n1=64, f2=3, n2=32, f3=3, r=3, tanh); no published count"))
