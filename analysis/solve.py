"""``solve_for()``: the value of a symbol that makes a model's total equal a target."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sympy as sp

from .conventions import Convention
from .errors import ArchcountError


@dataclass(frozen=True)
class SolveResult:
    """The value of a symbol that makes a total equal a target."""

    symbol: sp.Symbol
    quantity: str
    equation: sp.Eq
    roots: tuple[Any, ...]                 #: exact positive real roots
    candidates: tuple[tuple[int, Any, Any], ...]  #: (integer value, total there, total - target)
    target: Any

    @property
    def best(self) -> int | None:
        return min(self.candidates, key=lambda c: (abs(c[2]), c[0]))[0] if self.candidates else None

    def to_dict(self) -> dict[str, Any]:
        j = lambda v: int(v) if isinstance(v, (int, sp.Integer)) else sp.sstr(v)  # noqa: E731
        return {"symbol": str(self.symbol), "quantity": self.quantity, "equation": sp.sstr(self.equation),
                "target": j(self.target), "roots": [sp.sstr(r) for r in self.roots],
                "roots_float": [float(r) for r in self.roots],
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
        raise ArchcountError(f"{name} is not a hyperparameter of the model (it takes {', '.join(spec_defaults)})",
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
    if isinstance(target, str) and not _looks_numeric(target):
        other = count(target, convention=convention, switches=switches,
                      input_size=input_size if _default_size(target) is None else _default_size(target),
                      **dict(_defaults(target), **(target_hparams or {})))
        target_value = sp.sympify(other.total(q))
    else:
        target_value = sp.nsimplify(target) if not isinstance(target, sp.Basic) else target
    if getattr(target_value, "free_symbols", set()):
        raise ArchcountError(f"target still depends on {target_value.free_symbols}", argument="target")
    eq = sp.Eq(total, target_value)
    real = sp.Symbol(name, real=True)
    roots = [r for r in sp.solve(sp.Eq(total.subs(sym, real), target_value), real)
             if r.is_real and r > 0]
    candidates = []
    for r in roots:
        for v in sorted({int(sp.floor(r)), int(sp.ceiling(r))}):
            if v >= 1:
                val = total.subs(sym, v)
                candidates.append((v, int(val) if val.is_Integer else val, sp.simplify(val - target_value)))
    return SolveResult(sym, q, eq, tuple(roots), tuple(candidates), target_value)


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace("_", ""))
        return True
    except ValueError:
        return False


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
