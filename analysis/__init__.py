"""archcount's analysis: exact symbolic counts, shapes, padding, receptive fields, verification, checking.

The symbolic core (symbols, conventions, rules, shapes, tables, formula parsing) imports
without torch; the torch-facing parts (capture of real models, measurement, verification,
receptive-field measurement) are imported lazily on first use.

>>> from analysis import NIC, NF, solve_padding
>>> solve_padding(5, stride=2).solutions
((2, 0),)
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import ArchcountError
from .shapes import PaddingSolution, SizeResult, output_size, padding_table, solve_padding
from .symbols import NC, NF, NIC, H, W, k

# name -> module, imported on first access (some of these need torch)
_LAZY = {
    "Convention": "analysis.conventions",
    "PRESETS": "analysis.conventions",
    "get_convention": "analysis.conventions",
    "CountTable": "analysis.table",
    "LayerRow": "analysis.table",
    "count": "analysis.counting",
    "solve_for": "analysis.solve",
    "output_shape": "analysis.counting",
    "receptive_field": "analysis.receptive",
    "verify_receptive_field": "analysis.receptive",
    "verify": "analysis.verify",
    "check": "analysis.checker",
    "CheckResult": "analysis.checker",
    "parse_formula": "analysis.parsing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ArchcountError", "H", "NC", "NF", "NIC", "PaddingSolution", "SizeResult", "W", "k",
           "output_size", "padding_table", "solve_padding", *_LAZY]
