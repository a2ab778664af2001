"""Names shared by the report's modules: display labels and the exercise's default point."""
from __future__ import annotations

#: The exercise's default hyperparameters, where numbers are shown.
DEFAULT_POINT = {"NIC": 1, "NF": 32, "NC": 24, "k": 3}
LABELS = {"pool_upsample": "PoolUpsampleNet", "conv_transpose": "ConvTransposeNet", "unet": "UNet",
          "cnn_2021": "CNN (2021)", "unet_2021": "UNet (2021)", "mnist_fixed": "MNIST fixed",
          "mnist_global_pool": "MNIST global pool"}


def label(name: str) -> str:
    """The display name of a zoo model.

    >>> label("unet"), label("mine")
    ('UNet', 'mine')
    """
    return LABELS.get(name, name)
