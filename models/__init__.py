"""The model zoo, data and training of archcount.

>>> import models
>>> "unet" in models.available()
True
>>> net = models.build("unet", num_filters=8)
>>> sum(p.numel() for p in net.parameters()) > 0
True
"""
from __future__ import annotations

from typing import Any

from .registry import STANDARD_HPARAMS, ModelRegistry, ModelSpec
from .zoo import register_zoo

#: The default registry: the zoo plus whatever users register.
registry: ModelRegistry = register_zoo(ModelRegistry())

register = registry.register
build = registry.build
available = registry.available
spec = registry.spec


def train(*args: Any, **kwargs: Any) -> Any:
    """Train a model on the colourization task; see :func:`models.training.train`."""
    from .training import train as _train
    return _train(*args, **kwargs)


__all__ = ["ModelRegistry", "ModelSpec", "STANDARD_HPARAMS", "available", "build", "register", "registry",
           "spec", "train"]
