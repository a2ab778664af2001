"""pytest helpers: assert that a hand-written formula, shape or padding is right.

On failure the AssertionError message is the checker's full report: the verdict, the conventions
it matches (or the closest one), the difference, the explanation and the per-term table.

>>> from analysis.testing import assert_formula
>>> r = assert_formula("pool_upsample", "weights", "k^2 (NIC NF + 4 NF^2 + NF NC + NC^2)")
>>> r.reference
'weighted'
>>> assert_formula("pool_upsample", "weights", "9 NIC NF + 18 NF^2 + 9 NF NC + 9 NC^2")
Traceback (most recent call last):
    ...
AssertionError: check pool_upsample weights (input H x W, kernel=3): 9 NIC NF + 18 NF^2 + 9 NF NC + 9 NC^2
verdict: wrong
...
"""
from __future__ import annotations

from typing import Any

from .checker import CheckResult, PaddingCheck, ShapeCheck, check, check_padding, check_shape


def _report(result: Any) -> str:
    from reports.checking import explain
    return explain(result)


def assert_formula(model: Any, quantity: str, formula: Any, *, convention: Any = "weighted",
                   input_size: Any = None, switches: Any = None, **hparams: Any) -> CheckResult:
    """Assert that ``formula`` is the exact ``quantity`` of ``model`` under ``convention``.

    ``convention=None`` accepts any preset.  Other keywords (``kernel=3``, ``NF=32`` ...) are passed
    to :func:`analysis.checker.check`.  Returns the :class:`CheckResult` when right.
    """
    __tracebackhide__ = True
    result = check(formula, model, quantity, input_size=input_size, convention=convention, switches=switches,
                   **hparams)
    if not result.ok:
        raise AssertionError(_report(result))
    return result


def assert_shape(claimed: Any, layer: Any, input_shape: Any) -> ShapeCheck:
    """Assert that a layer maps ``input_shape`` to ``claimed`` (e.g. ``"16x511x383"``)."""
    __tracebackhide__ = True
    result = check_shape(claimed, layer, input_shape)
    if not result.ok:
        raise AssertionError(_report(result))
    return result


def assert_padding(claimed: Any, kernel: int, stride: int = 1, **kw: Any) -> PaddingCheck:
    """Assert that a padding keeps/halves/doubles the size (see :func:`analysis.checker.check_padding`)."""
    __tracebackhide__ = True
    result = check_padding(claimed, kernel, stride, **kw)
    if not result.ok:
        raise AssertionError(_report(result))
    return result


__all__ = ["assert_formula", "assert_padding", "assert_shape"]
