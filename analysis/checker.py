"""Check hand-written answers: count formulas, output shapes, paddings and scaling claims.

A grader needs more than "wrong": :func:`check` says under which counting conventions a formula
is exactly right, and otherwise which convention is closest, what the difference is (as a
formula and per term), and which layers' terms account for it.

>>> from analysis.checker import check
>>> from analysis.symbols import NIC, NF, NC, k
>>> r = check(k**2 * (NIC*NF + 4*NF**2 + NF*NC + NC**2), "pool_upsample", "weights")
>>> r.ok, r.matches[:2]
(True, ('weighted', 'all-layers'))
>>> r = check(9*NIC*NF + 18*NF**2 + 9*NF*NC + 9*NC**2, "pool_upsample", "weights")
>>> r.ok, r.assumptions[0].startswith("the formula has no k")
(False, True)
>>> for line in r.explanations: print(line)
missing the weights of block2.0 (2nd of 5 Conv2d) (18*NF^2)
or: missing the weights of block3.0 (3rd of 5 Conv2d) (18*NF^2)
the NF^2 term is 18, expected 36, half the expected (from block2.0: 18*NF^2, block3.0: 18*NF^2)

Shapes, paddings and "doubling" claims have their own checks:

>>> check_shape("16x513x385", "conv k=5 s=2 p=1 out=16", "3x1024x768").mistakes[0]
'kernel term missing: out = (n + 2p)/s, without the -k and the +1'
>>> check_padding("p=2", 4, stride=2).ok
False
>>> check_scaled("4x", "unet", "weights", kernel=3).explanations[0]
'weights do not depend on the input size: the ratio is 1, not 4'

String formulas are read by :func:`analysis.parsing.parse_formula` (safe: never ``eval``).
"""
from __future__ import annotations

import functools
import itertools
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Sequence

import sympy as sp

from .conventions import PRESETS, Convention, all_conventions, get_convention
from .errors import ArchcountError
from .symbols import ALIASES, HPARAM_SYMBOLS, NC, NF, NIC, STANDARD, H, W, k

QUANTITIES = ("weights", "outputs", "connections")
_Q_ALIASES = {"weight": "weights", "params": "weights", "parameters": "weights", "output": "outputs",
              "units": "outputs", "connection": "connections", "macs": "connections"}
#: switches that can change each quantity (for describing conventions briefly)
RELEVANT_SWITCHES = {"weights": ("bias", "batchnorm"),
                     "outputs": ("pooling", "batchnorm"),
                     "connections": ("pooling", "batchnorm", "padding_taps", "transposed")}
_HPARAM_ALIASES = {"k": "kernel", "K": "kernel", "kernel_size": "kernel",
                   "NIC": "num_in_channels", "nic": "num_in_channels", "N_IC": "num_in_channels",
                   "NF": "num_filters", "nf": "num_filters", "N_F": "num_filters",
                   "NC": "num_colours", "nc": "num_colours", "N_C": "num_colours", "num_colors": "num_colours"}
_SYMBOL_HPARAM = {sym: name for name, sym in HPARAM_SYMBOLS.items()}
_CHANNELS = (NIC, NF, NC)
_ORDER = {s: i for i, s in enumerate(STANDARD)}


# =============================================================================================== helpers

def _quantity(quantity: str) -> str:
    if not isinstance(quantity, str):
        raise ArchcountError(f"must be weights, outputs or connections, got {quantity!r}", argument="quantity")
    q = quantity.strip().lower()
    q = _Q_ALIASES.get(q, q)
    if q not in QUANTITIES:
        raise ArchcountError(f"unknown quantity {quantity!r}; valid: weights, outputs, connections",
                             argument="quantity")
    return q


def _convention(convention: Any, switches: Any = None) -> Convention | None:
    """None, a Convention, a preset name, or a label such as ``weighted[padding_taps=exclude]``."""
    if convention is None and not switches:
        return None
    if isinstance(convention, str) and "[" in convention:
        name, _, rest = convention.partition("[")
        if not rest.endswith("]"):
            raise ArchcountError(f"cannot read convention {convention!r}; write e.g. weighted[bias=true]",
                                 argument="convention")
        extra = [p for p in rest[:-1].split(",") if p.strip()]
        return get_convention(name, list(extra) + list(_as_list(switches)))
    return get_convention(convention or "weighted", switches)


def _as_list(switches: Any) -> list[str]:
    if not switches:
        return []
    if isinstance(switches, Mapping):
        return [f"{key}={v}" for key, v in switches.items()]
    if isinstance(switches, str):
        return [switches]
    return list(switches)


def _hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in hparams.items():
        key = _HPARAM_ALIASES.get(name, name)
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArchcountError(f"must be an integer, got {value!r}", argument=name)
        if key in out and out[key] != value:
            raise ArchcountError(f"given twice with different values ({out[key]} and {value})", argument=key)
        out[key] = value
    return out


def _sizes(input_size: Any) -> tuple[int, int] | None:
    """None, N, (H, W), "32" or "32x48"."""
    if input_size is None:
        return None
    if isinstance(input_size, str):
        parts = [p.strip() for p in re.split(r"[x×X,]", input_size.strip())]
        if not all(re.fullmatch(r"\d+", p) for p in parts) or len(parts) not in (1, 2):
            raise ArchcountError(f"expected N or HxW, got {input_size!r}", argument="input_size")
        input_size = tuple(int(p) for p in parts)
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    try:
        values = tuple(input_size)
    except TypeError:
        raise ArchcountError(f"expected N or (H, W), got {input_size!r}", argument="input_size") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ArchcountError(f"expected positive N or (H, W), got {input_size!r}", argument="input_size")
    return (values[0], values[1])


def _read_formula(formula: Any, extra: Mapping[str, sp.Symbol] | None = None,
                  argument: str = "formula") -> tuple[str, sp.Expr]:
    """The formula as written and as a sympy expression over the standard symbols."""
    if isinstance(formula, bool):
        raise ArchcountError(f"expected a formula, got {formula!r}", argument=argument)
    if isinstance(formula, int):
        return str(formula), sp.Integer(formula)
    if isinstance(formula, Fraction):
        return str(formula), sp.Rational(formula.numerator, formula.denominator)
    if isinstance(formula, float):
        if not math.isfinite(formula):
            raise ArchcountError(f"not a finite number: {formula!r}", argument=argument)
        return repr(formula), sp.Rational(Fraction(formula).limit_denominator(10**9))
    if isinstance(formula, sp.Basic):
        text, expr = sp.sstr(formula), formula
    elif isinstance(formula, str):
        text = formula
        try:
            from .parsing import parse_formula
        except ImportError as exc:  # pragma: no cover - parsing lands separately
            raise ArchcountError("formula text cannot be read: analysis.parsing is not available "
                                 f"({exc}); pass a sympy expression", argument=argument) from None
        try:
            expr = parse_formula(formula, symbols=dict(extra) if extra else None)
        except ArchcountError as exc:
            raise exc.with_context(argument=argument) from None
        except (RecursionError, MemoryError, OverflowError) as exc:
            raise ArchcountError(f"formula too large or too deeply nested ({type(exc).__name__})",
                                 argument=argument) from None
    else:
        raise ArchcountError(f"expected a formula (text or sympy expression), got {type(formula).__name__}",
                             argument=argument)
    return text, _standardize(expr, extra, argument)


_ALLOWED_FUNCS = (sp.floor, sp.ceiling, sp.Mod, sp.Min, sp.Max)
_ROUNDING = (sp.floor, sp.ceiling, sp.Mod, sp.Min, sp.Max)


def _has_rounding(expr: Any) -> bool:
    return isinstance(expr, sp.Basic) and any(expr.has(f) for f in _ROUNDING)


def _standardize(expr: Any, extra: Mapping[str, sp.Symbol] | None, argument: str) -> sp.Expr:
    expr = sp.sympify(expr) if not isinstance(expr, sp.Basic) else expr
    if not isinstance(expr, sp.Expr):
        raise ArchcountError(f"expected an arithmetic formula, got {type(expr).__name__}", argument=argument)
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise ArchcountError("the formula is not finite (division by zero?)", argument=argument)
    known = dict(ALIASES)
    known.update(extra or {})
    subs = {}
    for sym in expr.free_symbols:
        target = known.get(sym.name)
        if target is None:
            raise ArchcountError(f"unknown symbol {sym.name!r}; known: NIC, NF, NC, k, H, W"
                                 + (", " + ", ".join(sorted(extra)) if extra else ""), argument=argument)
        if target is not sym:
            subs[sym] = target
    if subs:
        expr = expr.xreplace(subs)
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Function, sp.Min, sp.Max)) and not isinstance(node, _ALLOWED_FUNCS):
            raise ArchcountError(f"function {type(node).__name__} is not allowed in a count formula "
                                 f"(only floor, ceiling, mod, min, max)", argument=argument)
        if isinstance(node, sp.Float):
            expr = sp.nsimplify(expr, rational=True)
            break
    return expr


def _terms(expr: Any) -> dict[sp.Expr, sp.Expr]:
    """{monomial: coefficient} of the expanded expression (the monomial ``1`` for constants)."""
    e = sp.expand(sp.sympify(expr))
    if e == 0:
        return {}
    return {m: c for m, c in e.as_coefficients_dict().items() if c != 0}


def _mono_key(m: sp.Expr) -> tuple:
    powers = m.as_powers_dict() if m != 1 else {}
    degree = sum(int(e) for b, e in powers.items() if b.is_Symbol and e.is_Integer)
    return (-degree, [(_ORDER.get(b, 99), str(b), -int(e) if e.is_Integer else 0) for b, e in sorted(
        powers.items(), key=lambda be: (_ORDER.get(be[0], 99), str(be[0])))])


def mono_str(m: sp.Expr) -> str:
    """A monomial in the order NIC, NF, NC, k, H, W: ``NF*NC*k^2``; ``1`` for the constant."""
    if m == 1:
        return "1"
    parts = []
    for base, e in sorted(m.as_powers_dict().items(), key=lambda be: (_ORDER.get(be[0], 99), str(be[0]))):
        b = sp.sstr(base)
        if not (base.is_Symbol or base.is_Function):
            b = f"({b})"
        parts.append(b if e == 1 else f"{b}^{sp.sstr(e)}")
    return "*".join(parts)


def _coef_str(c: Any) -> str:
    return sp.sstr(c)


def formula_str(expr: Any) -> str:
    """A polynomial written term by term, highest degree first: ``9*NIC*NF + 36*NF^2 - 2*NC``."""
    if isinstance(expr, (int, Fraction)):
        expr = sp.Rational(expr)
    if not isinstance(expr, sp.Basic):
        return str(expr)
    terms = _terms(expr)
    if not terms:
        return "0"
    pieces = []
    for m in sorted(terms, key=_mono_key):
        c = terms[m]
        sign = "-" if c < 0 else "+"
        a = -c if c < 0 else c
        if m == 1:
            body = _coef_str(a)
        elif a == 1:
            body = mono_str(m)
        elif a.is_Integer:
            body = f"{_coef_str(a)}*{mono_str(m)}"
        else:
            p, q = sp.fraction(a)
            body = (mono_str(m) if p == 1 else f"{p}*{mono_str(m)}") + f"/{q}"
        pieces.append((sign, body))
    out = ("-" if pieces[0][0] == "-" else "") + pieces[0][1]
    for sign, body in pieces[1:]:
        out += f" {sign} {body}"
    return out


# -------------------------------------------------------------------- fingerprints (fast identity tests)

_PRIMES = (3, 7, 11, 5, 64 * 13, 64 * 17), (2, 13, 5, 9, 64 * 19, 64 * 23), (5, 3, 17, 3, 64 * 29, 64 * 31)
_EXTRA_VALUES = (19, 23, 29, 31, 37, 41, 43, 47)


def _points(symbols: Iterable[sp.Symbol]) -> list[dict[sp.Symbol, sp.Integer]]:
    extra = sorted((s for s in symbols if s not in _ORDER), key=str)
    pts = []
    for j, values in enumerate(_PRIMES):
        pt = {s: sp.Integer(v) for s, v in zip(STANDARD, values)}
        for i, s in enumerate(extra):
            pt[s] = sp.Integer(_EXTRA_VALUES[(i + 3 * j) % len(_EXTRA_VALUES)])
        pts.append(pt)
    return pts


class _Fingerprinter:
    """Values of expressions at a few integer points: equal polynomials have equal fingerprints.

    H and W are multiples of 64 there, so the floors of the exact tables agree with the simplified ones.
    """

    def __init__(self, symbols: Iterable[sp.Symbol] = ()) -> None:
        self.points = _points(symbols)
        self.cache: dict[Any, tuple[Fraction, ...]] = {}

    def __call__(self, expr: Any) -> tuple[Fraction, ...]:
        if isinstance(expr, int):
            return (Fraction(expr),) * len(self.points)
        try:
            return self.cache[expr]
        except (KeyError, TypeError):
            pass
        out = []
        for pt in self.points:
            free = expr.free_symbols - set(pt)
            if free:
                self.points = _points(set(pt) | free)
                return self(expr)
            v = sp.sympify(expr).xreplace(pt)
            if not v.is_Rational:
                v = sp.nsimplify(sp.simplify(v))
            if not v.is_Rational:
                raise ArchcountError(f"cannot evaluate {sp.sstr(expr)} to a number", argument="formula")
            out.append(Fraction(int(v.p), int(v.q)))
        fp = tuple(out)
        try:
            self.cache[expr] = fp
        except TypeError:  # pragma: no cover
            pass
        return fp


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def _is_zero(fp: tuple) -> bool:
    return all(x == 0 for x in fp)


# ================================================================================ count tables (cached)

@dataclass
class _Context:
    """The exact and simplified tables of one model at one (hparams, size), with per-convention totals."""

    model: str
    exact: Any
    simple: Any
    multiple: int           #: the simplification multiple (1: nothing simplified)
    rule_multiple: int      #: the model's own input rule (multiple of)
    numeric_size: bool
    defaults: Mapping[str, Any]
    default_size: tuple[int, int]
    valid_size: Callable[[int], bool]
    fp: _Fingerprinter
    totals: dict = field(default_factory=dict)

    def conventions(self, q: str) -> list[tuple[Convention, Any, Any, str | None]]:
        """(convention, exact total, simplified total, why unavailable) for the 72 conventions."""
        if q not in self.totals:
            rows = []
            for conv in all_conventions():
                try:
                    exact = self.exact.under(conv).total(q)
                    simple = exact if self.simple is self.exact else self.simple.under(conv).total(q)
                    rows.append((conv, exact, simple, None))
                except ArchcountError as exc:
                    rows.append((conv, None, None, exc.reason))
            self.totals[q] = rows
        return self.totals[q]


def _model_info(model: Any) -> tuple[str, Mapping[str, Any], tuple[int, int], Callable[[int], bool], int]:
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        return (model, dict(spec.defaults), tuple(spec.fixed_size or (32, 32)), spec.valid_size,
                spec.size_multiple)
    name = getattr(model, "model", None) or getattr(model, "__name__", None) or type(model).__name__
    return (str(name), {}, (32, 32), lambda s: s >= 1, 1)


@functools.lru_cache(maxsize=32)
def _cached_context(model: str, hp: tuple, sizes: tuple | None) -> _Context:
    return _build_context(model, dict(hp), sizes)


def _build_context(model: Any, hp: dict[str, Any], sizes: tuple | None) -> _Context:
    from .table import CountTable
    name, defaults, default_size, valid, rule = _model_info(model)
    if isinstance(model, CountTable):
        table = model
        values = {_SYMBOL_HPARAM_NAME.get(key, key): v for key, v in hp.items()}
        if sizes is not None:
            values.update(H=sizes[0], W=sizes[1])
        if values:
            table = table.substitute(**values)
    else:
        from .counting import count
        table = count(model, input_size=sizes if sizes is not None else (H, W), **hp)
    from .simplify import auto_multiple
    multiple = 1 if sizes is not None else auto_multiple(table)
    simple = table.simplified(multiple) if multiple > 1 else table
    syms = set(getattr(table, "symbols", {}).values())
    return _Context(name, table, simple, multiple, rule, sizes is not None, defaults, default_size, valid,
                    _Fingerprinter(syms))


_SYMBOL_HPARAM_NAME = {"kernel": "k", "num_in_channels": "NIC", "num_filters": "NF", "num_colours": "NC"}


def _context(model: Any, hp: dict[str, Any], sizes: tuple | None) -> _Context:
    if isinstance(model, str):
        try:
            return _cached_context(model, tuple(sorted(hp.items())), sizes)
        except TypeError:  # unhashable hparam values
            pass
    return _build_context(model, hp, sizes)


# ======================================================================================= result types

@dataclass(frozen=True)
class TermRow:
    """One monomial: its expected and given coefficients and the layers that contribute it."""

    term: str
    expected: Any
    given: Any
    layers: tuple[str, ...] = ()

    @property
    def differs(self) -> bool:
        return sp.sympify(self.expected) != sp.sympify(self.given)

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "expected": _j(self.expected), "given": _j(self.given),
                "differs": self.differs, "layers": list(self.layers)}


def _j(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str, float)):
        return v
    if isinstance(v, Fraction):
        return int(v) if v.denominator == 1 else str(v)
    if isinstance(v, sp.Basic):
        if v.is_Integer:
            return int(v)
        return formula_str(v) if not v.is_number else sp.sstr(v)
    if isinstance(v, (tuple, list)):
        return [_j(x) for x in v]
    return str(v)


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one formula for one quantity of one model.

    ``ok`` is True when the formula is exactly right under the requested convention (or, with no
    convention requested, under one of the presets).  ``matches`` lists every convention (presets
    first) under which it is right; ``reference`` is the convention the difference, the per-term
    table and the explanations refer to (the closest one when none matches).
    """

    formula: str
    model: str
    quantity: str
    requested: str | None             #: the convention asked for (None: any preset)
    ok: bool
    verdict: str
    given: Any                        #: the formula as compared (after substituting fixed values)
    expected: Any                     #: under ``reference``
    reference: str                    #: convention label of ``expected``
    matches: tuple[str, ...] = ()
    condition: str = ""               #: e.g. "for H, W multiples of 4"
    closest: str | None = None        #: when nothing matches
    difference: Any = 0               #: given - expected (under ``reference``)
    terms: tuple[TermRow, ...] = ()
    explanations: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()      #: layers whose terms account for the difference
    assumptions: tuple[str, ...] = ()
    hparams: Mapping[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None

    kind = "formula"

    @property
    def explanation(self) -> str:
        """The explanations in one line."""
        return "; ".join(self.explanations)

    def table(self) -> str:
        """The per-term table (expected against given coefficients) as fixed-width text."""
        if not self.terms:
            return "(no terms)"
        head = ("term", f"expected ({self.reference})", "given", "", "from layers")
        rows = [(t.term, _coef_str(t.expected), _coef_str(t.given), "x" if t.differs else "",
                 ", ".join(t.layers)) for t in self.terms]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])

    def explain(self) -> str:
        """Everything, for the terminal or an assertion message."""
        size = "H x W" if self.input_size is None else f"{self.input_size[0]}x{self.input_size[1]}"
        hp = ", ".join(f"{key}={v}" for key, v in self.hparams.items())
        lines = [f"check {self.model} {self.quantity} (input {size}{', ' + hp if hp else ''}): {self.formula}",
                 f"verdict: {self.verdict}"]
        if self.matches:
            lines.append(f"right under: {summarize_matches(self.matches, self.quantity)}"
                         + (f" ({self.condition})" if self.condition else ""))
        lines.append(f"expected ({self.reference}): {formula_str(self.expected)}")
        if self.difference != 0:
            lines.append(f"given:    {formula_str(self.given)}")
            lines.append(f"difference (given - expected): {formula_str(self.difference)}")
        if self.explanations:
            lines.append("explanation:")
            lines += [f"  - {e}" for e in self.explanations]
        if self.difference != 0 and self.terms:
            lines.append("per-term table:")
            lines += ["  " + line for line in self.table().splitlines()]
        if self.assumptions:
            lines.append("assumptions: " + "; ".join(self.assumptions))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "formula": self.formula, "model": self.model, "quantity": self.quantity,
                "requested": self.requested, "ok": self.ok, "verdict": self.verdict,
                "given": _j(self.given), "expected": _j(self.expected), "reference": self.reference,
                "matches": list(self.matches), "condition": self.condition, "closest": self.closest,
                "difference": _j(self.difference), "terms": [t.to_dict() for t in self.terms],
                "explanations": list(self.explanations), "layers": list(self.layers),
                "assumptions": list(self.assumptions), "hparams": {key: _j(v) for key, v in self.hparams.items()},
                "input_size": list(self.input_size) if self.input_size else None}


# ====================================================================================== attribution

class _Lazy:
    """Text built only when shown (formatting every candidate formula would dominate the run time)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], str]) -> None:
        self.fn = fn

    def __str__(self) -> str:
        return self.fn()


def _instead(new: Any, old: Any, extra: str = "") -> _Lazy:
    return _Lazy(lambda: f"{formula_str(new)} instead of {formula_str(old)}" + extra)


@dataclass(frozen=True)
class _Item:
    delta: Any          #: what the given formula adds relative to the expected one, if this item is at fault
    path: str
    label: str          #: "block4.0 (2nd ConvTranspose2d)"
    detail: Any = ""    #: e.g. "NF^2*k^2 instead of NC*NF*k^2" (str or _Lazy)


@dataclass
class _Family:
    key: str
    rank: int                           #: lower: preferred
    items: list[_Item]
    phrase: Callable[[list[_Item], bool], str]
    component: bool = False             #: may be combined with another component family
    allow_full: bool = True             #: False: the whole family (or most of it) at once is no explanation


@dataclass(frozen=True)
class _Explained:
    texts: tuple[str, ...]
    layers: tuple[str, ...]
    score: tuple


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _labels(rows: Sequence[Any]) -> dict[str, str]:
    by_type: dict[str, list[str]] = {}
    for r in rows:
        by_type.setdefault(r.type, []).append(r.path)
    out = {}
    for r in rows:
        same = by_type[r.type]
        if len(same) == 1:
            out[r.path] = f"{r.path} ({r.type})"
        else:
            out[r.path] = f"{r.path} ({_ordinal(same.index(r.path) + 1)} of {len(same)} {r.type})"
    return out


def _which(items: list[_Item], full: bool, noun: str) -> str:
    paths = ", ".join(i.path for i in items)
    if full and len(items) > 1:
        return f"all {noun} ({paths})"
    if len(items) == 1:
        return items[0].label
    return paths


def _sum(items: Iterable[_Item]) -> Any:
    return sp.expand(sum((i.delta for i in items), sp.Integer(0)))


def _is_pool(row: Any) -> bool:
    return "pool" in row.type.lower()


def _families(ref: Any, q: str, conv: Convention, ctx: _Context, expected: Any) -> list[_Family]:
    """Every kind of mistake archcount can name, as families of per-layer deltas."""
    rows = list(ref.rows)
    labels = _labels(rows)
    fams: list[_Family] = []
    weight_rows = [r for r in rows if r.category in ("conv", "linear", "transposed")]
    conv_noun = "conv layers" if all(r.category in ("conv", "transposed") for r in weight_rows) else "weight layers"

    def fam(key: str, rank: int, items: list[_Item], phrase: Callable[[list[_Item], bool], str],
            component: bool = False, allow_full: bool = True) -> None:
        items = [i for i in items if i.delta != 0]
        if items:
            fams.append(_Family(key, rank, items, phrase, component, allow_full))

    def item(r: Any, delta: Any, detail: Any = "") -> _Item:
        return _Item(sp.expand(sp.sympify(delta)), r.path, labels[r.path], detail)

    def signed(items: list[_Item]) -> str:
        s = _sum(items)
        return formula_str(-s if _terms(s) and all(c < 0 for c in _terms(s).values()) else s)

    # ---- whole layers missing / counted twice (any quantity)
    counted = [r for r in rows if r.value(q) != 0]
    # (all of them at once is no explanation: the whole formula missing, or doubled, which "scaled-2" names)
    fam("layer-missing", 30, [item(r, -r.value(q)) for r in counted],
        lambda its, full: f"missing the {q} of {_which(its, full, 'counted layers')} ({signed(its)})", True, False)
    fam("layer-twice", 40, [item(r, r.value(q)) for r in counted],
        lambda its, full: f"counts the {q} of {_which(its, full, 'counted layers')} twice ({signed(its)})",
        False, False)

    if q == "weights":
        if conv.bias:
            fam("bias", 10, [item(r, -r.counts.bias) for r in weight_rows],
                lambda its, full: f"missing the biases of {_which(its, full, conv_noun)} ({signed(its)})", True)
            fam("bias-twice", 25, [item(r, r.counts.bias) for r in weight_rows],
                lambda its, full: f"counts the biases of {_which(its, full, conv_noun)} twice ({signed(its)})", True)
        else:
            fam("bias", 10, [item(r, r.counts.bias) for r in weight_rows],
                lambda its, full: f"includes the biases of {_which(its, full, conv_noun)} ({signed(its)}); "
                                  f"{conv.label} counts no biases", True)
        norm = [r for r in rows if r.category == "norm"]
        if conv.batchnorm == "ignore":
            fam("affine", 11, [item(r, r.counts.affine) for r in norm],
                lambda its, full: f"BatchNorm affine weights included ({_which(its, full, 'BatchNorm layers')}: "
                                  f"{signed(its)}); {conv.label} ignores BatchNorm", True)
        else:
            fam("affine", 11, [item(r, -r.counts.affine) for r in norm],
                lambda its, full: f"missing the BatchNorm affine weights of {_which(its, full, 'BatchNorm layers')} "
                                  f"({signed(its)})", True)
            fam("affine-twice", 26, [item(r, r.counts.affine) for r in norm],
                lambda its, full: f"counts the BatchNorm affine weights of {_which(its, full, 'BatchNorm layers')} "
                                  f"twice ({signed(its)})", True)
    if q in ("outputs", "connections"):
        res = [r for r in rows if r.category == "resample"]
        for kind, members in (("pooling", [r for r in res if _is_pool(r)]),
                              ("upsampling", [r for r in res if not _is_pool(r)])):
            if conv.pooling:
                deltas = [item(r, -r.value(q)) for r in members]
                verb = "omitted"
            else:
                deltas = []
                for r in members:
                    v = r.counts.outputs if q == "outputs" else r.counts.connections.get(conv.padding_taps)
                    if v is not None:
                        deltas.append(item(r, v))
                verb = "included"
            fam(f"{kind}-{q}", 12, deltas,
                lambda its, full, kind=kind, verb=verb:
                f"{kind} {q} {verb} ({_which(its, full, kind + ' layers')}: {signed(its)}); "
                f"{conv.label} {'counts' if conv.pooling else 'does not count'} pooling/upsampling layers", True)
        norm = [r for r in rows if r.category == "norm"]
        if conv.batchnorm == "layer":
            fam(f"norm-{q}", 13, [item(r, -r.value(q)) for r in norm],
                lambda its, full: f"BatchNorm {q} omitted ({_which(its, full, 'BatchNorm layers')}: {signed(its)})",
                True)
        else:
            vals = []
            for r in norm:
                v = r.counts.outputs if q == "outputs" else r.counts.connections.get("include", r.counts.outputs)
                vals.append(item(r, v))
            fam(f"norm-{q}", 13, vals,
                lambda its, full: f"BatchNorm {q} counted ({_which(its, full, 'BatchNorm layers')}: {signed(its)}); "
                                  f"{conv.label} does not count BatchNorm as a layer", True)
        if q == "outputs":
            act = [r for r in rows if r.category == "elementwise" and r.counts.outputs]
            fam("activation-outputs", 14, [item(r, r.counts.outputs) for r in act],
                lambda its, full: f"activation outputs counted as units ({_which(its, full, 'activation layers')}: "
                                  f"{signed(its)})", True)
            cat = [r for r in rows if r.category == "structural" and r.counts.outputs]
            fam("concat-outputs", 15, [item(r, r.counts.outputs) for r in cat],
                lambda its, full: f"concatenation outputs counted ({_which(its, full, 'concatenations')}: "
                                  f"{signed(its)})", True)
            inp = sp.Mul(*[sp.sympify(s) for s in ref.input_shape])
            fams.append(_Family("input-units", 16, [_Item(sp.expand(inp), "input", "the input", "")],
                                lambda its, full: f"the input units ({formula_str(its[0].delta)}) counted as outputs",
                                True))
        else:
            with_bias = [r for r in weight_rows if r.counts.bias != 0]
            fam("bias-connections", 16, [item(r, r.counts.outputs) for r in with_bias],
                lambda its, full: f"one bias connection per output counted for {_which(its, full, conv_noun)} "
                                  f"({signed(its)})", True)
            names = {"include": "padding taps included", "exclude": "padding taps excluded (exact count)",
                     "scatter": "counted input-based (scatter)", "exact": "counted exactly (pairs surviving the crop)",
                     "gather": "counted output-based (gather, inserted zeros included)"}
            for r_cat, current, alts in (("conv", conv.padding_taps, ("include", "exclude")),
                                         ("linear", conv.padding_taps, ()),
                                         ("transposed", conv.transposed, ("scatter", "exact", "gather"))):
                for alt in alts:
                    if alt == current:
                        continue
                    members = []
                    for r in weight_rows:
                        if r.category != r_cat:
                            continue
                        other = r.counts.connections.get(alt)
                        if other is not None:
                            members.append(item(r, sp.sympify(other) - r.connections))
                    fam(f"switch-{alt}", 17, members,
                        lambda its, full, alt=alt, current=current:
                        f"the connections of {_which(its, full, 'such layers')} are {names[alt]}, "
                        f"not {names[current]} ({signed(its)})", True)

    if q == "connections":
        # each weight is used once per output position: connections written as the weights
        items = []
        for r in weight_rows:
            if r.connections != 0:
                shape = r.out_shape[-2:] if len(r.out_shape) >= 2 else ()
                area = " x ".join(sp.sstr(x) for x in shape)
                items.append(item(r, r.counts.weight - r.connections, f"output {area}"))
        fam("as-weights", 18, items,
            lambda its, full: (("the formula counts the weights, not the connections" if full and len(its) > 1
                                else f"the connections of {_which(its, full, 'weight layers')} are written as "
                                     f"their weights") +
                               f": each weight is used at every output position, so multiply by the output area "
                               f"({'; '.join(f'{i.path}: {i.detail}' for i in its)})"))
    if q == "outputs":
        items = [item(r, r.out_shape[0] - r.outputs, "") for r in counted if len(r.out_shape) >= 3]
        fam("channels-only", 18, items,
            lambda its, full: f"the outputs of {_which(its, full, 'counted layers')} are counted as channels, "
                              f"without the spatial size (outputs = channels x height x width)")

    # ---- per-term mistakes: a channel symbol for another, k for k^2, the area
    subs_items: dict[tuple, list[_Item]] = {}
    for r in counted:
        v = r.value(q)
        for m, c in _terms(v).items():
            term = c * m
            powers = m.as_powers_dict()
            for s in _CHANNELS:
                if s not in powers:
                    continue
                for t in _CHANNELS:
                    if t == s:
                        continue
                    new = term * t / s
                    subs_items.setdefault(("one", s, t), []).append(
                        item(r, new - term, _instead(new, term)))
                    if powers[s] > 1:
                        new2 = term.xreplace({s: t})
                        subs_items.setdefault(("all", s, t), []).append(
                            item(r, new2 - term, _instead(new2, term)))
            if powers.get(k, 0) == 2:
                new = term / k
                subs_items.setdefault(("k", k, k), []).append(
                    item(r, new - term, _instead(new, term)))
            if H in powers and W in powers and not ctx.numeric_size:
                shape = r.out_shape[-2:] if len(r.out_shape) >= 2 else ("?", "?")
                area = f"{sp.sstr(shape[0])} x {sp.sstr(shape[1])}"
                new = term / (H * W)
                subs_items.setdefault(("noarea",), []).append(
                    item(r, new - term, _instead(new, term, f"; output {area}")))
                for ratio in (4, sp.Rational(1, 4), 2, sp.Rational(1, 2), 16, sp.Rational(1, 16)):
                    subs_items.setdefault(("area", ratio), []).append(
                        item(r, term * (ratio - 1), _instead(term * ratio, term, f"; output {area}")))
    for key, items in subs_items.items():
        details = lambda its: "; ".join(f"{i.path}: {i.detail}" for i in its)  # noqa: E731
        if key[0] in ("one", "all"):
            _, s, t = key
            fam(f"sub-{key[0]}-{s}-{t}", 20 if key[0] == "one" else 21, items,
                lambda its, full, s=s, t=t: f"the {q} of {_which(its, full, 'layers')} use {t} where {s} belongs "
                                            f"({details(its)})")
        elif key[0] == "k":
            fam("k-not-squared", 22, items,
                lambda its, full: f"the {q} of {_which(its, full, 'layers')} use k where k^2 belongs "
                                  f"({details(its)})")
        elif key[0] == "noarea":
            fam("noarea", 23, items,
                lambda its, full: (("no term is multiplied by the output area" if full and len(its) > 1 else
                                    f"the {q} of {_which(its, full, 'layers')} are not multiplied by the output area")
                                   + f" ({details(its)})"))
        else:
            ratio = key[1]
            fam(f"area-{ratio}", 24, items,
                lambda its, full, ratio=ratio: f"the {q} of {_which(its, full, 'layers')} use an area "
                                               f"{sp.sstr(ratio)}x the layer's output area ({details(its)})")
    # ---- the whole total scaled
    if expected != 0:
        whole = []
        for ratio in (4, 2, sp.Rational(1, 2), sp.Rational(1, 4), 16):
            whole.append((ratio, sp.expand((ratio - 1) * expected)))
        for ratio, delta in whole:
            why = ""
            if q == "weights" and ratio in (4, 16):
                why = ": weights do not depend on the input size (scaling them with the area is wrong)"
            elif q == "weights" and ratio == 2:
                why = ": weights do not depend on the input size"
            fams.append(_Family(f"scaled-{ratio}", 5, [_Item(delta, "*", "the whole formula", "")],
                                lambda its, full, ratio=ratio, why=why:
                                f"the whole formula is {sp.sstr(ratio)}x the expected {q}{why}"))
    return fams


_PACK_BASE = 10 ** 40


class _NotPackable(Exception):
    """A fingerprint that no sum of the packed ones can equal (a finer denominator)."""


def _packer(fps: Iterable[tuple]) -> Callable[[tuple], int]:
    """Pack fingerprints (tuples of Fractions) into single ints, exactly: scale to integers by the
    common denominator, then write the values as digits of base 10**40 (they are far smaller)."""
    den = 1
    for fp in fps:
        for v in fp:
            den = math.lcm(den, v.denominator)

    def pack(fp: tuple) -> int:
        out = 0
        for i, v in enumerate(fp):
            scaled = v * den
            if scaled.denominator != 1:
                raise _NotPackable
            out += int(scaled) * _PACK_BASE ** i
        return out
    return pack


def _subset_sums(values: list[int], limit: int = 11) -> dict[int, list[tuple[int, ...]]]:
    """{sum: subsets (index tuples, smallest first, at most 4)} over the non-empty subsets."""
    n = len(values)
    out: dict[int, list[tuple[int, ...]]] = {}

    def put(total: int, idx: tuple[int, ...]) -> None:
        lst = out.setdefault(total, [])
        if len(lst) < 4:
            lst.append(idx)
    if n <= limit:
        level: list[tuple[int, tuple[int, ...]]] = [(0, ())]
        all_subsets: list[tuple[int, tuple[int, ...]]] = []
        for i, v in enumerate(values):
            level = level + [(t + v, idx + (i,)) for t, idx in level]
        all_subsets = level[1:]
        all_subsets.sort(key=lambda x: len(x[1]))
        for total, idx in all_subsets:
            put(total, idx)
        return out
    whole = sum(values)
    for i, v in enumerate(values):
        put(v, (i,))
    put(whole, tuple(range(n)))
    for i, v in enumerate(values):
        put(whole - v, tuple(j for j in range(n) if j != i))
    return out


def _attribute(diff: Any, ref: Any, q: str, conv: Convention, ctx: _Context, expected: Any,
               pairs: bool = True) -> _Explained | None:
    """Name the mistake(s) whose deltas add up to exactly ``diff``; None if no known mistake does.

    One family of mistakes (any subset of its layers), or with ``pairs`` two "component" families
    (biases, BatchNorm, pooling ...) together.  Sums are compared by packed fingerprints first and
    the chosen explanation is then confirmed symbolically.
    """
    fp = ctx.fp
    target_fp = fp(diff)
    if _is_zero(target_fp):
        return None
    key = ("families", q, tuple(conv.switches.items()))
    if key not in ctx.totals:
        fams0 = _families(ref, q, conv, ctx, expected)
        fps0 = [[fp(i.delta) for i in f.items] for f in fams0]
        pack0 = _packer([x for fps in fps0 for x in fps])
        sums0 = []
        for f, fps in zip(fams0, fps0):
            table = _subset_sums([pack0(x) for x in fps])
            if not f.allow_full:
                most = max(1, len(f.items) // 2)
                table = {t: [idx for idx in v if len(idx) <= most] for t, v in table.items()}
                table = {t: v for t, v in table.items() if v}
            sums0.append(table)
        ctx.totals[key] = (fams0, pack0, sums0)
    fams, pack, sums = ctx.totals[key]
    try:
        target = pack(target_fp)
    except _NotPackable:
        return None
    found: list[tuple[tuple, list[tuple[_Family, tuple[int, ...]]]]] = []

    def score(parts: list[tuple[_Family, tuple[int, ...]]]) -> tuple:
        return (len(parts), sum(0 if len(idx) == len(f.items) else 1 for f, idx in parts),
                sum(f.rank for f, _ in parts), sum(len(idx) for _, idx in parts))

    for f, s in zip(fams, sums):
        for idx in s.get(target, []):
            found.append((score([(f, idx)]), [(f, idx)]))
    if not found and pairs:
        comps = [(f, s) for f, s in zip(fams, sums) if f.component]
        for (fa, sa), (fb, sb) in itertools.combinations(comps, 2):
            if fa.key.split("-")[0] == fb.key.split("-")[0]:
                continue
            for key_a, idx_as in sa.items():
                rest = target - key_a
                for idx_b in sb.get(rest, [])[:2]:
                    for idx_a in idx_as[:2]:
                        found.append((score([(fa, idx_a), (fb, idx_b)]), [(fa, idx_a), (fb, idx_b)]))
    if not found:
        return None
    found.sort(key=lambda x: x[0])
    texts: list[str] = []
    layers: list[str] = []
    best = None
    numeric = not (_terms(diff).keys() - {1})
    for sc, parts in found:
        total = sp.expand(sum((_sum([f.items[i] for i in idx]) for f, idx in parts), sp.Integer(0)))
        if sp.expand(total - diff) != 0:
            continue  # a fingerprint collision
        if best is None:
            best = sc
        elif (sc != best and not numeric) or len(texts) >= 3:
            break
        line = "; and ".join(f.phrase([f.items[i] for i in idx], len(idx) == len(f.items)) for f, idx in parts)
        if texts:
            line = "or: " + line
        if line not in texts:
            texts.append(line)
        for f, idx in parts:
            layers += [f.items[i].path for i in idx if f.items[i].path not in layers and f.items[i].path != "*"]
    if not texts:
        return None
    if len(texts) > 1 and numeric:
        texts.append("(the difference is a single number, so several explanations fit; a formula would say more)")
    return _Explained(tuple(texts), tuple(layers), best)


def _term_rows(given: Any, expected: Any, ref: Any, q: str) -> tuple[TermRow, ...]:
    g, e = _terms(given), _terms(expected)
    contrib: dict[sp.Expr, list[str]] = {}
    for r in ref.rows:
        for m, c in _terms(r.value(q)).items():
            contrib.setdefault(m, []).append(r.path)
    rows = []
    for m in sorted(set(g) | set(e), key=_mono_key):
        rows.append(TermRow(mono_str(m), e.get(m, sp.Integer(0)), g.get(m, sp.Integer(0)), tuple(contrib.get(m, ()))))
    return tuple(rows)


def _term_explanations(given: Any, expected: Any, ref: Any, q: str, numeric: bool) -> list[str]:
    """Term-by-term description of a difference no single known mistake explains."""
    g, e = _terms(given), _terms(expected)
    per_layer: dict[sp.Expr, list[str]] = {}
    for r in ref.rows:
        for m, c in _terms(r.value(q)).items():
            per_layer.setdefault(m, []).append(f"{r.path}: {formula_str(c * m)}")
    out = []
    has_size = lambda m: m.has(H) or m.has(W)  # noqa: E731
    if q == "weights" and any(has_size(m) for m in g):
        out.append("weights do not depend on the input size, but the formula has terms in H, W: "
                   + ", ".join(mono_str(m) for m in g if has_size(m)))
    if q != "weights" and any(has_size(m) for m in e) and not any(has_size(m) for m in g) and not numeric:
        out.append(f"the formula does not depend on H, W, but the {q} grow with the input area")
    for m in sorted(set(g) | set(e), key=_mono_key):
        gc, ec = g.get(m, 0), e.get(m, 0)
        if gc == ec:
            continue
        src = f" (from {', '.join(per_layer[m])})" if m in per_layer else ""
        name = "constant" if m == 1 else f"{mono_str(m)}"
        if ec == 0:
            if q == "weights" and has_size(m):
                continue
            out.append(f"the {name} term ({_coef_str(gc)}) is not expected")
        elif gc == 0:
            out.append(f"the {name} term is missing: expected {_coef_str(ec)}{src}")
        else:
            ratio = sp.nsimplify(gc / ec)
            extra = ""
            if ratio.is_Rational and ratio > 0 and ratio != 1 and (ratio.q == 1 or ratio.p == 1):
                extra = {2: ", twice the expected", sp.Rational(1, 2): ", half the expected"}.get(
                    ratio, f", {ratio} times the expected" if ratio.q == 1 else f", 1/{ratio.q} of the expected")
            out.append(f"the {name} term is {_coef_str(gc)}, expected {_coef_str(ec)}{extra}{src}")
    return out


# ============================================================================================ check()

def _describe_switches(conv: Convention, q: str) -> str:
    words = {
        "bias": lambda v: "biases counted" if v else "biases ignored",
        "batchnorm": lambda v: {"ignore": "BatchNorm ignored", "affine": "BatchNorm affine weights counted",
                                "layer": "BatchNorm counted as a layer"}[v],
        "pooling": lambda v: "pooling/upsampling counted" if v else "pooling/upsampling ignored",
        "padding_taps": lambda v: "padding taps included" if v == "include" else "padding taps excluded",
        "transposed": lambda v: f"transposed convs: {v}",
    }
    return ", ".join(words[s](getattr(conv, s)) for s in RELEVANT_SWITCHES[q])


def _same(a: Convention, b: Convention) -> bool:
    return a.switches == b.switches


def _magnitude(diff: Any, ctx: _Context) -> Fraction:
    pt = ctx.fp.points[0]
    total = Fraction(0)
    for m, c in _terms(diff).items():
        v = (c * m).xreplace(pt)
        if v.is_Rational:
            total += abs(Fraction(int(v.p), int(v.q)))
        else:
            total += Fraction(10**12)
    return total


def _period(expr: Any) -> int:
    """An upper bound of the period in H, W of the floors (and residues) in ``expr``."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return 1
    inner = 1
    for a in expr.args:
        inner = math.lcm(inner, _period(a))
    if isinstance(expr, (sp.floor, sp.ceiling, sp.Mod)):
        den = sp.fraction(sp.together(expr.args[0]))[1]
        if isinstance(expr, sp.Mod) and expr.args[1].is_Integer:
            den = den * expr.args[1]
        if den.is_Integer:
            return int(den) * inner
        return 64
    return inner


def _equal_exact(given: Any, exact: Any, ctx: _Context) -> bool:
    """``given == exact`` for every input size the model accepts (exact floor forms).

    The difference is a quasi-polynomial in H and W: of degree at most d in each and periodic in
    its coefficients with period P, it vanishes everywhere when it vanishes on (d + 1) * P
    consecutive accepted sizes per axis; the other symbols are compared at the fingerprint points.
    """
    key = ("exact", given, exact)
    if key in ctx.totals:
        return ctx.totals[key]
    ctx.totals[key] = result = _equal_exact_uncached(given, exact, ctx)
    return result


def _equal_exact_uncached(given: Any, exact: Any, ctx: _Context) -> bool:
    diff = sp.expand(given - exact)
    if diff == 0:
        return True
    if not _has_rounding(diff):
        return False
    period = min(_period(diff), 64)
    flat = diff.replace(lambda e: isinstance(e, (sp.floor, sp.ceiling)), lambda e: e.args[0])
    try:
        degree = max(sp.Poly(flat, H).degree(), sp.Poly(flat, W).degree(), 1)
    except sp.PolynomialError:
        degree = 2
    need = (degree + 1) * period
    sizes = [s for s in range(1, 64 * 8) if ctx.valid_size(s)][:need]
    # sizes that are not multiples of the simplification multiple first: a polynomial fails there
    sizes.sort(key=lambda s: (s % max(ctx.multiple, 1) == 0, s))
    for h in sizes:
        part = diff.xreplace({H: sp.Integer(h)})
        for w in sizes:
            if not _is_zero(ctx.fp(part.xreplace({W: sp.Integer(w)}))):
                return False
    return True


def check(formula: Any, model: Any, quantity: str, *, input_size: Any = None, convention: Any = None,
          switches: Any = None, **hparams: Any) -> CheckResult:
    """Whether ``formula`` is the exact ``quantity`` (weights, outputs, connections) of ``model``.

    ``formula`` is text (plain or LaTeX, read safely by :func:`analysis.parsing.parse_formula`) or a
    sympy expression.  ``model`` is a zoo name, a factory, a module or a :class:`CountTable`.
    ``input_size=None`` compares symbolically in H, W (exact floors, or the table simplified for H, W
    multiples of the model's factor); a number (or ``(H, W)``) substitutes it.  Hyperparameters
    (``kernel=3`` or ``k=3``, ``num_filters=32`` or ``NF=32`` ...) fix symbols in both formulas.
    When the formula has no ``k`` and the kernel is not given, the model's default kernel is assumed
    (and said so).  ``convention`` (a preset, a label such as ``"weighted[bias=true]"`` or a
    :class:`Convention`; ``None``: any preset) decides ``ok``.

    >>> from analysis.symbols import NIC, NF, NC, k
    >>> r = check(k**2*(NIC*NF + 4*NF**2 + NF*NC + NC**2) + 4*NF + 2*NC, "pool_upsample", "weights")
    >>> r.ok, r.matches[:2], r.verdict
    (False, ('weighted[bias=true]', 'weighted[bias=true,transposed=exact]'), 'wrong (right under weighted[bias=true])')
    >>> r.explanations[0]
    'right under weighted[bias=true] (biases counted, BatchNorm ignored), not under a preset'
    """
    q = _quantity(quantity)
    hp = _hparams(hparams)
    sizes = _sizes(input_size)
    requested = _convention(convention, switches)
    extra_symbols = None
    from .table import CountTable
    if isinstance(model, CountTable):
        extra_symbols = dict(model.symbols)
    text, given = _read_formula(formula, extra_symbols)
    assumptions: list[str] = []

    name, defaults, default_size, _, _ = _model_info(model)
    # the kernel: fixed, or assumed from the model's default when the formula has no k
    if "kernel" not in hp and k not in given.free_symbols and "kernel" in defaults:
        probe = _context(model, hp, sizes)
        dep = any(t is not None and isinstance(t, sp.Basic) and k in t.free_symbols
                  for _, t, _, _ in probe.conventions(q)[:3])
        if dep:
            hp["kernel"] = defaults["kernel"]
            assumptions.append(f"the formula has no k: compared with kernel={defaults['kernel']} (the model's "
                               f"default; pass kernel=... / --kernel for another)")
    if given.is_number:
        # a plain number: channel counts the formula cannot carry are the model's defaults
        probe = _context(model, hp, sizes)
        free: set = set()
        for _, t, _, _ in probe.conventions(q)[:3]:
            if isinstance(t, sp.Basic):
                free |= t.free_symbols
        fill = {_SYMBOL_HPARAM[s]: defaults[_SYMBOL_HPARAM[s]] for s in _CHANNELS
                if s in free and _SYMBOL_HPARAM[s] not in hp and _SYMBOL_HPARAM[s] in defaults}
        if fill:
            hp.update(fill)
            assumptions.append("the formula is a number: compared with " + ", ".join(
                f"{HPARAM_SYMBOLS[key]}={v}" for key, v in fill.items()) + " (the model's defaults; pass "
                + " ".join(f"--{str(HPARAM_SYMBOLS[key]).lower()}" for key in fill) + " for others)")
    subs = {HPARAM_SYMBOLS[key]: sp.Integer(v) for key, v in hp.items() if key in HPARAM_SYMBOLS}
    if sizes is not None:
        subs.update({H: sp.Integer(sizes[0]), W: sp.Integer(sizes[1])})
    if subs:
        given = sp.expand(given.xreplace(subs))
    ctx = _context(model, hp, sizes)
    name = ctx.model
    fp = ctx.fp
    given_fp = fp(given)

    rows = ctx.conventions(q)
    matches: list[tuple[Convention, bool]] = []  # (convention, exact)
    distinct: dict[tuple, tuple[Any, list[Convention]]] = {}
    unavailable = []
    for conv, exact, simple, why in rows:
        if why is not None:
            unavailable.append(conv)
            continue
        key = fp(simple)
        distinct.setdefault(key, (simple, []))[1].append(conv)
        if key == given_fp and sp.expand(given - simple) == 0:
            ok_exact = exact is simple or _equal_exact(given, exact, ctx)
            matches.append((conv, ok_exact))
        elif exact is not simple and _has_rounding(given) and _equal_exact(given, exact, ctx):
            matches.append((conv, True))
    if requested is not None and any(_same(requested, c) for c in unavailable):
        why = next(w for c, _, _, w in rows if _same(requested, c) and w)
        raise ArchcountError(f"{requested.label} cannot be evaluated here: {why}", model=name,
                             argument="convention")

    def sel(conv: Convention) -> tuple[Any, Any]:
        for c, exact, simple, why in rows:
            if _same(c, conv):
                return exact, simple
        raise KeyError(conv)  # pragma: no cover

    match_labels = tuple(c.label for c, _ in matches)
    is_preset = lambda c: c.label in PRESETS  # noqa: E731
    if requested is not None:
        hit = [(c, ex) for c, ex in matches if _same(c, requested)]
    else:
        hit = [(c, ex) for c, ex in matches if is_preset(c)]
    ok = bool(hit)
    condition = ""
    relevant = hit or matches
    if relevant and not any(ex for _, ex in relevant) and ctx.multiple > 1:
        condition = f"for H, W multiples of {ctx.multiple}"
        if ctx.multiple <= ctx.rule_multiple:
            condition += " (every input size the model accepts)"
    explanations: list[str] = []
    layers: tuple[str, ...] = ()
    closest = None

    if ok:
        conv = hit[0][0]
        reference = conv
        exact, simple = sel(conv)
        expected = simple
        names = [c.label for c, _ in hit]
        verdict = "right" + (f" ({', '.join(names)})" if requested is None else "")
        if condition and ctx.multiple > ctx.rule_multiple:
            explanations.append(f"right {condition}; for other sizes the exact count is {formula_str(exact)}"
                                if not exact.has(sp.floor) else
                                f"right {condition}; for other sizes the exact count has floors: {sp.sstr(exact)}")
        difference: Any = sp.Integer(0)
    else:
        if _has_rounding(given) and not ctx.numeric_size:
            from .simplify import simplify_multiple
            m2 = min(math.lcm(max(ctx.multiple, 1), _period(given)), 64)
            poly = simplify_multiple(given, {"H": m2, "W": m2}, getattr(ctx.exact, "symbols", None))
            if not _has_rounding(poly):
                given = sp.sympify(poly)
                assumptions.append(f"the formula's floors are compared for H, W multiples of {m2}")
        # the reference: the requested convention, else the closest preset or convention
        cands = []
        for key, (simple, convs) in distinct.items():
            d = sp.expand(given - simple)
            cands.append((len(_terms(d)), _magnitude(d, ctx), convs, simple, d))
        if not cands:
            raise ArchcountError("no convention can be evaluated for this model; fix the kernel", model=name)
        cands.sort(key=lambda c: (c[0], c[1]))
        if matches:
            # right somewhere, but not where asked: explain against the requested or the closest preset
            match_conv = min((c for c, _ in matches), key=lambda c: len(c.changed))
            if requested is not None:
                reference = requested
            else:
                pres = [c for c in cands if any(is_preset(cv) for cv in c[2])]
                pres.sort(key=lambda c: (c[0], c[1]))
                reference = next(cv for cv in pres[0][2] if is_preset(cv)) if pres else cands[0][2][0]
            where = "not under " + (f"the requested {requested.label}" if requested is not None else "a preset")
            explanations.append(f"right under {match_conv.label} ({_describe_switches(match_conv, q)}), {where}")
            verdict = (f"wrong under {requested.label} (right under {match_conv.label})" if requested is not None
                       else f"wrong (right under {match_conv.label})")
        else:
            # the closest: fewest differing terms, then the smallest difference; among those with the
            # fewest differing terms, one whose difference a known mistake explains is preferred
            best_n = cands[0][0]
            tops = [c for c in cands if c[0] == best_n][:6]
            chosen = None
            for c in tops:
                conv0 = next((cv for cv in c[2] if is_preset(cv)), c[2][0])
                ex = _attribute(c[4], ctx.simple.under(conv0), q, conv0, ctx, c[3])
                if ex is not None:
                    chosen = (c, conv0, ex)
                    break
            if chosen is None:
                c = cands[0]
                closest_conv = next((cv for cv in c[2] if is_preset(cv)), c[2][0])
            else:
                closest_conv = chosen[1]
            closest = closest_conv.label
            reference = requested or closest_conv
            verdict = "wrong"
        exact, expected = sel(reference)
        difference = sp.expand(given - expected)
        ref_table = ctx.simple.under(reference)
        ex = _attribute(difference, ref_table, q, reference, ctx, expected)
        if ex is not None:
            single = _terms(difference)
            explanations += list(ex.texts)
            if len(single) == 1 and list(single)[0] != 1 and _terms(expected).get(list(single)[0], 0) != 0 \
                    and _terms(given).get(list(single)[0], 0) != 0:
                explanations += _term_explanations(given, expected, ref_table, q, ctx.numeric_size)
            layers = ex.layers
        elif (part := _partial(difference, ref_table, q, reference, ctx, expected)) is not None:
            explained, ex_part = part
            explanations += list(ex_part.texts)
            rest = _term_explanations(given - explained, expected, ref_table, q, ctx.numeric_size)
            explanations += [("in addition, " if i == 0 else "") + line for i, line in enumerate(rest)]
            layers = tuple(dict.fromkeys(list(ex_part.layers) + [
                p for tr in _term_rows(given - explained, expected, ref_table, q) if tr.differs for p in tr.layers]))
        elif given.is_number and isinstance(expected, sp.Basic) and not expected.is_number:
            syms = ", ".join(str(x) for x in sorted(expected.free_symbols, key=lambda x: _ORDER.get(x, 99)))
            explanations.append(f"the formula is a plain number, but the {q} depend on {syms}")
        else:
            explanations += _term_explanations(given, expected, ref_table, q, ctx.numeric_size)
            layers = tuple(dict.fromkeys(p for tr in _term_rows(given, expected, ref_table, q) if tr.differs
                                         for p in tr.layers))
        if not matches:
            explanations += _hints(given, ctx, distinct, sizes)
        if closest and requested is not None and closest != requested.label:
            words = _describe_switches(conv_from_label(closest), q)
            explanations.append(f"the closest convention is {closest} ({words})")
        if not matches and unavailable and "kernel" not in hp and q == "connections":
            assumptions.append(f"{len(unavailable)} conventions (padding_taps=exclude, transposed=exact) "
                               f"need a numeric kernel and were not compared")
    ref_table = ctx.simple.under(reference)
    terms = _term_rows(given, expected, ref_table, q)
    if ctx.exact.unsupported:
        assumptions.append(f"partial: {len(ctx.exact.unsupported)} unsupported layer(s) not counted")
    return CheckResult(text, name, q, requested.label if requested is not None else None, ok, verdict,
                       given, expected, reference.label, match_labels, condition, closest, difference, terms,
                       tuple(explanations), tuple(layers), tuple(assumptions), dict(hp), sizes)


def _partial(diff: Any, ref: Any, q: str, conv: Convention, ctx: _Context, expected: Any
             ) -> tuple[Any, _Explained] | None:
    """The largest part of ``diff`` (a subset of its terms) that one known mistake explains."""
    terms = _terms(diff)
    if not 2 <= len(terms) <= 8:
        return None
    monos = sorted(terms, key=_mono_key)
    # a useful partial explanation covers most of the difference: at most 2 terms left over
    for size in range(len(monos) - 1, max(0, len(monos) - 3, (len(monos) - 1) // 2), -1):
        for subset in itertools.combinations(monos, size):
            part = sp.Add(*[terms[m] * m for m in subset])
            ex = _attribute(part, ref, q, conv, ctx, expected, pairs=False)
            if ex is not None:
                return part, ex
    return None


def conv_from_label(label: str) -> Convention:
    """The convention of a label such as ``weighted[bias=true]``."""
    return get_convention(label.split("[")[0], _label_switches(label))


def summarize_matches(labels: Sequence[str], quantity: str = "weights") -> str:
    """The presets among ``labels`` (else the label changing the fewest switches), and how many more.

    All the labels give the same total (the one checked), so the rest are equivalent here.

    >>> summarize_matches(["weighted", "all-layers", "weighted[transposed=exact]"])
    'weighted, all-layers (and 1 equivalent switch combination)'
    """
    shown = [lab for lab in labels if lab in PRESETS]
    if not shown and labels:
        shown = [min(labels, key=lambda lab: (len(conv_from_label(lab).changed), list(labels).index(lab)))]
    rest = len(labels) - len(shown)
    return ", ".join(shown) + (f" (and {rest} equivalent switch combination{'s' if rest > 1 else ''})" if rest else "")


def _label_switches(label: str) -> list[str]:
    if "[" not in label:
        return []
    return [p for p in label.split("[", 1)[1].rstrip("]").split(",") if p]


def _hints(given: Any, ctx: _Context, distinct: Mapping, sizes: Any) -> list[str]:
    """'Right if ...' hints when the formula lacks a symbol the expected count has."""
    out: list[str] = []
    free = given.free_symbols
    exp_free: set = set()
    for simple, _ in distinct.values():
        if isinstance(simple, sp.Basic):
            exp_free |= simple.free_symbols
    absent = [s for s in _CHANNELS if s in exp_free and s not in free and _SYMBOL_HPARAM[s] in ctx.defaults]
    size_absent = sizes is None and H in exp_free and W in exp_free and not (free & {H, W})
    # channel counts at their defaults
    for n in range(len(absent), 0, -1):
        for combo in itertools.combinations(absent, n):
            vals = {s: sp.Integer(ctx.defaults[_SYMBOL_HPARAM[s]]) for s in combo}
            for simple, convs in distinct.values():
                if sp.expand(given - sp.sympify(simple).xreplace(vals)) == 0:
                    conv = next((c for c in convs if c.label in PRESETS), convs[0])
                    what = ", ".join(f"{s}={v}" for s, v in vals.items())
                    flags = " ".join(f"--{str(s).lower()} {v}" for s, v in vals.items())
                    out.append(f"right under {conv.label} for {what} (the model's defaults): pass {flags}")
                    return out
    if size_absent:
        s_sym = sp.Symbol("s", positive=True, integer=True)
        for simple, convs in distinct.values():
            d = sp.expand(given - sp.sympify(simple).xreplace({H: s_sym, W: s_sym}))
            try:
                poly = sp.Poly(d, *sorted(d.free_symbols - {s_sym}, key=str)) if d.free_symbols - {s_sym} else None
                coeffs = poly.coeffs() if poly is not None else [d]
                g = functools.reduce(sp.gcd, coeffs)
                roots = [int(r) for r in sp.Poly(g, s_sym).ground_roots() if r.is_Integer and r > 0] \
                    if g.has(s_sym) else []
            except (sp.PolynomialError, sp.GeneratorsNeeded):
                roots = []
            roots = [r for r in roots if ctx.valid_size(r)]
            if roots:
                conv = next((c for c in convs if c.label in PRESETS), convs[0])
                out.append(f"right under {conv.label} for input size {roots[0]}x{roots[0]}: pass --size {roots[0]}")
                return out
        out.append("the formula has no H, W: if it is for one input size, pass input_size / --size")
    return out


# ======================================================================================== shapes

@dataclass(frozen=True)
class ShapeCheck:
    """A claimed output shape of one layer against the exact one, with the likely mistake."""

    claimed: tuple[Any, ...]
    layer: str
    input_shape: tuple[Any, ...]
    expected: tuple[Any, ...]
    ok: bool
    verdict: str
    arithmetic: tuple[str, ...]       #: per spatial axis, e.g. "floor((1024 + 2 - 5)/2) + 1 = 511"
    mistakes: tuple[str, ...] = ()    #: named mistakes reproducing the claim exactly
    explanations: tuple[str, ...] = ()

    kind = "shape"

    @property
    def explanation(self) -> str:
        return "; ".join(self.explanations)

    def explain(self) -> str:
        from .layertext import format_shape
        lines = [f"check shape: {self.layer} on {format_shape(self.input_shape)} -> claimed "
                 f"{_shape_text(self.claimed)}",
                 f"verdict: {self.verdict}", f"expected: {format_shape(self.expected)}"]
        lines += [f"  {a}" for a in self.arithmetic]
        if self.explanations:
            lines.append("explanation:")
            lines += [f"  - {e}" for e in self.explanations]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "claimed": [_j(v) for v in self.claimed], "layer": self.layer,
                "input": [_j(v) for v in self.input_shape], "expected": [_j(v) for v in self.expected],
                "ok": self.ok, "verdict": self.verdict, "arithmetic": list(self.arithmetic),
                "mistakes": list(self.mistakes), "explanations": list(self.explanations)}


def _num_text(v: Any) -> str:
    """``511``, ``510.5``, or ``1021/3`` for a fraction without a short decimal."""
    if isinstance(v, Fraction):
        if v.denominator == 1:
            return str(v.numerator)
        d = v.denominator
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d == 1:
            return format(float(v), "g") if len(str(float(v))) < 16 else str(v)
        return str(v)
    return str(v)


def _shape_text(shape: Sequence[Any]) -> str:
    return "x".join(_num_text(v) for v in shape)


_NUM = re.compile(r"^\s*(\d+)(?:\s*/\s*(\d+)|\.(\d+))?\s*$")


def _parse_claimed_shape(claimed: Any) -> tuple[Any, ...]:
    """``"16x513x385"`` (decimals and fractions allowed, e.g. ``16x510.5x382.5``) or a sequence."""
    if not isinstance(claimed, str):
        try:
            vals = tuple(claimed)
        except TypeError:
            raise ArchcountError(f"expected a shape such as 16x511x383, got {claimed!r}", argument="shape") from None
        out = []
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, Fraction, float)):
                raise ArchcountError(f"shape entries must be numbers, got {v!r}", argument="shape")
            out.append(Fraction(v) if not isinstance(v, int) else v)
        return tuple(out)
    body = claimed.strip().strip("()[]")
    parts = [p for p in re.split(r"\s*[x×X,]\s*", body.strip())]
    if not body.strip() or len(parts) > 5:
        raise ArchcountError(f"cannot read shape {claimed!r}; write e.g. 16x511x383", argument="shape")
    out2: list[Any] = []
    for part in parts:
        m = _NUM.match(part)
        if not m:
            raise ArchcountError(f"cannot read {part!r} in shape {claimed!r}: write integers (or decimals), "
                                 f"e.g. 16x511x383", argument="shape")
        if m.group(2):
            if int(m.group(2)) == 0:
                raise ArchcountError(f"division by zero in {part!r}", argument="shape")
            value = Fraction(int(m.group(1)), int(m.group(2)))
        elif m.group(3) is not None:
            value = Fraction(part.strip())
        else:
            value = Fraction(int(m.group(1)))
        out2.append(int(value) if value.denominator == 1 else value)
    return tuple(out2)


def _round(x: Fraction, mode: str) -> Fraction:
    if mode == "floor":
        return Fraction(math.floor(x))
    if mode == "ceil":
        return Fraction(math.ceil(x))
    if mode == "nearest":
        return Fraction(math.floor(x + Fraction(1, 2)))
    return x


_ROUNDING_NAMES = {"floor": "", "ceil": "rounded up instead of down (ceil)",
                   "nearest": "rounded to the nearest integer instead of down", "exact": "floor division ignored"}


def _variants(kind: str, ceil_mode: bool) -> list[tuple[str, Callable[..., Fraction], Fraction]]:
    """(name, pre-rounding value f(n, k, s, p, d, op), added constant) per formula variant; first: correct."""
    F = Fraction
    if kind == "transposed":
        return [
            ("", lambda n, k, s, p, d, op: F((n - 1) * s - 2 * p + d * (k - 1) + op), F(1)),
            ("+1 forgotten", lambda n, k, s, p, d, op: F((n - 1) * s - 2 * p + d * (k - 1) + op), F(0)),
            ("output_padding forgotten", lambda n, k, s, p, d, op: F((n - 1) * s - 2 * p + d * (k - 1)), F(1)),
            ("padding forgotten", lambda n, k, s, p, d, op: F((n - 1) * s + d * (k - 1) + op), F(1)),
            ("padding counted once", lambda n, k, s, p, d, op: F((n - 1) * s - p + d * (k - 1) + op), F(1)),
            ("padding added instead of subtracted",
             lambda n, k, s, p, d, op: F((n - 1) * s + 2 * p + d * (k - 1) + op), F(1)),
            ("kernel ignored: out = n*s", lambda n, k, s, p, d, op: F(n * s), F(0)),
            ("n*s used instead of (n - 1)*s", lambda n, k, s, p, d, op: F(n * s - 2 * p + d * (k - 1) + op), F(1)),
            ("the conv formula used for a transposed conv",
             lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1, s), F(1)),
        ]
    pool = kind in ("maxpool", "avgpool")
    out = [
        ("", lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1, s), F(1)),
        ("kernel term missing: out = (n + 2p)/s, without the -k and the +1",
         lambda n, k, s, p, d, op: F(n + 2 * p, s), F(0)),
        ("kernel and padding ignored: out = n/s", lambda n, k, s, p, d, op: F(n, s), F(0)),
        ("kernel term -k forgotten: out = (n + 2p)/s + 1", lambda n, k, s, p, d, op: F(n + 2 * p, s), F(1)),
        ("padding forgotten", lambda n, k, s, p, d, op: F(n - d * (k - 1) - 1, s), F(1)),
        ("padding counted once", lambda n, k, s, p, d, op: F(n + p - d * (k - 1) - 1, s), F(1)),
        ("+1 forgotten", lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1, s), F(0)),
        ("k - 1 used instead of k", lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1), s), F(1)),
        ("stride ignored", lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1), F(1)),
        ("dilation ignored", lambda n, k, s, p, d, op: F(n + 2 * p - k, s), F(1)),
        ("the transposed-conv formula used for a conv",
         lambda n, k, s, p, d, op: F((n - 1) * s - 2 * p + d * (k - 1)), F(1)),
    ]
    if pool:
        out.append(("stride taken as 1 (a pool's stride defaults to its kernel)",
                    lambda n, k, s, p, d, op: F(n + 2 * p - d * (k - 1) - 1), F(1)))
    return out


def _axis_values(layer: Any, naxes: int) -> list[dict[str, Any]]:
    names = ("kernel", "stride", "padding", "dilation", "output_padding")
    return [{key: layer.axis_value(key, i, naxes) for key in names} for i in range(naxes)]


def check_shape(claimed: Any, layer: Any, input_shape: Any) -> ShapeCheck:
    """Check a claimed output shape of one layer (text such as ``"conv k=5 s=2 p=1 out=16"``).

    Names every known mistake (floor ignored, kernel or padding forgotten, +1 forgotten, stride
    ignored, wrong formula ...) that reproduces the claimed sizes exactly, or says none does.

    >>> r = check_shape("16x513x385", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    >>> r.ok, "x".join(map(str, r.expected)), r.arithmetic[0]
    (False, '16x511x383', 'H: floor((1024 + 2 - 5)/2) + 1 = 511')
    """
    from .layertext import format_shape, layer_output_shape, parse_layer, parse_shape
    lay = parse_layer(layer) if isinstance(layer, str) else layer
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else tuple(input_shape)
    answer = layer_output_shape(lay, shape)
    claim = _parse_claimed_shape(claimed)
    expected = tuple(answer.output_shape)
    arith = tuple(f"{st.axis}: {st.arithmetic}" for st in answer.axes)
    layer_text = str(lay)
    if any(isinstance(v, sp.Basic) and not v.is_number for v in expected):
        raise ArchcountError("check_shape needs a numeric input shape", argument="input")
    same = len(claim) == len(expected) and all(Fraction(c) == Fraction(int(e)) for c, e in zip(claim, expected))
    if same:
        notes = [f"{st.axis}: the floor drops {st.dropped} input row(s)/column(s)" for st in answer.axes
                 if st.dropped not in (None, 0)]
        return ShapeCheck(claim, layer_text, shape, expected, True, "right", arith, (), tuple(notes))
    explanations: list[str] = []
    mistakes: list[str] = []
    # batch dimension and axis order
    spatial_e = [int(v) for v in expected[-2:]]
    if len(claim) == len(expected) + 1:
        explanations.append(f"the claim has {len(claim)} dimensions: a batch dimension is not part of the "
                            f"per-sample shape here")
        claim_cmp = claim[1:]
    elif len(claim) + 1 == len(expected) and len(claim) >= 2:
        explanations.append("the channel dimension is missing from the claim")
        claim_cmp = (None,) + claim
    elif len(claim) != len(expected):
        explanations.append(f"the claim has {len(claim)} dimensions, expected {len(expected)} "
                            f"({format_shape(expected)})")
        return ShapeCheck(claim, layer_text, shape, expected, False, "wrong", arith, (), tuple(explanations))
    else:
        claim_cmp = claim
    spatial_c = list(claim_cmp[-2:])
    if len(expected) >= 3 and claim_cmp[0] is not None and Fraction(claim_cmp[0]) != Fraction(int(expected[0])):
        cin = shape[-3] if len(shape) >= 3 else None
        why = ""
        if cin is not None and Fraction(claim_cmp[0]) == Fraction(int(cin)) and lay.out_channels is not None:
            why = f": the input channel count {cin} was kept, but out={lay.out_channels} sets the output channels"
        explanations.append(f"channels: claimed {claim_cmp[0]}, expected {expected[0]}{why}")
        mistakes.append("wrong channel count")
    spatial_ok = all(Fraction(c) == e for c, e in zip(spatial_c, spatial_e))
    if not spatial_ok and [Fraction(c) for c in spatial_c[::-1]] == [Fraction(e) for e in spatial_e]:
        mistakes.append("H and W swapped")
        explanations.append(f"H and W are swapped: expected {spatial_e[0]}x{spatial_e[1]}")
    elif not spatial_ok:
        axes = _axis_values(lay, 2)
        n_in = [int(v) for v in shape[-2:]]
        hits: list[tuple[int, str]] = []
        if lay.kind in ("conv", "transposed", "maxpool", "avgpool"):
            if lay.kind == "transposed":
                roundings: tuple[str, ...] = ("floor",)
            elif lay.ceil_mode:
                roundings = ("ceil", "floor", "nearest", "exact")
            else:
                roundings = ("floor", "ceil", "nearest", "exact")
            correct_round = "ceil" if lay.ceil_mode else "floor"
            for vi, (vname, fn, const) in enumerate(_variants(lay.kind, lay.ceil_mode)):
                for rmode in roundings:
                    vals = []
                    for n, ax in zip(n_in, axes):
                        kk, ss, pp, dd, oo = (int(ax[key]) for key in ("kernel", "stride", "padding", "dilation",
                                                                       "output_padding"))
                        vals.append(_round(fn(n, kk, ss, pp, dd, oo), rmode) + const)
                    if all(Fraction(c) == v for c, v in zip(spatial_c, vals)):
                        parts = [x for x in (vname, "" if rmode == correct_round else
                                             ("ceil_mode ignored (floor used)" if rmode == "floor" and lay.ceil_mode
                                              else _ROUNDING_NAMES[rmode])) if x]
                        if parts:
                            hits.append((len(parts), " and ".join(parts)))
        elif lay.kind == "upsample":
            for rmode in ("ceil", "nearest", "exact"):
                vals = [_round(Fraction(n) * Fraction(str(lay.scale_factor)), rmode) for n in n_in]
                if all(Fraction(c) == v for c, v in zip(spatial_c, vals)):
                    hits.append((1, _ROUNDING_NAMES[rmode]))
        if hits:
            best = min(h[0] for h in hits)
            named = list(dict.fromkeys(h[1] for h in hits if h[0] == best))
            mistakes += named
            explanations.append("the claimed sizes are reproduced exactly by: " + "; or ".join(named))
        else:
            explanations.append("no single known mistake reproduces the claimed sizes "
                                f"{'x'.join(_num_text(Fraction(c)) for c in spatial_c)}")
        if lay.kind in ("conv", "maxpool", "avgpool"):
            notes = []
            for st, n, ax in zip(answer.axes, n_in, axes):
                kk, ss, pp, dd = (int(ax[key]) for key in ("kernel", "stride", "padding", "dilation"))
                span = n + 2 * pp - dd * (kk - 1) - 1
                if span % ss:
                    word = "up (ceil_mode)" if lay.ceil_mode else "down"
                    padded = f" + {2 * pp}" if pp else ""
                    notes.append(f"{st.axis}: ({n}{padded} - {dd * (kk - 1) + 1})/{ss} = "
                                 f"{_num_text(Fraction(span, ss))} is rounded {word}, so {st.arithmetic}")
            if notes:
                explanations.append("floor division matters too: " + "; ".join(notes))
    verdict = "wrong"
    return ShapeCheck(claim, layer_text, shape, expected, False, verdict, arith, tuple(mistakes), tuple(explanations))


# ======================================================================================= paddings

@dataclass(frozen=True)
class PaddingCheck:
    """A claimed padding (and output padding) against :func:`analysis.shapes.solve_padding`."""

    claimed: tuple[int, int]          #: (padding, output_padding)
    kernel: int
    stride: int
    dilation: int
    transposed: bool
    goal: str                         #: e.g. "out = in/2"
    ok: bool
    verdict: str
    solutions: tuple[tuple[Any, Any], ...]
    gives: tuple[str, ...] = ()       #: what the claimed padding gives, per residue class of the input
    failures: tuple[tuple[int, int, Any], ...] = ()  #: (input size, output, wanted) examples
    explanations: tuple[str, ...] = ()

    kind = "padding"

    @property
    def explanation(self) -> str:
        return "; ".join(self.explanations)

    def explain(self) -> str:
        what = f"{'transposed conv' if self.transposed else 'conv'} k={self.kernel} s={self.stride}" + \
            (f" d={self.dilation}" if self.dilation != 1 else "")
        claim = f"p={self.claimed[0]}" + (f", op={self.claimed[1]}" if self.transposed else "")
        sols = ", ".join((f"p={p}, op={o}" if self.transposed else f"p={p}") for p, o in self.solutions) or "none"
        lines = [f"check padding: {claim} for {what}, goal {self.goal}", f"verdict: {self.verdict}",
                 f"solutions: {sols}"]
        lines += [f"  {g}" for g in self.gives]
        if self.failures:
            lines.append("  e.g. " + ", ".join(f"in {n} -> {o} (wanted {w})" for n, o, w in self.failures))
        if self.explanations:
            lines.append("explanation:")
            lines += [f"  - {e}" for e in self.explanations]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "claimed": {"padding": self.claimed[0], "output_padding": self.claimed[1]},
                "kernel": self.kernel, "stride": self.stride, "dilation": self.dilation,
                "transposed": self.transposed, "goal": self.goal, "ok": self.ok, "verdict": self.verdict,
                "solutions": [[_j(p), _j(o)] for p, o in self.solutions], "gives": list(self.gives),
                "failures": [[n, o, _j(w)] for n, o, w in self.failures], "explanations": list(self.explanations)}


def _parse_padding_claim(claimed: Any) -> tuple[int, int | None]:
    if isinstance(claimed, bool):
        raise ArchcountError(f"expected a padding such as p=1, got {claimed!r}", argument="padding")
    if isinstance(claimed, int):
        return claimed, None
    if isinstance(claimed, (tuple, list)) and len(claimed) in (1, 2) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in claimed):
        return claimed[0], (claimed[1] if len(claimed) == 2 else None)
    if not isinstance(claimed, str):
        raise ArchcountError(f"expected a padding such as p=1, got {claimed!r}", argument="padding")
    text = claimed.strip().strip("()[]")
    p: int | None = None
    op: int | None = None
    for i, tok in enumerate(t for t in re.split(r"[\s,;]+", text) if t):
        m = re.fullmatch(r"(?:(p|pad|padding|op|output_padding)\s*=\s*)?(\d+)", tok, flags=re.I)
        if not m:
            raise ArchcountError(f"cannot read {tok!r} in {claimed!r}; write e.g. p=1 or 'p=1 op=1'",
                                 argument="padding")
        key = (m.group(1) or ("p" if p is None else "op")).lower()
        value = int(m.group(2))
        if key in ("p", "pad", "padding"):
            if p is not None:
                raise ArchcountError(f"padding given twice in {claimed!r}", argument="padding")
            p = value
        else:
            if op is not None:
                raise ArchcountError(f"output_padding given twice in {claimed!r}", argument="padding")
            op = value
    if p is None:
        raise ArchcountError(f"no padding in {claimed!r}; write e.g. p=1", argument="padding")
    return p, op


def _size_expr(out: Any) -> str:
    """``m + 1`` with m = H/s written in H: ``H/2 + 1``."""
    return sp.sstr(sp.expand(out))


def check_padding(claimed: Any, kernel: int, stride: int = 1, *, transposed: bool = False, dilation: int = 1,
                  output_padding: int | None = None, scale: Any = None) -> PaddingCheck:
    """Check a claimed padding: does it give ``out = scale*in`` (default: keep, halve or double) for
    every input size of the class :func:`analysis.shapes.solve_padding` states?

    >>> r = check_padding("p=2", 4, stride=2)
    >>> r.ok, r.gives[0]
    (False, 'H divisible by 2: out = H/2 + 1 (wanted H/2)')
    >>> check_padding("p=1", 4, stride=1).explanations[0]
    'p=1 gives H - 1 for every H: no padding keeps the size for k=4, stride 1 (keeping the size needs \
2p = d(k-1) = 3, which is odd: an even effective kernel 4 with stride 1 cannot keep the size with symmetric padding)'
    """
    from .errors import require_positive_int
    from .shapes import out_len, solve_padding
    kernel = require_positive_int(kernel, "kernel")
    stride = require_positive_int(stride, "stride")
    dilation = require_positive_int(dilation, "dilation")
    p, op = _parse_padding_claim(claimed)
    if output_padding is not None:
        if op is not None and op != output_padding:
            raise ArchcountError(f"output_padding {output_padding} contradicts the claim {claimed!r}",
                                 argument="output_padding")
        op = output_padding
    if op is None:
        op = 0
    if op and not transposed:
        raise ArchcountError("output_padding applies only to transposed convs (pass transposed=True)",
                             argument="output_padding")
    sol = solve_padding(kernel, stride=stride, dilation=dilation, transposed=transposed, scale=scale)
    scale_r = sol.scale
    num, den = sp.fraction(scale_r)
    goal = "out = " + ("" if num == 1 else f"{num}*") + "in" + ("" if den == 1 else f"/{den}")
    ok = (p, op) in [(int(a), int(b)) for a, b in sol.solutions]
    m = sp.Symbol("m", integer=True, nonnegative=True)
    gives: list[str] = []
    failures: list[tuple[int, int, Any]] = []
    explanations: list[str] = []
    kind = "transposed" if transposed else "conv"
    if transposed:
        residues = [(0, 1)]
    else:
        residues = [(r, stride) for r in range(stride)] if stride > 1 else [(0, 1)]
    for r, s in residues:
        n_expr = s * m + r if s > 1 else H
        out = out_len(kind, n_expr, kernel, stride, p, dilation, op)
        out = sp.expand(out)
        hsym = H
        out_h = sp.expand(out.xreplace({m: (hsym - r) / s})) if s > 1 else out
        want = scale_r * hsym
        if s > 1:
            cls = f"H divisible by {s}" if r == 0 else ("odd H" if s == 2 else f"H = {r} mod {s}")
        else:
            cls = "every H"
        good = sp.expand(out_h - want) == 0
        if r == 0:
            gives.append(f"{cls}: out = {sp.sstr(out_h)}" + ("" if good else f" (wanted {sp.sstr(want)})"))
        else:
            gives.append(f"{cls}: out = {sp.sstr(sp.factor(out_h))} ({sp.sstr(want)} is not an integer there)")
    for n in range(1, 65):
        want = scale_r * n
        if not want.is_integer or len(failures) >= 4:
            continue
        got = out_len(kind, n, kernel, stride, p, dilation, op)
        if int(got) != int(want) and (transposed or n + 2 * p >= dilation * (kernel - 1) + 1):
            failures.append((n, int(got), int(want)))
    sols = ", ".join((f"p={a}, op={b}" if transposed else f"p={a}") for a, b in sol.solutions)
    if ok:
        verdict = "right"
        explanations.append(f"holds for {sol.valid_for}")
        if stride > 1 and not transposed:
            odd = [g for g in gives if not g.startswith("H divisible")]
            if odd:
                explanations.append("other sizes are not scaled exactly: " + "; ".join(odd))
    else:
        verdict = "wrong"
        main = gives[0].split(": out = ")[1].split(" (wanted")[0]
        if not sol.solutions:
            explanations.append(f"p={p} gives {main} for every H: no padding {'keeps' if scale_r == 1 else 'gives'} "
                                f"the size for k={kernel}, stride {stride} ({sol.reason})")
        else:
            cls = gives[0].split(":")[0]
            explanations.append(f"p={p}" + (f", op={op}" if transposed else "") + f" gives {main} for {cls}, "
                                f"not {sp.sstr(scale_r * H)}; the right choice: {sols} (valid for {sol.valid_for})")
            for name, value in _padding_rules(kernel, dilation):
                if value == p and all(int(a) != value for a, _ in sol.solutions):
                    explanations.append(f"p={p} is {name}; " + _padding_rule_hint(stride, transposed))
                    break
            if transposed and any(int(a) == p for a, _ in sol.solutions):
                right_op = [int(b) for a, b in sol.solutions if int(a) == p]
                explanations.append(f"the padding is right, but output_padding must be {right_op[0]}")
    return PaddingCheck((p, op), kernel, stride, dilation, transposed, goal, ok, verdict,
                        tuple(sol.solutions), tuple(gives), tuple(failures), tuple(explanations))


def _padding_rules(kernel: int, dilation: int) -> list[tuple[str, int]]:
    e = dilation * (kernel - 1)
    rules = []
    if kernel % 2 == 0:
        rules.append((f"k/2 = {kernel // 2}", kernel // 2))
    rules += [(f"k - 1 = {kernel - 1}", kernel - 1), (f"ceil((k-1)/2) = {-(-e // 2)}", -(-e // 2)),
              (f"floor((k-1)/2) = {e // 2}", e // 2), ("0 (no padding)", 0)]
    return rules


def _padding_rule_hint(stride: int, transposed: bool) -> str:
    if transposed:
        return "for a stride-s transposed conv the rule is 2p = d(k-1) + 1 - s + op, 0 <= op < s"
    if stride == 1:
        return "keeping the size needs p = d(k-1)/2"
    return f"a stride-{stride} conv gives in/{stride} for ceil((d(k-1)+1-s)/2) <= p <= floor(d(k-1)/2)"


# ================================================================================ scaling claims

@dataclass(frozen=True)
class ScalingCheck:
    """A claim about the input size scaled by ``factor`` (e.g. 'connections at 64 = 4x those at 32')."""

    claim: str
    model: str
    quantity: str
    factor: int
    requested: str | None
    ok: bool
    verdict: str
    ratio: Any                               #: the actual ratio under ``reference``
    reference: str
    holds_under: tuple[str, ...] = ()
    fails_under: tuple[tuple[str, Any], ...] = ()   #: (convention, actual ratio)
    explanations: tuple[str, ...] = ()
    formula_check: CheckResult | None = None
    assumptions: tuple[str, ...] = ()

    kind = "scaled"

    @property
    def explanation(self) -> str:
        return "; ".join(self.explanations)

    def explain(self) -> str:
        lines = [f"check scaling: {self.model} {self.quantity} with the input {self.factor}x larger: {self.claim}",
                 f"verdict: {self.verdict}",
                 f"actual ratio ({self.reference}): {_ratio_text(self.ratio)}"]
        if self.holds_under:
            lines.append("holds under: " + ", ".join(self.holds_under[:8]) +
                         (f" ... ({len(self.holds_under)} in all)" if len(self.holds_under) > 8 else ""))
        if self.fails_under:
            lines.append("fails under: " + ", ".join(f"{c} (ratio {_ratio_text(r)})" for c, r in self.fails_under[:6]) +
                         (f" ... ({len(self.fails_under)} in all)" if len(self.fails_under) > 6 else ""))
        if self.explanations:
            lines.append("explanation:")
            lines += [f"  - {e}" for e in self.explanations]
        if self.formula_check is not None:
            lines += ["", self.formula_check.explain()]
        if self.assumptions:
            lines.append("assumptions: " + "; ".join(self.assumptions))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "claim": self.claim, "model": self.model, "quantity": self.quantity,
                "factor": self.factor, "requested": self.requested, "ok": self.ok, "verdict": self.verdict,
                "ratio": _j(self.ratio), "reference": self.reference, "holds_under": list(self.holds_under),
                "fails_under": [[c, _j(r)] for c, r in self.fails_under], "explanations": list(self.explanations),
                "formula_check": self.formula_check.to_dict() if self.formula_check else None,
                "assumptions": list(self.assumptions)}


def _ratio_text(r: Any) -> str:
    return r if isinstance(r, str) else sp.sstr(r)


_RATIO = re.compile(r"^\s*(?:[x×*]\s*)?(\d+(?:\.\d+)?(?:/\d+)?)\s*(?:[x×]|times)?\s*$", re.I)


def _parse_ratio(claim: Any) -> sp.Rational | None:
    if isinstance(claim, bool):
        return None
    if isinstance(claim, (int, Fraction)):
        return sp.Rational(claim)
    if isinstance(claim, str):
        m = _RATIO.match(claim)
        if m:
            return sp.Rational(Fraction(m.group(1)))
    return None


def check_scaled(claim: Any, model: Any, quantity: str, *, factor: int = 2, input_size: Any = None,
                 convention: Any = None, switches: Any = None, claim_kind: str = "auto",
                 **hparams: Any) -> ScalingCheck:
    """Check a claim about the ``quantity`` when the input's H and W are multiplied by ``factor``.

    ``claim`` is a ratio (``4``, ``"4x"``, ``"x4"``: the quantity at the larger size is that many times
    the one at the original size) or a formula/number for the quantity at the larger size
    (``claim_kind="value"``, or any claim with symbols); a value claim needs ``input_size`` (the original
    size; default: the model's default size).  ``ok`` follows :func:`check`: under the requested
    convention, or under some preset when none is requested.

    >>> r = check_scaled("4x", "unet", "connections", kernel=3)
    >>> r.ok, r.holds_under[:3]
    (True, ('weighted', 'all-layers', 'parameters'))
    """
    q = _quantity(quantity)
    from .errors import require_positive_int
    factor = require_positive_int(factor, "factor", minimum=2)
    requested = _convention(convention, switches)
    ratio_claim = None if claim_kind == "value" else _parse_ratio(claim)
    if claim_kind == "ratio" and ratio_claim is None:
        raise ArchcountError(f"expected a ratio such as 4 or 4x, got {claim!r}", argument="claim")
    hp = _hparams(hparams)
    name, defaults, default_size, valid, _ = _model_info(model)
    sizes = _sizes(input_size)
    assumptions: list[str] = []
    claim_text = claim if isinstance(claim, str) else sp.sstr(claim)

    if ratio_claim is None:
        # a value at the scaled size
        if sizes is None:
            sizes = default_size
            assumptions.append(f"original size {sizes[0]}x{sizes[1]} (the model's default; pass input_size)")
        big = (sizes[0] * factor, sizes[1] * factor)
        res = check(claim, model, q, input_size=big, convention=requested, **hp)
        ref = requested.label if requested is not None else res.reference
        conv = conv_from_label(ref)
        ctx_small = _context(model, dict(res.hparams), sizes)
        small_total = ctx_small.simple.under(conv).total(q)
        ctx_big = _context(model, dict(res.hparams), big)
        big_total = ctx_big.simple.under(conv).total(q)
        ratio = _ratio(big_total, small_total, ctx_small.fp)
        explanations = [e for e in res.explanations if not e.startswith("the whole formula is")]
        if not res.ok:
            for r in (factor ** 2, factor, factor ** 3, 1):
                if sp.expand(res.given - r * sp.sympify(small_total)) == 0 and r != ratio:
                    why = " but weights do not depend on the input size" if q == "weights" else ""
                    explanations.insert(0, f"the claim is {r} x the {q} at {sizes[0]}x{sizes[1]},{why} "
                                           f"(the actual ratio is {sp.sstr(ratio)})")
                    break
        return ScalingCheck(claim_text, name, q, factor, requested.label if requested else None, res.ok,
                            res.verdict, ratio, ref, (), (), tuple(explanations), res, tuple(assumptions))

    # a ratio claim
    ctx = _context(model, hp, sizes)
    ctx_big = _context(model, hp, (sizes[0] * factor, sizes[1] * factor)) if sizes else None
    holds: list[str] = []
    fails: list[tuple[str, Any]] = []
    ratios: dict[str, Any] = {}
    unavailable = 0
    big_totals = {c.label: t for c, _, t, _ in ctx_big.conventions(q)} if ctx_big is not None else {}
    for conv, exact, simple, why in ctx.conventions(q):
        if why is not None:
            unavailable += 1
            continue
        before = sp.sympify(simple)
        if ctx_big is not None:
            after = sp.sympify(big_totals.get(conv.label))
        else:
            after = sp.expand(before.xreplace({H: factor * H, W: factor * W}))
        ratio = _ratio(after, before, ctx.fp)
        ratios[conv.label] = ratio
        (holds.append(conv.label) if sp.expand(after - ratio_claim * before) == 0 and before != 0
         else fails.append((conv.label, ratio)))
    if requested is not None:
        ref_label = next((c.label for c, *_ in ctx.conventions(q) if _same(c, requested)), requested.label)
        if ref_label not in ratios:
            raise ArchcountError(f"{requested.label} cannot be evaluated here; fix the kernel", argument="convention")
        ok = ref_label in holds
    else:
        ok = any(label in PRESETS for label in holds)
        pres_fail = [lab for lab in PRESETS if lab not in holds]
        ref_label = next((lab for lab in PRESETS if lab in holds), None) if ok else pres_fail[0]
    ratio = ratios[ref_label]
    explanations: list[str] = []
    conv = conv_from_label(ref_label)
    if not ok:
        explanations += _scaling_explanations(ctx, ctx_big, q, conv, ratio_claim, factor)
        held = [h for h in holds]
        if held:
            explanations.append(f"it holds under {', '.join(held[:4])}" + (" ..." if len(held) > 4 else ""))
    else:
        other = [c for c, r in fails if "padding_taps=exclude" in c or "transposed=exact" in c]
        if other:
            explanations.append(f"holds under {ref_label}; not exactly under {other[0]} and {len(other) - 1} other "
                                f"exact conventions (the ratio is not constant: border terms)" if len(other) > 1 else
                                f"holds under {ref_label}; not exactly under {other[0]} (border terms)")
    if unavailable and "kernel" not in hp:
        assumptions.append(f"{unavailable} conventions (padding_taps=exclude, transposed=exact) need a numeric "
                           f"kernel and were not compared")
    verdict = "right" if ok else "wrong"
    return ScalingCheck(claim_text, name, q, factor, requested.label if requested else None, ok, verdict, ratio,
                        ref_label, tuple(holds), tuple(fails), tuple(explanations), None, tuple(assumptions))


def _ratio(after: Any, before: Any, fp: _Fingerprinter) -> Any:
    """after/before when it is a constant; otherwise the string 'not constant'."""
    if before == 0:
        return sp.nan if after != 0 else sp.Integer(1)
    fa, fb = fp(sp.sympify(after)), fp(sp.sympify(before))
    values = {a / b for a, b in zip(fa, fb) if b != 0}
    if len(values) == 1:
        r = values.pop()
        cand = sp.Rational(r.numerator, r.denominator)
        if sp.expand(sp.sympify(after) - cand * sp.sympify(before)) == 0:
            return cand
    return "not constant"


def _scaling_explanations(ctx: _Context, ctx_big: _Context | None, q: str, conv: Convention, claim: Any,
                          factor: int) -> list[str]:
    table = ctx.simple.under(conv)
    big_rows = ctx_big.simple.under(conv).rows if ctx_big is not None else None
    per_row = []
    for i, r in enumerate(table.rows):
        before = sp.sympify(r.value(q))
        if before == 0:
            continue
        after = sp.sympify(big_rows[i].value(q)) if big_rows is not None else \
            sp.expand(before.xreplace({H: factor * H, W: factor * W}))
        per_row.append((r.path, _ratio(after, before, ctx.fp), sp.expand(after - claim * before)))
    if not per_row:
        return [f"the {q} are 0 under {conv.label}"]
    ratios = {rt for _, rt, _ in per_row}
    if ratios == {1}:
        return [f"{q} do not depend on the input size: the ratio is 1, not {sp.sstr(claim)}"]
    out = []
    bad = [(p, rt, d) for p, rt, d in per_row if d != 0]
    const = [(p, rt) for p, rt, _ in bad if rt != "not constant"]
    border = [(p, d) for p, rt, d in bad if rt == "not constant"]
    if const:
        groups: dict[Any, list[str]] = {}
        for p, rt in const:
            groups.setdefault(rt, []).append(p)
        for rt, paths in groups.items():
            what = " (they do not depend on the input size)" if rt == 1 else ""
            out.append(f"the {q} of {', '.join(paths)} scale by {sp.sstr(rt)}, not {sp.sstr(claim)}{what}")
    if border:
        out.append(f"the {q} of {', '.join(p for p, _ in border)} are not exactly proportional to the area "
                   f"(border terms, e.g. padding taps excluded): they change by {sp.sstr(claim)}x plus "
                   f"{formula_str(border[0][1])} for {border[0][0]}")
    return out


__all__ = ["CheckResult", "PaddingCheck", "ScalingCheck", "ShapeCheck", "TermRow", "check", "check_padding",
           "check_scaled", "check_shape", "formula_str", "mono_str"]
