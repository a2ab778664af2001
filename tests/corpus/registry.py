"""The corpus registry: one :class:`Entry` per architecture, filled by the family modules.

Every model is written from its published design (paper or well-known layer configuration), in
torchvision/timm style, without copying code.  Each build function takes a width multiplier:
``width=1.0`` is the published model; a thin build (``rf_width``) keeps the geometry (kernels,
strides, dilations, padding, groups and shuffle structure) and is used for receptive fields,
which do not depend on channel counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class Entry:
    """One corpus architecture and what its measurements need."""

    name: str
    build: Builder                  #: ``build(width=1.0) -> nn.Module``
    input_shape: tuple[int, ...]    #: per-sample input (C, H, W) of the published model
    sizes: tuple[int, int]          #: two input sides of different parity for the symbolic check
    sizes_why: str                  #: why these two sizes
    #: (layer, input side) pairs whose receptive field is checked, the last spatial feature map first;
    #: a layer is a module-call path ("" = the model output, "p#k" = the k-th call of module p) and the
    #: side is the brute-force measurement's input (doubled while the field is clipped)
    rf_layers: tuple[tuple[str, int], ...]
    rf_width: float                 #: width multiplier of the thin build used for receptive fields
    rf_walk: bool = False           #: probe every unclipped diagonal position (fields vary with position)
    params: int | None = None       #: published parameter count (for the toy modules: by design); None if none
    params_rounded: str | None = None  #: a count published only rounded, e.g. "5.2M"
    source: str = ""                #: the design (and count) this model was written from

    @property
    def rf_layer(self) -> str:
        """The last spatial feature map's module-call path."""
        return self.rf_layers[0][0]

    def make(self, thin: bool = False) -> nn.Module:
        """The model in eval mode (the thin build with ``thin=True``)."""
        model = self.build(width=self.rf_width if thin else 1.0)
        return model.eval()


REGISTRY: dict[str, Entry] = {}

IMAGENET = (3, 224, 224)
IMAGENET_SIZES = (224, 225)
IMAGENET_WHY = "224 as published; 225 (odd) also builds: every stride floors and the head is global or fixed-size"


def register(entry: Entry) -> Entry:
    """Add ``entry`` to the corpus (names are unique)."""
    if entry.name in REGISTRY:
        raise ValueError(f"duplicate corpus entry {entry.name!r}")
    REGISTRY[entry.name] = entry
    return entry


def scaled(channels: int, width: float, divisor: int = 1, minimum: int = 1) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (at least ``minimum`` and ``divisor``).

    >>> scaled(64, 1.0), scaled(64, 0.25), scaled(24, 0.1, divisor=2)
    (64, 16, 2)
    """
    if width == 1.0:
        return channels
    value = int(round(channels * width / divisor)) * divisor
    return max(value, divisor, minimum)
