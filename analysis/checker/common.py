"""What every check shares: argument validation, formula reading, term helpers, fingerprints and
the cached count tables of a model (its "context").

>>> formula_str(9 * NIC * NF - 2 * NC + sp.Rational(5, 8) * NF * H * W)
'5*NF*H*W/8 + 9*NIC*NF - 2*NC'
>>> sizes("32x48")
(32, 48)
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Sequence

import sympy as sp

from ..conventions import PRESETS, Convention, all_conventions, get_convention
from ..errors import ArchcountError
from ..symbols import ALIASES, HPARAM_SYMBOLS, NC, NF, NIC, STANDARD, H, W, k

QUANTITIES = ("weights", "outputs", "connections")
Q_ALIASES = {"weight": "weights", "params": "weights", "parameters": "weights", "output": "outputs",
             "units": "outputs", "connection": "connections", "macs": "connections"}
#: switches that can change each quantity (for describing conventions briefly)
RELEVANT_SWITCHES = {"weights": ("bias", "batchnorm"),
                     "outputs": ("pooling", "batchnorm"),
                     "connections": ("pooling", "batchnorm", "padding_taps", "transposed")}
HPARAM_ALIASES = {"k": "kernel", "K": "kernel", "kernel_size": "kernel",
                  "NIC": "num_in_channels", "nic": "num_in_channels", "N_IC": "num_in_channels",
                  "NF": "num_filters", "nf": "num_filters", "N_F": "num_filters",
                  "NC": "num_colours", "nc": "num_colours", "N_C": "num_colours", "num_colors": "num_colours"}
SYMBOL_HPARAM = {sym: name for name, sym in HPARAM_SYMBOLS.items()}
CHANNELS = (NIC, NF, NC)
CHANNEL_HPARAMS = ("num_in_channels", "num_filters", "num_colours")
ORDER = {s: i for i, s in enumerate(STANDARD)}

#: Bounds on what a user types (sizes and channel counts are handled in closed form up to these).
MAX_VALUE = 10 ** 15           #: largest input size, channel count or hyperparameter
MAX_KERNEL = 64                #: largest kernel a count is built for (the capture builds the model)
EXACT_SIZE_MAX = 2048          #: larger numeric sizes: the symbolic table with the size substituted
_SYMBOL_HPARAM_NAME = {"kernel": "k", "num_in_channels": "NIC", "num_filters": "NF", "num_colours": "NC"}


# ============================================================================================ arguments

def quantity(value: Any) -> str:
    """``weights``, ``outputs`` or ``connections`` (aliases such as ``params`` accepted)."""
    if not isinstance(value, str):
        raise ArchcountError(f"must be weights, outputs or connections, got {value!r}", argument="quantity")
    q = value.strip().lower()
    q = Q_ALIASES.get(q, q)
    if q not in QUANTITIES:
        raise ArchcountError(f"unknown quantity {value!r}; valid: weights, outputs, connections",
                             argument="quantity")
    return q


def convention(value: Any, switches: Any = None) -> Convention | None:
    """None, a Convention, a preset name, or a label such as ``weighted[padding_taps=exclude]``."""
    extra = switch_list(switches)
    if value is None and not extra:
        return None
    if value is not None and not isinstance(value, (str, Convention)):
        raise ArchcountError(f"must be a preset name such as weighted, a label such as "
                             f"'weighted[bias=true]' or a Convention, got {type(value).__name__} {value!r}",
                             argument="convention")
    if isinstance(value, str) and "[" in value:
        name, _, rest = value.partition("[")
        if not rest.endswith("]"):
            raise ArchcountError(f"cannot read convention {value!r}; write e.g. weighted[bias=true]",
                                 argument="convention")
        inner = [p for p in rest[:-1].split(",") if p.strip()]
        return get_convention(name, inner + extra)
    return get_convention(value or "weighted", extra)


def switch_list(switches: Any) -> list[str]:
    """``None``, ``"bias=true"``, ``["bias=true", ...]`` or ``{"bias": True}`` as a list of ``NAME=VALUE``."""
    if switches is None or (isinstance(switches, (list, tuple, dict, str)) and not switches):
        return []
    if isinstance(switches, Mapping):
        return [f"{key}={v}" for key, v in switches.items()]
    if isinstance(switches, str):
        return [switches]
    if isinstance(switches, (list, tuple)) and all(isinstance(s, str) for s in switches):
        return list(switches)
    raise ArchcountError(f"must be NAME=VALUE text, a list of such texts or a mapping such as "
                         f"{{'bias': True}}, got {type(switches).__name__} {switches!r}", argument="switches")


def bounded_int(value: Any, argument: str, minimum: int = 1, maximum: int = MAX_VALUE) -> int:
    """An integer in ``[minimum, maximum]`` (digit strings accepted), else an error naming ``argument``."""
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,20}\s*", value):
        value = int(value)
    if isinstance(value, sp.Integer):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchcountError(f"must be an integer, got {_short(value)}", argument=argument)
    if value < minimum or value > maximum:
        raise ArchcountError(f"must be an integer from {minimum} to {maximum:,}, got {_short(value)}",
                             argument=argument)
    return value


def _short(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_symbolic_kernel(value: Any) -> bool:
    """``"k"``/``"K"``, the symbol k: the kernel is kept symbolic (no kernel assumed)."""
    return (isinstance(value, str) and value.strip() in ("k", "K")) or value is k


def hparams(values: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Validated hyperparameters (aliases resolved) and whether the kernel was asked to stay symbolic."""
    out: dict[str, Any] = {}
    symbolic = False
    for name, value in values.items():
        key = HPARAM_ALIASES.get(name, name)
        if key == "kernel" and is_symbolic_kernel(value):
            symbolic = True
            continue
        maximum = MAX_KERNEL if key == "kernel" else MAX_VALUE
        value = bounded_int(value, name, 1, maximum)
        if key in out and out[key] != value:
            raise ArchcountError(f"given twice with different values ({out[key]} and {value})", argument=key)
        out[key] = value
    if symbolic and "kernel" in out:
        raise ArchcountError(f"given both as k (symbolic) and as {out['kernel']}", argument="kernel")
    return out, symbolic


def sizes(input_size: Any) -> tuple[int, int] | None:
    """None, N, (H, W), "32" or "32x48"; each at most :data:`MAX_VALUE`."""
    if input_size is None:
        return None
    if isinstance(input_size, str):
        parts = [p.strip() for p in re.split(r"[x×X,]", input_size.strip())]
        if all(re.fullmatch(r"\d+", p) for p in parts) and any(len(p) > 20 for p in parts):
            raise ArchcountError(f"must be at most 10^18, got {_short(input_size)}", argument="input_size")
        if not all(re.fullmatch(r"\d{1,20}", p) for p in parts) or len(parts) not in (1, 2):
            raise ArchcountError(f"expected N or HxW with integers, got {_short(input_size)}", argument="input_size")
        input_size = tuple(int(p) for p in parts)
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if not isinstance(input_size, (tuple, list)):
        raise ArchcountError(f"expected N or (H, W), got {_short(input_size)}", argument="input_size")
    values = tuple(input_size)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise ArchcountError(f"expected N or (H, W), got {_short(input_size)}", argument="input_size")
    h, w = (bounded_int(v, "input_size") for v in values)
    return (h, w)


# ============================================================================================ formulas

ALLOWED_FUNCS = (sp.floor, sp.ceiling, sp.Mod, sp.Min, sp.Max)


def has_rounding(expr: Any) -> bool:
    return isinstance(expr, sp.Basic) and any(expr.has(f) for f in ALLOWED_FUNCS)


def read_value(formula: Any, argument: str = "formula") -> tuple[str, sp.Expr] | None:
    """A number or sympy expression passed in (not text), within the parser's limits; None for text."""
    from ..parsing import MAX_NUMBER_BITS, check_limits
    if isinstance(formula, bool):
        raise ArchcountError(f"expected a formula, got {formula!r}", argument=argument)
    if isinstance(formula, int):
        if formula.bit_length() > MAX_NUMBER_BITS:
            raise ArchcountError(f"the number has more than {MAX_NUMBER_BITS} bits ({_short(formula)})",
                                 argument=argument)
        return str(formula), sp.Integer(formula)
    if isinstance(formula, Fraction):
        if max(formula.numerator.bit_length(), formula.denominator.bit_length()) > MAX_NUMBER_BITS:
            raise ArchcountError(f"the number has more than {MAX_NUMBER_BITS} bits", argument=argument)
        return str(formula), sp.Rational(formula.numerator, formula.denominator)
    if isinstance(formula, float):
        if not math.isfinite(formula):
            raise ArchcountError(f"not a finite number: {formula!r}", argument=argument)
        return repr(formula), sp.Rational(Fraction(formula).limit_denominator(10**9))
    if isinstance(formula, sp.Basic):
        try:
            check_limits(formula)
        except ArchcountError as exc:
            raise exc.with_context(argument=argument) from None
        return sp.sstr(formula), formula
    if isinstance(formula, str):
        return None
    raise ArchcountError(f"expected a formula (text or sympy expression), got {type(formula).__name__}",
                         argument=argument)


def standardize(expr: Any, extra: Mapping[str, sp.Symbol] | None, argument: str,
                unknowns: Iterable[sp.Symbol] = ()) -> sp.Expr:
    """The expression over archcount's symbols: aliases replaced, only floor/ceil/mod/min/max allowed."""
    expr = sp.sympify(expr) if not isinstance(expr, sp.Basic) else expr
    if not isinstance(expr, sp.Expr):
        raise ArchcountError(f"expected an arithmetic formula, got {type(expr).__name__}", argument=argument)
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise ArchcountError("the formula is not finite (division by zero?)", argument=argument)
    known = dict(ALIASES)
    known.update(extra or {})
    keep = set(unknowns)
    subs = {}
    for sym in expr.free_symbols:
        if sym in keep:
            continue
        target = known.get(sym.name)
        if target is None:
            raise ArchcountError(f"unknown symbol {sym.name!r}; known: NIC, NF, NC, k, H, W"
                                 + (", " + ", ".join(sorted(extra)) if extra else ""), argument=argument)
        if target is not sym:
            subs[sym] = target
    if subs:
        expr = expr.xreplace(subs)
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Function, sp.Min, sp.Max)) and not isinstance(node, ALLOWED_FUNCS):
            raise ArchcountError(f"function {type(node).__name__} is not allowed in a count formula "
                                 f"(only floor, ceiling, mod, min, max)", argument=argument)
        if isinstance(node, sp.Float):
            expr = sp.nsimplify(expr, rational=True)
            break
    return expr


def read_formula(formula: Any, extra: Mapping[str, sp.Symbol] | None = None,
                 argument: str = "formula") -> tuple[str, sp.Expr]:
    """One formula (text or sympy) as written and as a sympy expression over the standard symbols."""
    got = read_value(formula, argument)
    if got is not None:
        text, expr = got
        return text, standardize(expr, extra, argument)
    from ..parsing import parse_formula
    try:
        expr = parse_formula(formula, symbols=dict(extra) if extra else None)
    except ArchcountError as exc:
        raise exc.with_context(argument=argument) from None
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise ArchcountError(f"formula too large or too deeply nested ({type(exc).__name__})",
                             argument=argument) from None
    return formula, standardize(expr, extra, argument)


def terms(expr: Any) -> dict[sp.Expr, sp.Expr]:
    """{monomial: coefficient} of the expanded expression (the monomial ``1`` for constants)."""
    e = sp.expand(sp.sympify(expr))
    if e == 0:
        return {}
    return {m: c for m, c in e.as_coefficients_dict().items() if c != 0}


def mono_key(m: sp.Expr) -> tuple:
    powers = m.as_powers_dict() if m != 1 else {}
    degree = sum(int(e) for b, e in powers.items() if b.is_Symbol and e.is_Integer)
    return (-degree, [(ORDER.get(b, 99), str(b), -int(e) if e.is_Integer else 0) for b, e in sorted(
        powers.items(), key=lambda be: (ORDER.get(be[0], 99), str(be[0])))])


def mono_str(m: sp.Expr) -> str:
    """A monomial in the order NIC, NF, NC, k, H, W: ``NF*NC*k^2``; ``1`` for the constant."""
    if m == 1:
        return "1"
    parts = []
    for base, e in sorted(m.as_powers_dict().items(), key=lambda be: (ORDER.get(be[0], 99), str(be[0]))):
        b = sp.sstr(base)
        if not (base.is_Symbol or base.is_Function):
            b = f"({b})"
        parts.append(b if e == 1 else f"{b}^{sp.sstr(e)}")
    return "*".join(parts)


def formula_str(expr: Any) -> str:
    """A polynomial written term by term, highest degree first: ``9*NIC*NF + 36*NF^2 - 2*NC``."""
    if isinstance(expr, (int, Fraction)):
        expr = sp.Rational(expr)
    if not isinstance(expr, sp.Basic):
        return str(expr)
    ts = terms(expr)
    if not ts:
        return "0"
    pieces = []
    for m in sorted(ts, key=mono_key):
        c = ts[m]
        sign = "-" if c < 0 else "+"
        a = -c if c < 0 else c
        if m == 1:
            body = sp.sstr(a)
        elif a == 1:
            body = mono_str(m)
        elif a.is_Integer:
            body = f"{sp.sstr(a)}*{mono_str(m)}"
        else:
            p, q = sp.fraction(a)
            body = (mono_str(m) if p == 1 else f"{p}*{mono_str(m)}") + f"/{q}"
        pieces.append((sign, body))
    out = ("-" if pieces[0][0] == "-" else "") + pieces[0][1]
    for sign, body in pieces[1:]:
        out += f" {sign} {body}"
    return out


def jsonable(v: Any) -> Any:
    """A value for JSON: ints, strings, formula text."""
    if v is None or isinstance(v, (bool, int, str, float)):
        return v
    if isinstance(v, Fraction):
        return int(v) if v.denominator == 1 else str(v)
    if isinstance(v, sp.Basic):
        if v.is_Integer:
            return int(v)
        return formula_str(v) if not v.is_number else sp.sstr(v)
    if isinstance(v, (tuple, list)):
        return [jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(key): jsonable(x) for key, x in v.items()}
    return str(v)


# ============================================================================================ conventions

def conv_from_label(label: str) -> Convention:
    """The convention of a label such as ``weighted[bias=true]``."""
    return get_convention(label.split("[")[0], label_switches(label))


def label_switches(label: str) -> list[str]:
    if "[" not in label:
        return []
    return [p for p in label.split("[", 1)[1].rstrip("]").split(",") if p]


def summarize_matches(labels: Sequence[str], quantity: str = "weights") -> str:
    """The presets among ``labels`` (else the label changing the fewest switches), and how many more.

    All the labels give the same total (the one checked), so the rest are equivalent here.

    >>> summarize_matches(["weighted", "all-layers", "weighted[transposed=exact]"])
    'weighted, all-layers (and 1 equivalent switch combination)'
    """
    shown = [lab for lab in labels if lab in PRESETS]
    if not shown and labels:
        shown = [simplest(labels)]
    rest = len(labels) - len(shown)
    return ", ".join(shown) + (f" (and {rest} equivalent switch combination{'s' if rest > 1 else ''})" if rest else "")


def simplest(labels: Sequence[str]) -> str:
    """The preset among ``labels``, else the label that changes the fewest switches (first on ties)."""
    for lab in labels:
        if lab in PRESETS:
            return lab
    return min(labels, key=lambda lab: (len(conv_from_label(lab).changed), list(labels).index(lab)))


def describe_switches(conv: Convention, q: str) -> str:
    words = {
        "bias": lambda v: "biases counted" if v else "biases ignored",
        "batchnorm": lambda v: {"ignore": "BatchNorm ignored", "affine": "BatchNorm affine weights counted",
                                "layer": "BatchNorm counted as a layer"}[v],
        "pooling": lambda v: "pooling/upsampling counted" if v else "pooling/upsampling ignored",
        "padding_taps": lambda v: "padding taps included" if v == "include" else "padding taps excluded",
        "transposed": lambda v: f"transposed convs: {v}",
    }
    return ", ".join(words[s](getattr(conv, s)) for s in RELEVANT_SWITCHES[q])


def same(a: Convention, b: Convention) -> bool:
    return a.switches == b.switches


def is_preset(conv: Convention) -> bool:
    return conv.label in PRESETS


# ======================================================================= fingerprints (fast identity tests)

_PRIMES = (3, 7, 11, 5, 64 * 13, 64 * 17), (2, 13, 5, 9, 64 * 19, 64 * 23), (5, 3, 17, 3, 64 * 29, 64 * 31)
_EXTRA_VALUES = (19, 23, 29, 31, 37, 41, 43, 47)


def _points(symbols: Iterable[sp.Symbol]) -> list[dict[sp.Symbol, sp.Integer]]:
    extra = sorted((s for s in symbols if s not in ORDER), key=str)
    pts = []
    for j, values in enumerate(_PRIMES):
        pt = {s: sp.Integer(v) for s, v in zip(STANDARD, values)}
        for i, s in enumerate(extra):
            pt[s] = sp.Integer(_EXTRA_VALUES[(i + 3 * j) % len(_EXTRA_VALUES)])
        pts.append(pt)
    return pts


class Fingerprinter:
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
                self.cache.clear()
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


def is_zero(fp: tuple) -> bool:
    return all(x == 0 for x in fp)


# ======================================================================================= count tables

@dataclass
class Context:
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
    fp: Fingerprinter
    notes: tuple[str, ...] = ()   #: how the table was obtained, when it matters (closed forms)
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

    def select(self, conv: Convention, q: str) -> tuple[Any, Any]:
        """(exact, simplified) total under ``conv``."""
        for c, exact, simple, _ in self.conventions(q):
            if same(c, conv):
                return exact, simple
        raise KeyError(conv)  # pragma: no cover

    def reference(self, conv: Convention) -> Any:
        """The simplified table under ``conv`` (cached)."""
        key = ("table", tuple(conv.switches.items()))
        if key not in self.totals:
            self.totals[key] = self.simple.under(conv)
        return self.totals[key]


def model_info(model: Any) -> tuple[str, Mapping[str, Any], tuple[int, int], Callable[[int], bool], int]:
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        return (model, dict(spec.defaults), tuple(spec.fixed_size or (32, 32)), spec.valid_size,
                spec.size_multiple)
    name = getattr(model, "model", None) or getattr(model, "__name__", None) or type(model).__name__
    return (str(name), {}, (32, 32), lambda s: s >= 1, 1)


@functools.lru_cache(maxsize=48)
def _cached_base(model: str, hp: tuple, size: tuple | None) -> Context:
    return _build(model, dict(hp), size)


@functools.lru_cache(maxsize=256)
def _cached_channels(model: str, hp: tuple, size: tuple | None, channels: tuple) -> Context:
    return _with_channels(_cached_base(model, hp, size), dict(channels))


def cache_clear() -> None:
    """Forget every cached table (benchmarks use it)."""
    _cached_base.cache_clear()
    _cached_channels.cache_clear()


def context(model: Any, hp: Mapping[str, Any], size: tuple | None) -> Context:
    """The tables of ``model`` for the hyperparameters ``hp`` at ``size`` (None: symbolic H, W).

    Channel counts are substituted into the symbolic table (never built into a model), so any
    channel count is fast; a numeric size above :data:`EXACT_SIZE_MAX` is substituted into the
    symbolic table's closed forms.
    """
    if isinstance(model, str):
        channels = tuple(sorted((key, v) for key, v in hp.items() if key in CHANNEL_HPARAMS))
        rest = tuple(sorted((key, v) for key, v in hp.items() if key not in CHANNEL_HPARAMS))
        try:
            if channels:
                return _cached_channels(model, rest, size, channels)
            return _cached_base(model, rest, size)
        except TypeError:  # unhashable hparam values
            pass
    return _build(model, dict(hp), size)


def _with_channels(base: Context, channels: Mapping[str, int]) -> Context:
    values = {_SYMBOL_HPARAM_NAME[key]: v for key, v in channels.items()}
    exact = base.exact.substitute(**values)
    simple = exact if base.simple is base.exact else base.simple.substitute(**values)
    syms = set(getattr(exact, "symbols", {}).values())
    return Context(base.model, exact, simple, base.multiple, base.rule_multiple, base.numeric_size,
                   base.defaults, base.default_size, base.valid_size, Fingerprinter(syms), base.notes)


def _build(model: Any, hp: dict[str, Any], size: tuple | None) -> Context:
    from ..table import CountTable
    name, defaults, default_size, valid, rule = model_info(model)
    notes: tuple[str, ...] = ()
    if isinstance(model, CountTable):
        table = model
        values = {_SYMBOL_HPARAM_NAME.get(key, key): v for key, v in hp.items()}
        if size is not None:
            values.update(H=size[0], W=size[1])
        if values:
            table = table.substitute(**values)
    else:
        from ..counting import count, input_sizes
        if size is not None and max(size) > EXACT_SIZE_MAX:
            if isinstance(model, str):
                import models as zoo
                input_sizes(size, spec=zoo.spec(model), model=name)   # the model's size rule
            table = _closed_form(count(model, input_size=(H, W), **hp), size, name)
            notes = (f"sizes above {EXACT_SIZE_MAX}: the exact closed forms in H, W evaluated at "
                     f"{size[0]}x{size[1]}",)
        else:
            table = count(model, input_size=size if size is not None else (H, W), **hp)
    from ..simplify import auto_multiple
    multiple = 1 if size is not None else auto_multiple(table)
    simple = table.simplified(multiple) if multiple > 1 else table
    syms = set(getattr(table, "symbols", {}).values())
    return Context(name, table, simple, multiple, rule, size is not None, defaults, default_size, valid,
                   Fingerprinter(syms), notes)


_HOLDS_FOR = re.compile(r"holds for spatial sizes >= (\d+)")


def _closed_form(table: Any, size: tuple[int, int], name: str) -> Any:
    """``table`` (symbolic in H, W) at ``size``: exact where its closed forms hold (sizes >= n_min)."""
    for a in table.assumptions:
        m = _HOLDS_FOR.search(a)
        if m and min(size) < int(m.group(1)):  # pragma: no cover - n_min is far below EXACT_SIZE_MAX
            raise ArchcountError(f"the closed form needs sizes >= {m.group(1)}", argument="input_size", model=name)
    out = table.substitute(H=size[0], W=size[1])
    for r in out.rows:
        for d in r.out_shape:
            if isinstance(d, sp.Basic) and d.is_number and d < 1 or isinstance(d, int) and d < 1:
                raise ArchcountError(f"the input {size[0]}x{size[1]} gives layer {r.path} an empty output",
                                     argument="input_size", model=name)
    return out


__all__ = ["CHANNELS", "Context", "Fingerprinter", "QUANTITIES", "cache_clear", "context", "conv_from_label",
           "convention", "formula_str", "hparams", "jsonable", "mono_str", "quantity", "read_formula", "sizes",
           "summarize_matches", "switch_list", "terms"]
