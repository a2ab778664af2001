"""Vision transformers (Dosovitskiy et al. 2021) at ViT-Ti/16 widths (DeiT-Ti: D=192, 3 heads, MLP 768):
timm-style blocks with a hand-written attention (``q @ k.transpose(-2, -1)``, or
``F.scaled_dot_product_attention``), and torchvision-style blocks with ``nn.MultiheadAttention``.
The cls token and the position embedding are parameters read in forward."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modern import Mlp
from .registry import IMAGENET, IMAGENET_SIZES, Entry, register, scaled

VIT_WHY = "224 as published; 225 (odd) gives the same 14x14 patches (the 16x16/16 patchify conv floors)"


class Attention(nn.Module):
    """timm-style multi-head self-attention: one qkv Linear, per-head products, an output projection."""

    def __init__(self, dim: int, heads: int, fused: bool) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = self.attn_drop(attn.softmax(dim=-1))
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, fused: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, fused)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)   # (B, N, D)


class VisionTransformer(nn.Module):
    """timm layout: patch embedding, cls token concatenated, position embedding added, blocks, norm, head on x[:, 0]."""

    def __init__(self, width: float = 1.0, depth: int = 12, fused: bool = False, image: int = 224, patch: int = 16,
                 num_classes: int = 1000) -> None:
        super().__init__()
        heads = 3
        dim = scaled(192, width, divisor=heads)
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.pos_drop = nn.Dropout(0.0)
        self.blocks = nn.Sequential(*[Block(dim, heads, fused) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x + self.pos_embed)
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class MLPBlock(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0))


class EncoderBlock(nn.Module):
    """torchvision layout: LayerNorm, ``nn.MultiheadAttention(batch_first=True)``, residual; LayerNorm, MLP, residual."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, 4 * dim)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.ln_1(inp)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x) + inp
        return x + self.mlp(self.ln_2(x))


class TorchvisionViT(nn.Module):
    """torchvision layout: ``conv_proj``, reshape/permute to tokens, ``class_token``, ``pos_embedding``."""

    def __init__(self, width: float = 1.0, depth: int = 2, image: int = 224, patch: int = 16,
                 num_classes: int = 1000) -> None:
        super().__init__()
        heads = 3
        self.patch = patch
        self.hidden = dim = scaled(192, width, divisor=heads)
        self.conv_proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(*[EncoderBlock(dim, heads) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        x = self.conv_proj(x)
        x = x.reshape(n, self.hidden, (h // self.patch) * (w // self.patch)).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = self.ln(self.layers(self.dropout(x + self.pos_embedding)))
        return self.head(x[:, 0])


def vit_ti16(width: float = 1.0) -> VisionTransformer:
    return VisionTransformer(width, depth=12)


def vit_sdpa(width: float = 1.0) -> VisionTransformer:
    return VisionTransformer(width, depth=2, fused=True)


def vit_mha(width: float = 1.0) -> TorchvisionViT:
    return TorchvisionViT(width, depth=2)


register(Entry(
    "vit_ti16", vit_ti16, IMAGENET, IMAGENET_SIZES, VIT_WHY,
    rf_layers=(("patch_embed.proj", 224),), rf_width=0.25, params_rounded="5.7M",
    source="Dosovitskiy et al. 2021 / Touvron et al. 2021 (DeiT-Ti: D=192, 12 blocks, 3 heads, MLP 768); timm "
           "vit_tiny_patch16_224 lists 5.7M parameters"))
register(Entry(
    "vit_sdpa", vit_sdpa, IMAGENET, IMAGENET_SIZES, VIT_WHY,
    rf_layers=(("patch_embed.proj", 224),), rf_width=0.25, params=None,
    source="ViT-Ti/16 widths, 2 timm-style blocks with F.scaled_dot_product_attention; no published count"))
register(Entry(
    "vit_mha", vit_mha, IMAGENET, IMAGENET_SIZES, VIT_WHY,
    rf_layers=(("conv_proj", 224),), rf_width=0.25, params=None,
    source="ViT-Ti/16 widths, 2 torchvision-style encoder blocks with nn.MultiheadAttention; no published count"))
