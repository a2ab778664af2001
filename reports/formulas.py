"""Formulas as a person writes them: one presentation layer for Markdown, Typst/PDF, the CLI and notebooks.

sympy prints ``NC**2*k**2 + NC*NF*k**2 + 4*NF**2*k**2 + NF*NIC*k**2`` and ``H*NC**2*W*k**2``.
:func:`humanize` lays the same expression out as a textbook does: common factors in front (k²,
H·W), terms grouped by the spatial factor they share, channel products in layer-flow order
(NIC, NF, NC) or in the order of the layers that produced them (``flow``), and exact floors kept
but simplified (``⌊⌊H/2⌋/2⌋ = ⌊H/4⌋``, ``⌊(H − 1)/2⌋ + 1 = ⌈H/2⌉``).  The layout is exact:
:meth:`Formula.sympy` rebuilds an expression equal to the input for every positive integer H, W.

>>> from analysis.symbols import NIC, NF, NC, k, H, W
>>> print(humanize(NC**2*k**2 + NC*NF*k**2 + 4*NF**2*k**2 + NF*NIC*k**2).text())
k²(NIC·NF + 4NF² + NF·NC + NC²)
>>> print(humanize(H*NC**2*W*k**2 + H*NF*NIC*W*k**2 / 4).text())
HW·k²(NIC·NF/4 + NC²)
>>> import sympy as sp
>>> print(humanize(2*NF*sp.floor(sp.floor(H/2)/2)*sp.floor(sp.floor(W/2)/2) + H*W*NC).text())
NC·HW + 2NF·⌊H/4⌋⌊W/4⌋
>>> print(text(NF*(sp.floor((H - 1) / 2) + 1)))
NF·⌈H/2⌉

Renderers: :meth:`Formula.text` (Unicode, for the CLI), :meth:`Formula.latex` (Markdown and
notebooks), :meth:`Formula.typst` (the PDF).  Expressions that depend on the parity of ``k``
(``floor(k/2)``) are split with :func:`parity_cases` into one formula for odd and one for even k.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

import sympy as sp

from analysis.symbols import H, NC, NF, NIC, W, k

from .typst_math import latex_math, to_sympy, typst_math

__all__ = ["Formula", "humanize", "normalize_floors", "parity_cases", "text", "latex", "typst", "display_latex",
           "display_typst", "case_text"]

#: Channel symbols in layer-flow order (input, filters, colours); other symbols follow alphabetically.
CHANNEL_ORDER = (NIC, NF, NC)
_SUP = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


# ---------------------------------------------------------------------- exact floor simplification

def _integer_valued(expr: sp.Basic) -> bool:
    """A polynomial with integer coefficients in integer symbols (and floors/ceilings)."""
    expr = sp.expand(expr)
    for term in sp.Add.make_args(expr):
        coeff, rest = term.as_coeff_Mul()
        if not (coeff.is_Integer or coeff == 0):
            return False
        for f in sp.Mul.make_args(rest):
            base = f.base if f.is_Pow and f.exp.is_Integer and f.exp > 0 else f
            if isinstance(base, (sp.floor, sp.ceiling)):
                continue
            if not (base.is_Symbol and base.is_integer) and not base.is_Integer:
                return False
    return True


def _simplify_floor(f: sp.Basic) -> sp.Basic:
    """One floor/ceiling, its argument already simplified: collapse a nested floor, prefer a ceiling."""
    arg = sp.together(sp.expand(f.args[0]))
    num, den = sp.fraction(arg)
    if not (den.is_Integer and den > 1):
        return f
    n = int(den)
    num = sp.expand(num)
    # floor((floor(x) + m)/n) = floor((x + m)/n), and the same for ceilings, for integer m and n > 0
    inner = [a for a in num.atoms(f.func) if num.coeff(a) == 1]
    if len(inner) == 1:
        (g,) = inner
        rest = sp.expand(num - g)
        if _integer_valued(rest) and not rest.has(g):
            return _simplify_floor(f.func((g.args[0] + rest) / n, evaluate=False))
    if isinstance(f, sp.floor):
        const = num.as_coeff_Add()[0]
        shifted = sp.expand(num - (n - 1))
        if const == n - 1 and _integer_valued(shifted):
            # floor((a + n - 1)/n) = ceil(a/n) for integer a
            return sp.ceiling(shifted / n)
    return f


def normalize_floors(expr: Any) -> sp.Basic:
    """Exact rewrites of floors for integer arguments: ``⌊⌊x⌋/n⌋ = ⌊x/n⌋``, ``⌊(a + n − 1)/n⌋ = ⌈a/n⌉``.

    >>> import sympy as sp
    >>> normalize_floors(sp.floor(sp.floor(H/2 - sp.Rational(1, 2))/2) + 1)
    ceiling(H/4)
    """
    expr = to_sympy(expr)
    if not expr.has(sp.floor, sp.ceiling):
        return expr

    def walk(e: sp.Basic) -> sp.Basic:
        if not e.args:
            return e
        args = [walk(a) for a in e.args]
        e = e.func(*args) if any(a is not b for a, b in zip(args, e.args)) else e
        if isinstance(e, (sp.floor, sp.ceiling)):
            return _simplify_floor(e)
        return e

    out = walk(expr)
    return _fold_constants(out)


def _fold_constants(expr: sp.Basic) -> sp.Basic:
    """``⌊x⌋ + m -> ⌊x + m⌋`` inside factored products (then simplified again)."""
    if expr.is_Add:
        floors = [a for a in expr.args if isinstance(a, (sp.floor, sp.ceiling))]
        rest = sp.Add(*[a for a in expr.args if not isinstance(a, (sp.floor, sp.ceiling))])
        if len(floors) == 1 and rest.is_Integer and rest != 0:
            f = floors[0]
            return _simplify_floor(f.func(f.args[0] + rest, evaluate=False))
        return expr
    if expr.is_Mul or expr.is_Pow:
        return expr.func(*[_fold_constants(a) for a in expr.args])
    return expr


_J = sp.Symbol("j", integer=True, nonnegative=True)


def parity_cases(expr: Any) -> list[tuple[str | None, sp.Basic]]:
    """``[(None, expr)]``, or ``[("k odd", e1), ("k even", e2)]`` when ``expr`` depends on the parity of k.

    >>> import sympy as sp
    >>> parity_cases(sp.floor(H/2 + k/2) - sp.floor(k/2))
    [('k odd', ceiling(H/2)), ('k even', floor(H/2))]
    """
    expr = to_sympy(expr)
    if not any(a.has(k) for a in expr.atoms(sp.floor, sp.ceiling, sp.Mod)):
        return [(None, expr)]
    out = []
    for label, value, back in (("k odd", 2 * _J + 1, (k - 1) / 2), ("k even", 2 * _J + 2, (k - 2) / 2)):
        e = sp.expand(expr.subs(k, value))
        e = sp.expand(e.subs(_J, back))
        out.append((label, normalize_floors(e)))
    if sp.expand(out[0][1] - out[1][1]) == 0:
        return [(None, out[0][1])]
    return out


# ---------------------------------------------------------------------- the layout tree

def _kind(base: sp.Basic) -> str:
    if base == k:
        return "kernel"
    if base.free_symbols & {H, W} or isinstance(base, (sp.floor, sp.ceiling)) or not base.is_Symbol:
        return "spatial"
    return "channel"


def _channel_key(sym: sp.Basic) -> tuple:
    if sym in CHANNEL_ORDER:
        return (0, CHANNEL_ORDER.index(sym), "")
    return (1, 0, str(sym))


def _spatial_key(base: sp.Basic) -> tuple:
    s = sp.sstr(base)
    axis = 0 if base.has(H) and not base.has(W) else 1 if base.has(W) else 2
    return (0 if base.is_Symbol else 1, s.replace("W", "H"), axis)


@dataclass(frozen=True)
class Factor:
    """``base ** exp`` (exp a positive integer); ``kind`` is channel, kernel or spatial."""

    base: sp.Basic
    exp: int
    kind: str

    def sympy(self) -> sp.Basic:
        return self.base ** self.exp


@dataclass(frozen=True)
class Term:
    """``coeff · factors · (group)``: one product of a sum."""

    coeff: sp.Rational
    factors: tuple[Factor, ...]
    group: "Formula | None" = None

    def sympy(self) -> sp.Basic:
        out = self.coeff * sp.Mul(*[f.sympy() for f in self.factors])
        return out * self.group.sympy() if self.group is not None else out


@dataclass(frozen=True)
class Formula:
    """A sum of :class:`Term` s laid out for reading; render with :meth:`text`, :meth:`latex`, :meth:`typst`."""

    terms: tuple[Term, ...]

    def sympy(self) -> sp.Basic:
        """The expression this layout shows (equal to the input of :func:`humanize`)."""
        return sp.Add(*[t.sympy() for t in self.terms])

    def text(self) -> str:
        return _render(self, _TEXT)

    def latex(self) -> str:
        return _render(self, _LATEX)

    def typst(self, *, inline: bool = True) -> str:
        return _render(self, _TYPST_INLINE if inline else _TYPST)

    def __str__(self) -> str:
        return self.text()

    def flat(self) -> "Formula":
        """A top-level single group without a factor in front, unwrapped: ``(a + b)`` -> ``a + b``."""
        if len(self.terms) == 1 and self.terms[0].group is not None and not self.terms[0].factors \
                and self.terms[0].coeff == 1:
            return self.terms[0].group.flat()
        return self

    def subs(self, values: Mapping[Any, Any]) -> "Formula":
        """Numbers for some symbols, keeping the layout: ``HW·k²(…)`` at H = W = 32 is ``1024k²(…)``.

        >>> print(humanize(H * W * k**2 * (NF + NC)).subs({H: 32, W: 32}).text())
        1024k²(NF + NC)
        """
        return Formula(tuple(_subs_term(t, values) for t in self.terms)).flat()


def _subs_term(t: "Term", values: Mapping[Any, Any]) -> "Term":
    coeff = t.coeff
    factors = []
    for f in t.factors:
        base = normalize_floors(sp.sympify(f.base).subs(values))
        if base.is_number:
            coeff = coeff * base ** f.exp
        else:
            factors.append(Factor(base, f.exp, _kind(base) if base.is_Symbol else f.kind))
    group = t.group.subs(values) if t.group is not None else None
    if group is not None and len(group.terms) == 1 and group.terms[0].group is None:
        g = group.terms[0]
        return Term(sp.Rational(coeff * g.coeff), _order(factors + list(g.factors)))
    if group is not None and coeff != 1 and any(not g.coeff.is_Integer for g in group.terms) \
            and all((coeff * g.coeff).is_Integer for g in group.terms):
        # 1024(25NF/16 + 5NC/4) -> 1600NF + 1280NC: the number goes inside when that clears the fractions
        group = Formula(tuple(Term(sp.Rational(coeff * g.coeff), g.factors, g.group) for g in group.terms))
        coeff = sp.Integer(1)
        if not factors:
            return Term(coeff, (), group)
    return Term(sp.Rational(coeff), _order(factors), group)


def _split(term: sp.Basic) -> tuple[sp.Rational, list[Factor]]:
    coeff, rest = term.as_coeff_Mul()
    factors = []
    for f in sp.Mul.make_args(rest):
        if f == 1:
            continue
        base, exp = (f.base, f.exp) if f.is_Pow and f.exp.is_Integer and f.exp > 0 else (f, sp.Integer(1))
        factors.append(Factor(base, int(exp), _kind(base)))
    return sp.Rational(coeff), factors


def _order(factors: Iterable[Factor]) -> tuple[Factor, ...]:
    fs = list(factors)
    chan = sorted((f for f in fs if f.kind == "channel"), key=lambda f: _channel_key(f.base))
    kern = [f for f in fs if f.kind == "kernel"]
    spat = sorted((f for f in fs if f.kind == "spatial"), key=lambda f: _spatial_key(f.base))
    return tuple(chan + spat + kern)


def _mono_key(factors: Sequence[Factor]) -> tuple:
    """Channel monomials in flow order: NIC·NF before NF² before NF·NC before NC²."""
    exps = {f.base: f.exp for f in factors if f.kind == "channel"}
    return tuple(-exps.get(s, 0) for s in CHANNEL_ORDER) + tuple(sorted((str(b), -e) for b, e in exps.items()
                                                                        if b not in CHANNEL_ORDER))


def _factor_spatial(expr: sp.Basic) -> list[tuple[sp.Rational, list[Factor]]]:
    """Terms of ``expr``, each channel/kernel monomial's spatial polynomial factored (``(⌊x⌋ + 1)(⌊y⌋ + 1)``)."""
    groups: dict[tuple, list[tuple[sp.Rational, list[Factor]]]] = {}
    order: list[tuple] = []
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, factors = _split(term)
        key = tuple(sorted(((sp.sstr(f.base), f.exp) for f in factors if f.kind != "spatial")))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((coeff, factors))
    out = []
    for key in order:
        items = groups[key]
        nonspatial = [f for f in items[0][1] if f.kind != "spatial"]
        spatial_sum = sp.Add(*[c * sp.Mul(*[f.sympy() for f in fs if f.kind == "spatial"]) for c, fs in items])
        if len(items) > 1 and spatial_sum.has(sp.floor, sp.ceiling):
            spatial_sum = sp.factor(spatial_sum)
        coeff, rest = spatial_sum.as_coeff_Mul()
        spatial = []
        for f in sp.Mul.make_args(rest):
            if f == 1:
                continue
            f = _fold_constants(f)
            base, exp = (f.base, f.exp) if f.is_Pow and f.exp.is_Integer and f.exp > 0 else (f, sp.Integer(1))
            if base.is_Add:  # a sum that did not factor: keep its terms separate
                spatial = None
                break
            spatial.append(Factor(base, int(exp), "spatial"))
        if spatial is None:
            out.extend((c, fs) for c, fs in items)
        else:
            out.append((sp.Rational(coeff), nonspatial + spatial))
    return out


def _common(terms: Sequence[tuple[sp.Rational, list[Factor]]], kind: str) -> list[Factor]:
    """Factors of ``kind`` shared by every term (with the smallest exponent)."""
    shared: dict[str, Factor] | None = None
    for _, fs in terms:
        mine = {sp.sstr(f.base): f for f in fs if f.kind == kind}
        if shared is None:
            shared = mine
        else:
            shared = {s: Factor(f.base, min(f.exp, mine[s].exp), kind) for s, f in shared.items() if s in mine}
    return list((shared or {}).values())


def _divide(fs: Sequence[Factor], common: Sequence[Factor]) -> list[Factor]:
    out = []
    for f in fs:
        c = next((c for c in common if c.base == f.base), None)
        e = f.exp - (c.exp if c else 0)
        if e:
            out.append(Factor(f.base, e, f.kind))
    return out


def _chan_sig(fs: Sequence[Factor]) -> tuple:
    return tuple(sorted((sp.sstr(f.base), f.exp) for f in fs if f.kind == "channel"))


def _spatial_sig(fs: Sequence[Factor]) -> str:
    return "·".join(sorted(f"{sp.sstr(f.base)}^{f.exp}" for f in fs if f.kind == "spatial"))


def _group_sig(fs: Sequence[Factor]) -> str:
    kern = sum(f.exp for f in fs if f.kind == "kernel")
    return f"{_spatial_sig(fs)}|k^{kern}"


def _spatial_size(fs: Sequence[Factor]) -> int:
    """The largest denominator of the spatial factors: H·W 1, ⌊H/2⌋ 2, ⌊H/4⌋ 4 (no spatial factor: 0)."""
    size = 0
    for f in fs:
        if f.kind != "spatial":
            continue
        if isinstance(f.base, (sp.floor, sp.ceiling)):
            den = sp.fraction(sp.together(f.base.args[0]))[1]
            size = max(size, int(den) if den.is_Integer else 1)
        else:
            size = max(size, 1)
    return size


@dataclass(frozen=True)
class _Flow:
    """What the per-layer expressions produce, in layer order: (channel, spatial) and spatial signatures."""

    terms: tuple[frozenset, ...]
    spatial: tuple[frozenset, ...]

    def rank(self, fs: Sequence[Factor]) -> int:
        key = (_chan_sig(fs), _spatial_sig(fs))
        for i, got in enumerate(self.terms):
            if key in got:
                return i
        chan = _chan_sig(fs)
        for i, got in enumerate(self.terms):
            if any(c == chan for c, _ in got):
                return i
        return len(self.terms)

    def spatial_rank(self, fs: Sequence[Factor]) -> int:
        sig = _spatial_sig(fs)
        for i, got in enumerate(self.spatial):
            if sig in got:
                return i
        return len(self.spatial) + _spatial_size(fs)


def _make_flow(flow: Sequence[Any] | None) -> _Flow | None:
    if not flow:
        return None
    terms, spatial = [], []
    for e in flow:
        items = _factor_spatial(normalize_floors(sp.expand(to_sympy(e)))) if e is not None else []
        terms.append(frozenset((_chan_sig(fs), _spatial_sig(fs)) for _, fs in items))
        spatial.append(frozenset(_spatial_sig(fs) for _, fs in items))
    return _Flow(tuple(terms), tuple(spatial))


def _term_rank(fs: Sequence[Factor], flow: _Flow | None) -> tuple:
    return ((flow.rank(fs) if flow else 0),) + _mono_key(fs)


def _group_rank(items: Sequence[tuple[sp.Rational, list[Factor]]], flow: _Flow | None) -> tuple:
    fs = items[0][1]
    spatial = flow.spatial_rank(fs) if flow else _spatial_size(fs)
    kern = -sum(f.exp for f in fs if f.kind == "kernel")
    return (spatial, kern, min(_term_rank(f, flow) for _, f in items))


def humanize(expr: Any, *, flow: Sequence[Any] | None = None) -> Formula:
    """Lay ``expr`` out as a person writes it (see the module docstring); exact.

    ``flow``: the per-layer expressions in layer order; terms then follow the first layer
    that produces them (``k²(NIC·NF + 4NF² + 2NF·NC + NC² + NIC·NC)`` for UNet).
    """
    rows = tuple(None if e is None else to_sympy(e) for e in flow) if flow else None
    return _humanize(to_sympy(expr), rows)


@lru_cache(maxsize=2048)
def _humanize(expr: Any, flow: tuple[Any, ...] | None) -> Formula:
    """:func:`humanize` on sympy arguments, memoised: a report lays the same totals out for Markdown,
    Typst and its answers."""
    expr = normalize_floors(sp.expand(expr))
    if expr.is_number:
        if expr.is_Rational:
            return Formula((Term(sp.Rational(expr), ()),))
        return Formula((Term(sp.Integer(1), (Factor(expr, 1, "spatial"),)),))
    rows = [e for e in flow or () if e is not None]
    if rows and sp.expand(normalize_floors(sp.expand(sp.Add(*rows))) - expr) == 0:
        terms = _merge([t for row in rows for t in _factor_spatial(normalize_floors(sp.expand(row)))])
    else:
        terms = _factor_spatial(expr)
    formula = _layout(terms, _make_flow(flow))
    return _content(formula)


def _content(formula: Formula) -> Formula:
    """``9NIC·NF + 36NF² -> 9(NIC·NF + 4NF²)``: a common integer factor of a top-level sum in front."""
    import math
    ts = formula.terms
    if len(ts) < 2 or not all(t.coeff.is_Integer for t in ts):
        return formula
    g = math.gcd(*(int(t.coeff) for t in ts))
    if g <= 1:
        return formula
    inner = Formula(tuple(Term(t.coeff / g, t.factors, t.group) for t in ts))
    return Formula((Term(sp.Integer(g), (), inner),))


def _merge(terms: Sequence[tuple[sp.Rational, list[Factor]]]) -> list[tuple[sp.Rational, list[Factor]]]:
    """Add up terms with the same factors (the layers' terms, in product form)."""
    out: dict[tuple, list] = {}
    for c, fs in terms:
        key = tuple(sorted((sp.sstr(f.base), f.exp) for f in fs))
        if key in out:
            out[key][0] += c
        else:
            out[key] = [c, fs]
    return [(sp.Rational(c), fs) for c, fs in out.values() if c != 0]


def _layout(terms: Sequence[tuple[sp.Rational, list[Factor]]], flow: _Flow | None) -> Formula:
    if len(terms) == 1:
        c, fs = terms[0]
        return Formula((Term(c, _order(fs)),))
    common = _common(terms, "spatial") + _common(terms, "kernel")
    if common:
        return Formula((_with_group(common, _layout([(c, _divide(fs, common)) for c, fs in terms], flow)),))
    groups: dict[str, list[tuple[sp.Rational, list[Factor]]]] = {}
    for c, fs in terms:
        groups.setdefault(_group_sig(fs), []).append((c, fs))
    if 1 < len(groups) < len(terms):
        out = []
        for items in sorted(groups.values(), key=lambda items: _group_rank(items, flow)):
            if len(items) == 1:
                c, fs = items[0]
                out.append(Term(c, _order(fs)))
                continue
            shared = _common(items, "spatial") + _common(items, "kernel")
            inner = _layout([(c, _divide(fs, shared)) for c, fs in items], flow)
            if shared:
                out.append(_with_group(shared, inner))
            else:
                out.extend(inner.terms)
        return Formula(tuple(out))
    ranked = sorted(terms, key=lambda t: (_group_rank([t], flow), _term_rank(t[1], flow)))
    return Formula(tuple(Term(c, _order(fs)) for c, fs in ranked))


def _with_group(common: Sequence[Factor], sub: Formula) -> Term:
    common = _order(common)
    if len(sub.terms) == 1:
        t = sub.terms[0]
        return Term(t.coeff, _order(list(t.factors) + list(common)), t.group)
    return Term(sp.Integer(1), common, sub)


# ---------------------------------------------------------------------- rendering

@dataclass(frozen=True)
class _Style:
    name: str
    mul: str          # between factors where a separator is needed
    tight: str        # between factors written side by side
    plus: str
    minus: str
    open: str
    close: str


_TEXT = _Style("text", "·", "", " + ", " − ", "(", ")")
_LATEX = _Style("latex", r" \cdot ", " ", " + ", " - ", r"\left(", r"\right)")
_TYPST = _Style("typst", " dot ", " ", " + ", " - ", " (", ")")
_TYPST_INLINE = _Style("typst-inline", " dot ", " ", " + ", " - ", " (", ")")


def _floor_text(f: sp.Basic) -> str:
    arg = sp.together(f.args[0])
    num, den = sp.fraction(arg)
    left, right = ("⌊", "⌋") if isinstance(f, sp.floor) else ("⌈", "⌉")
    num_s = _plain(num)
    if den == 1:
        return f"{left}{num_s}{right}"
    if not (num.is_Symbol or num.is_Integer or isinstance(num, (sp.floor, sp.ceiling))):
        num_s = f"({num_s})"
    return f"{left}{num_s}/{_plain(den)}{right}"


def _plain(e: sp.Basic) -> str:
    """Text of a small expression (floor arguments): ``H - 1``, ``2k``, ``⌊H/2⌋``."""
    if isinstance(e, (sp.floor, sp.ceiling)):
        return _floor_text(e)
    if e.is_Mul or e.is_Pow or e.is_Symbol:
        return humanize(e).text()
    return sp.sstr(e)


def _base(f: Factor, style: _Style) -> tuple[str, bool]:
    """(printed base, whether it is a multi-letter word needing a separator)."""
    b = f.base
    if style is _TEXT:
        if isinstance(b, (sp.floor, sp.ceiling)):
            return _floor_text(b), False
        if b.is_Symbol:
            return str(b), len(str(b)) > 1
        return f"({sp.sstr(b)})" if _needs_parens(b) else sp.sstr(b), True
    if style is _LATEX:
        s = latex_math(b)
        word = b.is_Symbol and len(str(b)) > 1
        return (rf"\left({s}\right)" if _needs_parens(b) else s), word
    s = typst_math(b, fractions="slash" if style is _TYPST_INLINE else "stack")
    word = b.is_Symbol and len(str(b)) > 1
    return (f"({s})" if _needs_parens(b) else s), word


def _needs_parens(b: sp.Basic) -> bool:
    """Sums and ``mod`` need parentheses as a factor; symbols and functions (floor, abs, max) do not."""
    return b.is_Add or isinstance(b, sp.Mod) or (b.is_Rational and not b.is_Integer)


def _power(base: str, exp: int, style: _Style) -> str:
    if exp == 1:
        return base
    if style is _TEXT:
        return base + str(exp).translate(_SUP)
    if style is _LATEX:
        return f"{base}^{{{exp}}}"
    return f"{base}^{exp}"


def _product(factors: Sequence[Factor], style: _Style) -> str:
    out = ""
    prev: Factor | None = None
    prev_word = False
    for f in factors:
        s, word = _base(f, style)
        s = _power(s, f.exp, style)
        if prev is not None:
            sep = style.mul if (word or prev_word or f.kind != prev.kind) else style.tight
            out += sep
        out += s
        prev, prev_word = f, word
    return out


def _term(t: Term, style: _Style) -> str:
    p, q = abs(t.coeff.p), t.coeff.q
    body = _product(t.factors, style)
    if t.group is not None:
        body += style.open + _render(t.group, style) + style.close
    if p != 1 or not body:
        body = f"{p}{'' if style is _TEXT else ' ' if body and style is not _LATEX else ''}{body}" if body \
            else str(p)
    if q == 1:
        return body
    if style is _TEXT:
        return f"{body}/{q}"
    if style is _LATEX:
        return rf"\frac{{{body}}}{{{q}}}"
    if style is _TYPST_INLINE:
        return f"{body} slash {q}" if " " not in body else f"({body}) slash {q}"
    return f"({body})/{q}"


def _render(formula: Formula, style: _Style) -> str:
    out = ""
    for i, t in enumerate(formula.terms):
        s = _term(t, style)
        if t.coeff < 0:
            out += ("-" if style is not _TEXT else "−") + s if i == 0 else style.minus + s
        else:
            out += s if i == 0 else style.plus + s
    return out


# ---------------------------------------------------------------------- one-call helpers

def layable(expr: Any) -> bool:
    """Whether :func:`humanize` lays ``expr`` out (sums of products); other objects (relations,
    ``Piecewise``, tuples, ``Max`` at the top) print with the plain printers of :mod:`reports.typst_math`."""
    if not isinstance(expr, sp.Expr) or isinstance(expr, (sp.Piecewise, sp.Max, sp.Min)) or expr.has(sp.Piecewise):
        return False
    return not any(isinstance(a, (sp.Float, sp.Sum, sp.Product, sp.Integral)) for a in sp.preorder_traversal(expr))


#: Integers longer than this are refused (printing them is quadratic); shorter ones print exactly.
MAX_DIGITS = 20_000


class _Digits:
    """Lift Python's int-to-str digit limit while printing (exact numbers), refusing absurd sizes."""

    def __init__(self, expr: sp.Basic) -> None:
        self.expr = expr

    def __enter__(self) -> None:
        import sys
        self.old = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
        for n in self.expr.atoms(sp.Integer, sp.Rational):
            bits = max(abs(int(sp.fraction(n)[0])).bit_length(), abs(int(sp.fraction(n)[1])).bit_length())
            if bits * 0.30103 > MAX_DIGITS:
                from analysis.errors import ArchcountError
                raise ArchcountError(f"a number with about {int(bits * 0.30103):,} digits is too long to print "
                                     f"(at most {MAX_DIGITS:,})", argument="expr")
        if self.old is not None:
            sys.set_int_max_str_digits(0)

    def __exit__(self, *exc: Any) -> None:
        import sys
        if self.old is not None:
            sys.set_int_max_str_digits(self.old)


def _cases(expr: Any, flow: Sequence[Any] | None, render: Any, join: str, plain: Any = None,
           label_fmt: str = " ({})") -> str:
    if isinstance(expr, Formula):  # laid out already (one parity case, numbers substituted...)
        return render(expr)
    expr = to_sympy(expr)
    with _Digits(expr):
        return _cases_inner(expr, flow, render, join, plain, label_fmt)


def _cases_inner(expr: sp.Basic, flow: Sequence[Any] | None, render: Any, join: str, plain: Any,
                 label_fmt: str) -> str:
    if not layable(expr):
        return plain(expr)
    parts = parity_cases(expr)
    if len(parts) == 1:
        return render(humanize(parts[0][1], flow=flow))
    return join.join(render(humanize(e, flow=flow)) + label_fmt.format(label) for label, e in parts)


def text(expr: Any, *, flow: Sequence[Any] | None = None) -> str:
    """Unicode text of ``expr`` laid out by :func:`humanize` (odd/even k cases joined by ``;``)."""
    return _cases(expr, flow, Formula.text, "; ", sp.sstr)


def case_text(expr: Any, *, flow: Sequence[Any] | None = None) -> list[tuple[str | None, str]]:
    """``[(case label or None, text)]``."""
    expr = to_sympy(expr)
    if not layable(expr):
        return [(None, sp.sstr(expr))]
    return [(label, humanize(e, flow=flow).text()) for label, e in parity_cases(expr)]


def latex(expr: Any, *, flow: Sequence[Any] | None = None) -> str:
    """LaTeX (no ``$``) of ``expr`` laid out by :func:`humanize`."""
    return _cases(expr, flow, Formula.latex, r"; \quad ", latex_math, r" \text{{ ({})}}")


def display_latex(expr: Any, *, flow: Sequence[Any] | None = None) -> str:
    """LaTeX for display math: odd/even k cases as a ``cases`` environment."""
    if isinstance(expr, Formula):
        return expr.latex()
    expr = to_sympy(expr)
    if not layable(expr):
        return latex_math(expr)
    parts = parity_cases(expr)
    if len(parts) == 1:
        return humanize(parts[0][1], flow=flow).latex()
    rows = r" \\ ".join(f"{humanize(e, flow=flow).latex()} & \\text{{{label}}}" for label, e in parts)
    return r"\begin{cases} " + rows + r" \end{cases}"


def typst(expr: Any, *, flow: Sequence[Any] | None = None) -> str:
    """Inline Typst math source (no ``$``) of ``expr``."""
    return _cases(expr, flow, lambda f: f.typst(inline=True), ' ";" quad ',
                  lambda e: typst_math(e, fractions="slash"), ' "({})"')


def display_typst(expr: Any, *, flow: Sequence[Any] | None = None) -> str:
    """Display Typst math source: odd/even k cases as ``cases(...)``."""
    if isinstance(expr, Formula):
        return expr.typst(inline=False)
    expr = to_sympy(expr)
    if not layable(expr):
        return typst_math(expr)
    parts = parity_cases(expr)
    if len(parts) == 1:
        return humanize(parts[0][1], flow=flow).typst(inline=False)
    rows = ", ".join(f'{humanize(e, flow=flow).typst(inline=False)} & "{label}"' for label, e in parts)
    return f"cases({rows})"
