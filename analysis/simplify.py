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


def residue_forms(expr: Any, modulus: int, names: tuple[str, ...] = ("H", "W"),
                  extra: Mapping[str, sp.Symbol] | None = None) -> dict[tuple[int, ...], Any]:
    """``expr`` on each residue class: for H = m*q_H + r_H (and W likewise), floors and residues vanish.

    Returns ``{(r_H, r_W): expression in the q's}`` (q's are nonnegative integer symbols).

    >>> forms = residue_forms(sp.floor(H/2), 2, ("H",))
    >>> sorted(forms.items(), key=str)
    [((0,), _H_q), ((1,), _H_q)]
    """
    import itertools
    known = dict(ALIASES)
    known.update(extra or {})
    syms = [known[n] for n in names]
    qs = [sp.Symbol(f"_{n}_q", nonnegative=True, integer=True) for n in names]
    out: dict[tuple[int, ...], Any] = {}
    for res in itertools.product(range(modulus), repeat=len(names)):
        subs = {s: modulus * q + r for s, q, r in zip(syms, qs, res)}
        val = sp.sympify(expr).subs(subs) if isinstance(expr, sp.Basic) else expr
        if isinstance(val, sp.Basic):
            val = sp.expand(sp.piecewise_fold(val))
        out[res] = val
    return out


def exact_ratio(after: Any, before: Any, modulus: int, names: tuple[str, ...] = ("H", "W"),
                extra: Mapping[str, sp.Symbol] | None = None) -> tuple[Any, bool, Any]:
    """``(ratio, constant, ratio_on_multiples)`` of two size formulas, proved per residue class.

    ``ratio`` is a number when it is the same constant in every class of H, W modulo ``modulus``
    (then ``constant`` is True); otherwise the unevaluated quotient.  ``ratio_on_multiples`` is the
    ratio when H, W are multiples of ``modulus`` (None if it is not constant there either).
    """
    if not has_rounding(after) and not has_rounding(before):
        r = sp.cancel(sp.sympify(after) / sp.sympify(before))
        const = not r.free_symbols
        return r, const, (r if const else None)
    fa = residue_forms(after, modulus, names, extra)
    fb = residue_forms(before, modulus, names, extra)
    ratios = {}
    for res in fa:
        if has_rounding(fa[res]) or has_rounding(fb[res]):
            ratios[res] = None
        else:
            r = sp.cancel(fa[res] / fb[res])
            ratios[res] = r if not r.free_symbols else None
    zero = tuple(0 for _ in names)
    values = set(ratios.values())
    if None not in values and len(values) == 1:
        return values.pop(), True, ratios[zero]
    return sp.Mul(after, sp.Pow(before, -1, evaluate=False), evaluate=False), False, ratios[zero]
