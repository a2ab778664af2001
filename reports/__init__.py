"""Rendering (Markdown, PDF), formatting of results, and the ``archcount`` command line."""
from __future__ import annotations

from typing import Any


def build_report(*args: Any, **kwargs: Any) -> Any:
    """Build the comparison report; see :func:`reports.report.build_report`."""
    from .report import build_report as _build
    return _build(*args, **kwargs)


__all__ = ["build_report"]
