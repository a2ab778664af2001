"""A corpus of real CNN architectures, written from their published designs, with independent
measurements (:mod:`corpus.reference`) that archcount's counts are tested against
(``tests/test_corpus.py``).

>>> from corpus import REGISTRY
>>> len(REGISTRY) >= 15
True
"""
from __future__ import annotations

from . import branches, classic, dense_prediction, mobile, modern, oddities, resnet, vit  # noqa: F401  (register)
from .registry import REGISTRY, Entry, register, scaled

NAMES: tuple[str, ...] = tuple(REGISTRY)

__all__ = ["NAMES", "REGISTRY", "Entry", "register", "scaled"]
