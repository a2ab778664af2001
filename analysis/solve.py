"""``solve_for()``: the value of a symbol that makes a model's total equal a target."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

import sympy as sp

from .bounds import parse_exact_number
from .conventions import Convention
from .errors import ArchcountError


#: The largest target accepted (in absolute value), far above any total of a model
#: whose sizes are at most 10^18, and small enough for every root to be compared exactly.
MAX_TARGET = 10 ** 100


@dataclass(frozen=True)
class SolveResult:
    """The value of a symbol that makes a total equal a target.

    ``ok`` is False when no positive value exists (``reason`` says why); ``exact`` when an
    integer value gives the target exactly.
    """

    symbol: sp.Symbol
    quantity: str
    equation: sp.Eq
    roots: tuple[Any, ...]                 #: exact positive real roots
    candidates: tuple[tuple[int, Any, Any], ...]  #: (integer value, total there, total - target)
    target: Any
    reason: str | None = None              #: why there is no solution, when there is none

    @property
    def best(self) -> int | None:
        return min(self.candidates, key=lambda c: (abs(c[2]), c[0]))[0] if self.candidates else None

    @property
    def ok(self) -> bool:
        """A positive integer value exists near an exact root."""
        return bool(self.candidates)

    @property
    def exact(self) -> bool:
        """Some integer value gives the target exactly."""
        return any(c[2] == 0 for c in self.candidates)

    @property
    def roots_float(self) -> tuple[float, ...]:
        """The roots as floats (the real part, where sympy writes a real root with I)."""
        return tuple(float(sp.re(sp.N(r, 30))) for r in self.roots)

    def to_dict(self) -> dict[str, Any]:
        j = lambda v: int(v) if isinstance(v, (int, sp.Integer)) else sp.sstr(v)  # noqa: E731
        return {"symbol": str(self.symbol), "quantity": self.quantity, "equation": sp.sstr(self.equation),
                "target": j(self.target), "ok": self.ok, "exact": self.exact, "reason": self.reason,
                "roots": [sp.sstr(r) for r in self.roots],
                "roots_float": list(self.roots_float),
                "candidates": [{"value": v, "total": j(t), "difference": j(d)} for v, t, d in self.candidates],
                "best": self.best}


def solve_for(symbol: str | sp.Symbol, model_a: Any, quantity: str, target: Any, *,
              convention: str | Convention = "weighted", switches: Any = None, input_size: Any = None,
              target_hparams: Mapping[str, Any] | None = None, **hparams: Any) -> SolveResult:
    """Find the value of ``symbol`` making ``model_a``'s total equal ``target``.

    ``target`` is a number, a sympy expression, or another model (zoo name) whose total at its
    default hyperparameters is used.  Other hyperparameters are fixed at the model's defaults.

    >>> r = solve_for("N", "mnist_global_pool", "weights", "mnist_fixed", convention="parameters")
    >>> r.best, [c[0] for c in r.candidates]
    (81, [81, 82])
    """
    from .counting import count
    from .symbols import HPARAM_SYMBOLS, positive_int_symbol
    from .table import _q
    q = _q(quantity)
    # the target first: it is cheap to check, and a bad one is named before any counting
    other_name: str | None = None
    if isinstance(target, str) and not _NUMERIC_START.match(target.strip()):
        other_name = _target_model(target)
    else:
        target_value = _target_number(target)
    name = str(symbol)
    std = {str(s): key for key, s in HPARAM_SYMBOLS.items()}
    spec_defaults = _defaults(model_a)
    if name in std:
        hp_name = std[name]
        sym = HPARAM_SYMBOLS[hp_name]
        lift: dict[str, Any] = {}
    else:
        hp_name = name
        sym = symbol if isinstance(symbol, sp.Symbol) else positive_int_symbol(name)
        lift = {hp_name: sym}
    if hp_name not in spec_defaults:
        takes = ", ".join(f"{key} ({HPARAM_SYMBOLS[key]})" if key in HPARAM_SYMBOLS else key for key in spec_defaults)
        raise ArchcountError(f"{name} is not a hyperparameter of the model (it takes {takes})",
                             argument="symbol", model=str(model_a))
    fixed = {key: v for key, v in spec_defaults.items() if key != hp_name}
    fixed.update(hparams)
    if input_size is None:
        input_size = _default_size(model_a)
    if hp_name in HPARAM_SYMBOLS:
        # let count lift only this standard hyperparameter
        table = count(model_a, convention=convention, switches=switches, input_size=input_size, **fixed)
    else:
        table = count(model_a, convention=convention, switches=switches, input_size=input_size, symbols=lift, **fixed)
    total = sp.sympify(table.total(q))
    if sym not in total.free_symbols:
        raise ArchcountError(f"the {q} total of {table.model} does not depend on {name}", argument="symbol")
    if other_name is not None:
        other = count(other_name, convention=convention, switches=switches,
                      input_size=input_size if _default_size(other_name) is None else _default_size(other_name),
                      **dict(_defaults(other_name), **(target_hparams or {})))
        target_value = sp.sympify(other.total(q))
    eq = sp.Eq(total, target_value, evaluate=False)
    real = sp.Symbol(name, real=True)
    try:
        # simplify=False: the same roots for polynomial totals, without simplifying each one (30-200x faster)
        solutions = sp.solve(sp.Eq(total.subs(sym, real), target_value, evaluate=False), real, simplify=False)
    except NotImplementedError:
        raise ArchcountError(f"sympy cannot solve {sp.sstr(total)} = {target_value} for {name} exactly",
                             argument="symbol") from None
    roots = [r for r in solutions if _is_positive_real(r)]
    candidates = []
    for r in roots:
        for v in sorted({_floor(r), _floor(r) + (0 if _floor(r) == r else 1)}):
            if v >= 1:
                val = total.subs(sym, v)
                candidates.append((v, int(val) if val.is_Integer else val, sp.simplify(val - target_value)))
    reason = None
    if not candidates:
        at_one = total.subs(sym, 1)
        reason = (f"no positive {name} gives {q} = {_fmt(target_value)}: {sp.sstr(total)} = {_fmt(target_value)} "
                  f"has no positive real root")
        if at_one.is_number and at_one > target_value:
            reason += f" (already at {name} = 1 the {q} total is {_fmt(at_one)})"
    return SolveResult(sym, q, eq, tuple(roots), tuple(candidates), target_value, reason)


_NUMERIC_START = re.compile(r"^[+\-.\d]")


def _fmt(value: Any) -> str:
    return str(int(value)) if isinstance(value, (int, sp.Integer)) else sp.sstr(value)


def _target_model(text: str) -> str:
    """A zoo model name given as the target, or an error naming the target."""
    import models as zoo
    name = text.strip()
    if name not in zoo.available():
        shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
        raise ArchcountError(f"must be a number (such as 100000, 2.5e6 or 3/2) or a zoo model "
                             f"({', '.join(zoo.available())}), got {shown}", argument="target")
    return name


def _target_number(target: Any) -> sp.Expr:
    """A numeric target as an exact sympy number, bounded by :data:`MAX_TARGET`."""
    if isinstance(target, bool):
        raise ArchcountError(f"must be a number or a zoo model, got {target!r}", argument="target")
    if isinstance(target, str):
        value = parse_exact_number(target, "target")
    elif isinstance(target, int):
        value = sp.Integer(target) if abs(target) <= MAX_TARGET else None
    elif isinstance(target, float):
        if not math.isfinite(target):
            raise ArchcountError(f"must be a finite number, got {target!r}", argument="target")
        value = sp.nsimplify(target) if abs(target) <= MAX_TARGET else None
    elif isinstance(target, Fraction):
        value = sp.Rational(target.numerator, target.denominator)
    elif isinstance(target, sp.Basic):
        value = target
        if value.free_symbols:
            raise ArchcountError(f"target still depends on {sorted(map(str, value.free_symbols))}",
                                 argument="target")
        if not (value.is_number and value.is_real and value.is_finite):
            raise ArchcountError(f"must be a finite real number, got {sp.sstr(value)}", argument="target")
    else:
        raise ArchcountError(f"must be a number or a zoo model, got {type(target).__name__}", argument="target")
    if value is None or abs(value) > MAX_TARGET:
        raise ArchcountError(f"must be at most 10^100 in absolute value, got {_digits(value, target)}",
                             argument="target")
    return value


def _digits(value: Any, target: Any) -> str:
    """How large a refused target is, in words (its digits, never the whole number)."""
    number = value if value is not None else target
    try:
        digits = len(str(abs(int(number))))
    except (TypeError, ValueError, OverflowError):
        return "a larger number"
    return f"a {digits}-digit number"


def _is_positive_real(r: Any) -> bool:
    """Whether a root is a positive real number (decided exactly where sympy can, else at high precision)."""
    if r.is_real is False or r.is_positive is False:
        return False
    if r.is_real and r.is_positive:
        return True
    value = sp.N(r, 150)
    re_part, im_part = value.as_real_imag()
    return abs(im_part) < sp.Float(10) ** -100 and re_part > 0


def _floor(r: Any) -> int:
    """``floor(r)`` of a positive real root, exactly (high precision where sympy's default runs out)."""
    try:
        return int(sp.floor(r))
    except (TypeError, ValueError, sp.core.evalf.PrecisionExhausted):
        value = sp.re(sp.N(r, 150))
        return int(sp.floor(value))


def _defaults(model: Any) -> dict[str, Any]:
    if isinstance(model, str):
        import models as zoo
        return dict(zoo.spec(model).defaults)
    from .capture import _signature_defaults
    return {key: v for key, v in _signature_defaults(model).items() if v is not None}


def _default_size(model: Any) -> Any:
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        return spec.fixed_size or (32, 32)
    return (32, 32)


__all__ = ["SolveResult", "solve_for"]
