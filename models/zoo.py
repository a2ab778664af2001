"""The model zoo: the colourization networks of the published exercise and two MNIST classifiers.

Paddings that depend on the kernel come from :func:`analysis.shapes.solve_padding`.  The strided
nets (ConvTransposeNet, UNet) build with any kernel size, even ones included: their stride-2 layers
use the solver's paddings and the final stride-1 conv uses torch's ``padding="same"``, which is
symmetric for odd k and asymmetric for even k (``(k - 2)/2`` rows before, ``k/2`` after).

>>> import torch
>>> net = ConvTransposeNet(kernel=4, num_filters=4)
>>> net.final.padding, net.final._reversed_padding_repeated_twice
('same', [1, 2, 1, 2])
>>> tuple(net(torch.zeros(1, 1, 32, 32)).shape)
(1, 24, 32, 32)

Registration is explicit: :func:`register_zoo` adds every zoo model to a registry.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn as nn

from analysis.errors import ArchcountError, require_positive_int
from analysis.shapes import solve_padding

from .registry import ModelRegistry


# ----------------------------------------------------------------------------- helpers

def _check_hparams(model: str, **values: Any) -> dict[str, int]:
    return {name: require_positive_int(v, name, model=model) for name, v in values.items()}


def keep_padding(model: str, kernel: int) -> int:
    """Padding of a stride-1 conv that keeps the size; an error names the model when none exists."""
    sol = solve_padding(kernel, stride=1)
    if not sol.solutions:
        raise ArchcountError(f"kernel {kernel} cannot keep the tensor shapes: {sol.reason}; use an odd kernel",
                             model=model, argument="kernel")
    return sol.solutions[0][0]


def halving_padding(model: str, kernel: int) -> int:
    """Padding of a stride-2 conv that halves even sizes."""
    sol = solve_padding(kernel, stride=2)
    if not sol.solutions:  # pragma: no cover - every kernel >= 1 has one
        raise ArchcountError(f"kernel {kernel} cannot halve the size: {sol.reason}", model=model, argument="kernel")
    return sol.solutions[0][0]


def doubling_padding(model: str, kernel: int) -> tuple[int, int]:
    """(padding, output_padding) of a stride-2 transposed conv that doubles the size."""
    sol = solve_padding(kernel, stride=2, transposed=True)
    if not sol.solutions:  # pragma: no cover
        raise ArchcountError(f"kernel {kernel} cannot double the size: {sol.reason}", model=model,
                             argument="kernel")
    return sol.solutions[0]


class ZooNet(nn.Module):
    """Base class: checks the input before ``forward`` so bad shapes give a clear error."""

    model_name = "model"
    min_size = 1
    size_multiple = 1
    max_size: int | None = None

    def __init__(self, num_in_channels: int) -> None:
        super().__init__()
        self.num_in_channels = num_in_channels
        self.register_forward_pre_hook(_check_input)

    def check_input_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 4:
            raise ArchcountError(f"expects a 4-d input [BS, {self.num_in_channels}, H, W], got {len(shape)}-d",
                                 model=self.model_name, argument="input", shapes={"input": tuple(shape)})
        if shape[1] != self.num_in_channels:
            raise ArchcountError(
                f"input has {shape[1]} channels but num_in_channels={self.num_in_channels}",
                model=self.model_name, argument="input", shapes={"input": tuple(shape)})
        for axis, size in zip("HW", shape[2:]):
            if size < self.min_size or size % self.size_multiple or (self.max_size and size > self.max_size):
                rule = f">= {self.min_size}" if not self.max_size else f"in {self.min_size}..{self.max_size}"
                if self.size_multiple > 1:
                    rule += f" and a multiple of {self.size_multiple}"
                raise ArchcountError(
                    f"input {axis}={size} is not valid for this model's depth; {axis} must be {rule}",
                    model=self.model_name, argument="input", shapes={"input": tuple(shape)})


def _check_input(module: ZooNet, args: tuple[Any, ...]) -> None:
    if args and isinstance(args[0], torch.Tensor):
        module.check_input_shape(tuple(args[0].shape))


# ----------------------------------------------------------------------------- colourization nets

class PoolUpsampleNet(ZooNet):
    """Conv → MaxPool → BN → ReLU down, Conv → Upsample → BN → ReLU up; paddings keep the size."""

    model_name = "pool_upsample"
    min_size = 4

    def __init__(self, kernel: int = 3, num_in_channels: int = 1, num_filters: int = 32,
                 num_colours: int = 24) -> None:
        hp = _check_hparams(self.model_name, kernel=kernel, num_in_channels=num_in_channels,
                            num_filters=num_filters, num_colours=num_colours)
        super().__init__(hp["num_in_channels"])
        k, nic, nf, nc = hp["kernel"], hp["num_in_channels"], hp["num_filters"], hp["num_colours"]
        p = keep_padding(self.model_name, k)
        self.block1 = nn.Sequential(nn.Conv2d(nic, nf, k, padding=p), nn.MaxPool2d(2), nn.BatchNorm2d(nf), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(nf, 2 * nf, k, padding=p), nn.MaxPool2d(2), nn.BatchNorm2d(2 * nf),
                                    nn.ReLU())
        self.block3 = nn.Sequential(nn.Conv2d(2 * nf, nf, k, padding=p), nn.Upsample(scale_factor=2),
                                    nn.BatchNorm2d(nf), nn.ReLU())
        self.block4 = nn.Sequential(nn.Conv2d(nf, nc, k, padding=p), nn.Upsample(scale_factor=2),
                                    nn.BatchNorm2d(nc), nn.ReLU())
        self.final = nn.Conv2d(nc, nc, k, padding=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.block4(self.block3(self.block2(self.block1(x)))))


#: The padding of the final stride-1 conv of the strided nets: torch's "same" (asymmetric for even k).
SAME_PADDING = "same"


def same_padding_pairs(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero rows that torch's ``padding="same"`` adds for a stride-1 conv.

    >>> same_padding_pairs(3), same_padding_pairs(4), same_padding_pairs(5)
    ((1, 1), (1, 2), (2, 2))
    """
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A stride-1 ``nn.Conv2d`` with ``padding="same"``: the output keeps the input size for any kernel.

    For odd k the padding is symmetric and the forward pass passes it to the convolution as plain
    integers (the same numbers as ``padding="same"``, but traced as an ordinary convolution, which
    tools such as fvcore count); for even k torch pads one row and column more after than before.

    >>> conv = SameConv2d(1, 2, 4)
    >>> conv.padding, tuple(conv(torch.zeros(1, 1, 5, 7)).shape)
    ('same', (1, 2, 5, 7))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=SAME_PADDING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_left, w_right, h_left, h_right = self._reversed_padding_repeated_twice
        if w_left == w_right and h_left == h_right:
            return nn.functional.conv2d(x, self.weight, self.bias, self.stride, (h_left, w_left), self.dilation,
                                        self.groups)
        with warnings.catch_warnings():  # "may require a zero-padded copy": that is what asymmetric means
            warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
            return super().forward(x)


# SameConv2d overrides forward (plain integer padding for odd k, so that fvcore counts it), so it
# gets its own rule: the Conv2d rule, which follows padding="same" exactly for both parities.
from analysis.rules import RULES, conv_rule_factory  # noqa: E402

RULES.add(SameConv2d, conv_rule_factory(2))


class _StridedBase(ZooNet):
    def _layers(self, k: int, nic: int, nf: int, nc: int, in4: int, in_final: int) -> None:
        ph = halving_padding(self.model_name, k)
        pd, opd = doubling_padding(self.model_name, k)
        if k % 2 == 0:  # floor((H + 2p - k)/2) + 1 = floor(H/2): two halvings need H >= 4
            self.min_size = max(self.min_size, 4)
        self.block1 = nn.Sequential(nn.Conv2d(nic, nf, k, stride=2, padding=ph), nn.BatchNorm2d(nf), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(nf, 2 * nf, k, stride=2, padding=ph), nn.BatchNorm2d(2 * nf),
                                    nn.ReLU())
        self.block3 = nn.Sequential(nn.ConvTranspose2d(2 * nf, nf, k, stride=2, padding=pd, output_padding=opd),
                                    nn.BatchNorm2d(nf), nn.ReLU())
        self.block4 = nn.Sequential(nn.ConvTranspose2d(in4, nc, k, stride=2, padding=pd, output_padding=opd),
                                    nn.BatchNorm2d(nc), nn.ReLU())
        self.final = SameConv2d(in_final, nc, k)


class ConvTransposeNet(_StridedBase):
    """Stride-2 convs down, stride-2 transposed convs up, each followed by BN → ReLU except the last.

    Any kernel size builds: the final stride-1 conv uses ``padding="same"`` (asymmetric for even k).
    """

    model_name = "conv_transpose"
    min_size = 1

    def __init__(self, kernel: int = 3, num_in_channels: int = 1, num_filters: int = 32,
                 num_colours: int = 24) -> None:
        hp = _check_hparams(self.model_name, kernel=kernel, num_in_channels=num_in_channels,
                            num_filters=num_filters, num_colours=num_colours)
        super().__init__(hp["num_in_channels"])
        k, nic, nf, nc = hp["kernel"], hp["num_in_channels"], hp["num_filters"], hp["num_colours"]
        self._layers(k, nic, nf, nc, in4=nf, in_final=nc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.block4(self.block3(self.block2(self.block1(x)))))


class UNet(_StridedBase):
    """ConvTransposeNet with skips: cat(block3, block1) into block4 and cat(block4, input) into the last conv.

    Any kernel size builds, as for :class:`ConvTransposeNet`.
    """

    model_name = "unet"
    min_size = 4
    size_multiple = 4

    def __init__(self, kernel: int = 3, num_in_channels: int = 1, num_filters: int = 32,
                 num_colours: int = 24) -> None:
        hp = _check_hparams(self.model_name, kernel=kernel, num_in_channels=num_in_channels,
                            num_filters=num_filters, num_colours=num_colours)
        super().__init__(hp["num_in_channels"])
        k, nic, nf, nc = hp["kernel"], hp["num_in_channels"], hp["num_filters"], hp["num_colours"]
        self._layers(k, nic, nf, nc, in4=2 * nf, in_final=nic + nc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.block1(x)
        out2 = self.block2(out1)
        out3 = self.block3(out2)
        out4 = self.block4(torch.cat([out3, out1], dim=1))
        return self.final(torch.cat([out4, x], dim=1))


class _Net2021(ZooNet):
    min_size = 4

    def _layers(self, k: int, nic: int, nf: int, nc: int, skip: bool) -> None:
        p = keep_padding(self.model_name, k)
        self.block1 = nn.Sequential(nn.Conv2d(nic, nf, k, padding=p), nn.MaxPool2d(2), nn.BatchNorm2d(nf), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(nf, 2 * nf, k, padding=p), nn.MaxPool2d(2), nn.BatchNorm2d(2 * nf),
                                    nn.ReLU())
        self.block3 = nn.Sequential(nn.Conv2d(2 * nf, 2 * nf, k, padding=p), nn.BatchNorm2d(2 * nf), nn.ReLU())
        self.block4 = nn.Sequential(nn.Conv2d((4 if skip else 2) * nf, nf, k, padding=p),
                                    nn.Upsample(scale_factor=2), nn.BatchNorm2d(nf), nn.ReLU())
        self.block5 = nn.Sequential(nn.Conv2d((2 if skip else 1) * nf, nc, k, padding=p),
                                    nn.Upsample(scale_factor=2), nn.BatchNorm2d(nc), nn.ReLU())
        self.final = nn.Conv2d(nc + (nic if skip else 0), nc, k, padding=p)


class CNN2021(_Net2021):
    """The earlier pool/upsample CNN with a middle block Conv(2NF→2NF) → BN → ReLU at H/4."""

    model_name = "cnn_2021"

    def __init__(self, kernel: int = 3, num_in_channels: int = 1, num_filters: int = 32,
                 num_colours: int = 24) -> None:
        hp = _check_hparams(self.model_name, kernel=kernel, num_in_channels=num_in_channels,
                            num_filters=num_filters, num_colours=num_colours)
        super().__init__(hp["num_in_channels"])
        self._layers(hp["kernel"], hp["num_in_channels"], hp["num_filters"], hp["num_colours"], skip=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(x)))
        return self.final(self.block5(self.block4(out)))


class UNet2021(_Net2021):
    """The earlier pool/upsample UNet: skips concatenated before blocks 4, 5 and 6."""

    model_name = "unet_2021"
    size_multiple = 4

    def __init__(self, kernel: int = 3, num_in_channels: int = 1, num_filters: int = 32,
                 num_colours: int = 24) -> None:
        hp = _check_hparams(self.model_name, kernel=kernel, num_in_channels=num_in_channels,
                            num_filters=num_filters, num_colours=num_colours)
        super().__init__(hp["num_in_channels"])
        self._layers(hp["kernel"], hp["num_in_channels"], hp["num_filters"], hp["num_colours"], skip=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.block1(x)
        out2 = self.block2(out1)
        out3 = self.block3(out2)
        out4 = self.block4(torch.cat([out3, out2], dim=1))
        out5 = self.block5(torch.cat([out4, out1], dim=1))
        return self.final(torch.cat([out5, x], dim=1))


# ----------------------------------------------------------------------------- MNIST classifiers

class MnistFixed(ZooNet):
    """Three conv → ReLU → MaxPool blocks (NF, 2NF, 4NF filters), Flatten, Linear(4NF·3·3 → NC), 28×28 input."""

    model_name = "mnist_fixed"
    min_size = 24
    max_size = 31  # floor(floor(floor(H/2)/2)/2) must be 3

    def __init__(self, kernel: int = 3, num_in_channels: int = 1, num_filters: int = 16,
                 num_colours: int = 10) -> None:
        hp = _check_hparams(self.model_name, kernel=kernel, num_in_channels=num_in_channels,
                            num_filters=num_filters, num_colours=num_colours)
        super().__init__(hp["num_in_channels"])
        k, nic, nf, nc = hp["kernel"], hp["num_in_channels"], hp["num_filters"], hp["num_colours"]
        p = keep_padding(self.model_name, k)
        self.features = nn.Sequential(
            nn.Conv2d(nic, nf, k, padding=p), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(nf, 2 * nf, k, padding=p), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * nf, 4 * nf, k, padding=p), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(4 * nf * 3 * 3, nc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


class MnistGlobalPool(ZooNet):
    """Variable-resolution classifier: conv(C→NF), conv(NF→2NF) + pool, conv(2NF→N) + pool, global average, Linear(N→NC)."""

    model_name = "mnist_global_pool"
    min_size = 4

    def __init__(self, kernel: int = 3, num_in_channels: int = 1, num_filters: int = 16,
                 num_colours: int = 10, N: int = 64) -> None:
        hp = _check_hparams(self.model_name, kernel=kernel, num_in_channels=num_in_channels,
                            num_filters=num_filters, num_colours=num_colours, N=N)
        super().__init__(hp["num_in_channels"])
        k, nic, nf, nc, n = hp["kernel"], hp["num_in_channels"], hp["num_filters"], hp["num_colours"], hp["N"]
        p = keep_padding(self.model_name, k)
        self.features = nn.Sequential(
            nn.Conv2d(nic, nf, k, padding=p), nn.ReLU(),
            nn.Conv2d(nf, 2 * nf, k, padding=p), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * nf, n, k, padding=p), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(n, nc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


# ----------------------------------------------------------------------------- registration

_COLOUR_DOCS = {
    "kernel": "convolution kernel size k",
    "num_in_channels": "input channels NIC (1 for greyscale)",
    "num_filters": "filters NF of the first block",
    "num_colours": "output colour classes NC",
}
_MNIST_DOCS = dict(_COLOUR_DOCS, num_colours="output classes (NC)", num_filters="filters NF of the first conv")

ZOO: tuple[tuple[str, type[ZooNet], str, str], ...] = (
    ("pool_upsample", PoolUpsampleNet, "colourization",
     "PoolUpsampleNet: conv+maxpool down, conv+nearest upsample up (odd kernels)"),
    ("conv_transpose", ConvTransposeNet, "colourization",
     "ConvTransposeNet: stride-2 convs down, stride-2 transposed convs up; any k (final conv padding='same', "
     "asymmetric for even k)"),
    ("unet", UNet, "colourization",
     "UNet: ConvTransposeNet with cat skips from block 1 and from the input; any k (final conv padding='same')"),
    ("cnn_2021", CNN2021, "colourization",
     "earlier CNN: pool/upsample with a middle Conv(2NF->2NF) block at H/4"),
    ("unet_2021", UNet2021, "colourization",
     "earlier UNet: pool/upsample, skips concatenated before blocks 4, 5 and 6"),
    ("mnist_fixed", MnistFixed, "classification",
     "MNIST classifier: 3x(conv, ReLU, maxpool), Flatten, Linear(4NF*3*3 -> NC); 28x28 input"),
    ("mnist_global_pool", MnistGlobalPool, "classification",
     "variable-resolution MNIST classifier: convs, global average pool, Linear(N -> NC)"),
)


def register_zoo(registry: ModelRegistry) -> ModelRegistry:
    """Add every zoo model to ``registry`` and return it."""
    for name, cls, task, description in ZOO:
        docs = dict(_COLOUR_DOCS if task == "colourization" else _MNIST_DOCS)
        if name == "mnist_global_pool":
            docs["N"] = "channels N of the last conv (the global-pool width)"
        registry.add(name, cls, description=description, task=task, min_size=cls.min_size,
                     size_multiple=cls.size_multiple, max_size=cls.max_size,
                     fixed_size=(28, 28) if name == "mnist_fixed" else None, hparam_docs=docs)
    return registry
