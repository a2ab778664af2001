"""Simplification of exact formulas under stated assumptions (H, W multiples of m; kernel parity)."""
from __future__ import annotations

from typing import Any, Mapping

import sympy as sp

from .symbols import ALIASES, H, W, k

_ROUNDING = (sp.floor, sp.ceiling, sp.Mod, sp.Piecewise, sp.Max, sp.Min)


def has_rounding(expr: Any) -> bool:
    return isinstance(expr, sp.Basic) and any(expr.has(f) for f in _ROUNDING)


def simplify_multiple(expr: Any, multiples: Mapping[str, int], extra: Mapping[str, sp.Symbol] | None = None) -> Any:
    """Simplify ``expr`` assuming each named symbol is a multiple of its value.

    >>> from analysis.symbols import H
    >>> simplify_multiple(sp.floor(H/2) * sp.floor(sp.floor(H/2)/2), {"H": 4})
    H**2/8
    """
    if not isinstance(expr, sp.Basic) or not expr.free_symbols:
        return expr
    known = dict(ALIASES)
    known.update(extra or {})
    fwd, back = {}, {}
    for name, m in multiples.items():
        sym = known[name]
        if sym not in expr.free_symbols:
            continue
        dummy = sp.Symbol(f"_{name}_q", positive=True, integer=True)
        fwd[sym] = m * dummy
        back[dummy] = sym / m
    if not fwd:
        return expr
    out = sp.expand(sp.piecewise_fold(expr.subs(fwd)))
    out = sp.expand(out.subs(back))
    return int(out) if out.is_Integer else out


def simplify_parity(expr: Any, parity: str, symbol: sp.Symbol = k) -> Any:
    """Simplify assuming ``symbol`` is odd or even.

    >>> simplify_parity(H + 2*sp.floor(k/2) - k + 1, "odd")
    H
    """
    if not isinstance(expr, sp.Basic) or symbol not in expr.free_symbols:
        return expr
    j = sp.Symbol("_kpar", nonnegative=True, integer=True)
    rep = 2 * j + 1 if parity == "odd" else 2 * j + 2
    inv = (symbol - 1) / 2 if parity == "odd" else (symbol - 2) / 2
    out = sp.expand(sp.piecewise_fold(expr.subs(symbol, rep)))
    return sp.expand(out.subs(j, inv))


def auto_multiple(table: Any, candidates: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)) -> int:
    """Smallest candidate m for which every total is free of floors, ceilings and residues."""
    totals = [table.total(q) for q in ("weights", "outputs", "connections")]
    if not any(has_rounding(t) for t in totals):
        return 1
    for m in candidates[1:]:
        if not any(has_rounding(simplify_multiple(t, {"H": m, "W": m}, table.symbols)) for t in totals):
            return m
    return candidates[-1]


__all__ = ["auto_multiple", "has_rounding", "simplify_multiple", "simplify_parity"]
