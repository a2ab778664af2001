"""Exact window arithmetic for receptive fields, torch-free.

Positions are integers on an unbounded line; a layer's windows are periodic in the output
position (:class:`Win`).  Quantities that depend on the kernel are affine forms ``a*t + b`` in the
class parameter of ``k = M*t + c`` (:class:`Aff`), so one propagation per residue class of k is
exact; :func:`closed_form` joins the classes into one expression in k.

>>> w = conv_win(identity_win(), Aff.const(3), 2, Aff.const(1), 1, Ctx(kval=3))
>>> (w.jump, w.P, w.lo[0], w.hi[0])
(Fraction(2, 1), 1, Aff(a=Fraction(0, 1), b=Fraction(-1, 1)), Aff(a=Fraction(0, 1), b=Fraction(1, 1)))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..symbols import k as K_SYM

GLOBAL = "global"
DRIFT = "drift"
MAX_MODULUS = 1 << 12


def num(x: Any) -> Any:
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else sp.Rational(x.numerator, x.denominator)
    if isinstance(x, sp.Basic) and x.is_Integer:
        return int(x)
    return x


class NeedModulus(Exception):
    """The residue-class modulus is too small for a floor to be affine; multiply it by ``factor``."""

    def __init__(self, factor: int) -> None:
        super().__init__(factor)
        self.factor = factor


class RaiseTmin(Exception):
    """A comparison is decided only from ``t`` on: the class formula starts there."""

    def __init__(self, t: int) -> None:
        super().__init__(t)
        self.t = t


@dataclass(frozen=True)
class Aff:
    """``a*t + b`` with exact rationals (t: the class parameter of ``k = M*t + c``)."""

    a: Fraction
    b: Fraction

    @staticmethod
    def const(v: Any) -> "Aff":
        return Aff(Fraction(0), Fraction(v))

    def __add__(self, o: Any) -> "Aff":
        o = o if isinstance(o, Aff) else Aff.const(o)
        return Aff(self.a + o.a, self.b + o.b)

    __radd__ = __add__

    def __sub__(self, o: Any) -> "Aff":
        o = o if isinstance(o, Aff) else Aff.const(o)
        return Aff(self.a - o.a, self.b - o.b)

    def __rsub__(self, o: Any) -> "Aff":
        return Aff.const(o) - self

    def __neg__(self) -> "Aff":
        return Aff(-self.a, -self.b)

    def __mul__(self, f: Any) -> "Aff":
        if isinstance(f, Aff):
            if f.a == 0:
                f = f.b
            elif self.a == 0:
                return f * self.b
            else:
                raise ArchcountError("a receptive-field quantity is quadratic in k; archcount handles "
                                     "spatial hyperparameters affine in k")
        f = Fraction(f)
        return Aff(self.a * f, self.b * f)

    __rmul__ = __mul__

    def floor(self) -> "Aff":
        if self.a.denominator != 1:
            raise NeedModulus(self.a.denominator)
        return Aff(self.a, Fraction(math.floor(self.b)))

    def ceil(self) -> "Aff":
        return -((-self).floor())

    def divmod(self, n: int) -> tuple["Aff", int]:
        q = (self * Fraction(1, n)).floor()
        r = self - q * n
        if r.a != 0 or r.b.denominator != 1:  # pragma: no cover - guarded by floor()
            raise NeedModulus(n)
        return q, int(r.b)

    def value(self, t: int) -> Fraction:
        return self.a * t + self.b


class Ctx:
    """Numeric kernel (``kval``) or residue class ``k = M*t + c`` valid for ``t >= t_min``."""

    def __init__(self, kval: int | None = None, M: int = 1, c: int = 0, t_min: int = 0) -> None:
        self.kval, self.M, self.c, self.t_min = kval, M, c, t_min

    @property
    def numeric(self) -> bool:
        return self.kval is not None

    def le(self, x: Aff, y: Aff) -> bool:
        """``x <= y`` for every t >= t_min (raises RaiseTmin when that holds only eventually)."""
        d = y - x
        if d.a == 0:
            return d.b >= 0
        at_min = d.value(self.t_min)
        if d.a > 0:
            if at_min >= 0:
                return True
            raise RaiseTmin(math.ceil(-d.b / d.a))
        if at_min < 0:
            return False
        raise RaiseTmin(math.floor(d.b / -d.a) + 1)

    def lt(self, x: Aff, y: Aff) -> bool:
        return not self.le(y, x)

    def min(self, x: Aff, y: Aff) -> Aff:
        return x if self.le(x, y) else y

    def max(self, x: Aff, y: Aff) -> Aff:
        return y if self.le(x, y) else x

    def aff(self, expr: Any, where: str = "", layer: str | None = None) -> Aff:
        """A layer hyperparameter (int or sympy expression in k) as an affine form in t."""
        if isinstance(expr, bool):
            raise ArchcountError(f"{where} is a boolean", layer=layer)
        if isinstance(expr, (int, Fraction)):
            return Aff.const(expr)
        if isinstance(expr, float):
            if not expr.is_integer():
                raise ArchcountError(f"{where}={expr} is not an integer", layer=layer)
            return Aff.const(int(expr))
        e = sp.sympify(expr)
        extra = e.free_symbols - {K_SYM}
        if extra:
            raise ArchcountError(f"{where} = {e} depends on {', '.join(sorted(map(str, extra)))}; receptive "
                                 f"fields need spatial hyperparameters that depend on the kernel k only",
                                 layer=layer)
        if self.numeric:
            v = e.xreplace({K_SYM: sp.Integer(self.kval)})
            if not v.is_Rational:
                raise ArchcountError(f"{where} = {e} is not a number at k={self.kval}", layer=layer)
            return Aff.const(Fraction(int(v.p), int(v.q)))
        return self._walk(e, where, layer)

    def _walk(self, e: sp.Basic, where: str, layer: str | None) -> Aff:
        if e.is_Rational:
            return Aff.const(Fraction(int(e.p), int(e.q)))
        if e == K_SYM:
            return Aff(Fraction(self.M), Fraction(self.c))
        if isinstance(e, sp.Add):
            out = Aff.const(0)
            for term in e.args:
                out = out + self._walk(term, where, layer)
            return out
        if isinstance(e, sp.Mul):
            out = Aff.const(1)
            for factor in e.args:
                out = out * self._walk(factor, where, layer)
            return out
        if isinstance(e, sp.floor):
            return self._walk(e.args[0], where, layer).floor()
        if isinstance(e, sp.ceiling):
            return self._walk(e.args[0], where, layer).ceil()
        if isinstance(e, sp.Mod) and e.args[1].is_Integer:
            x = self._walk(e.args[0], where, layer)
            m = int(e.args[1])
            return x - (x * Fraction(1, m)).floor() * m
        raise ArchcountError(f"{where} = {e} is not affine in k (with floors); archcount cannot follow it",
                             layer=layer)


# =========================================================================== periodic windows (unbounded line)

@dataclass(frozen=True)
class Win:
    """Windows of one axis: unit ``o = P*q + r`` reads input ``[lo[r], hi[r]] + jump*P*q`` (None: nothing)."""

    jump: Fraction
    P: int
    lo: tuple[Aff | None, ...]
    hi: tuple[Aff | None, ...]

    def at(self, x: Aff) -> tuple[Aff, Aff] | None:
        q, r = x.divmod(self.P)
        if self.lo[r] is None:
            return None
        shift = q * (self.jump * self.P)
        return self.lo[r] + shift, self.hi[r] + shift


def identity_win() -> Win:
    return Win(Fraction(1), 1, (Aff.const(0),), (Aff.const(0),))


def reduce(win: Win) -> Win:
    """The smallest period that describes the same windows."""
    for d in range(1, win.P):
        if win.P % d:
            continue
        shift = win.jump * d
        ok = True
        for r in range(win.P - d):
            a, b = win.lo[r], win.lo[r + d]
            if (a is None) != (b is None) or (a is not None and (b != a + shift or win.hi[r + d] != win.hi[r] + shift)):
                ok = False
                break
        if ok:
            return Win(win.jump, d, win.lo[:d], win.hi[:d])
    return win


def conv_win(win: Win, K: Aff, s: int, pl: Aff, d: int, ctx: Ctx) -> Win:
    """Unit o reads taps ``o*s - pl + t*d`` for t in [0, K)."""
    P2 = win.P // math.gcd(win.P, s)
    lo: list[Aff | None] = []
    hi: list[Aff | None] = []
    for r in range(P2):
        x0 = Aff.const(r * s) - pl
        if ctx.numeric:
            got = [w for w in (win.at(x0 + t * d) for t in range(int(K.b))) if w is not None]
            lo.append(min((w[0] for w in got), key=lambda a: a.b) if got else None)
            hi.append(max((w[1] for w in got), key=lambda a: a.b) if got else None)
            continue
        # windows are monotone in the position, so the first and last non-empty taps give the extent
        cycle = win.P // math.gcd(win.P, d)
        first = last = None
        for t in range(cycle):
            if not ctx.lt(Aff.const(t), K):
                break
            w = win.at(x0 + t * d)
            if w is not None:
                first = w
                break
        for u in range(cycle):
            if not ctx.lt(Aff.const(u), K):
                break
            w = win.at(x0 + (K - 1 - u) * d)
            if w is not None:
                last = w
                break
        lo.append(None if first is None else first[0])
        hi.append(None if last is None else last[1])
    return reduce(Win(win.jump * s, P2, tuple(lo), tuple(hi)))


def stuff_win(win: Win, s: int) -> Win:
    """Zero insertion: input unit i sits at position i*s, the positions between read nothing."""
    lo = tuple(win.lo[y // s] if y % s == 0 else None for y in range(win.P * s))
    hi = tuple(win.hi[y // s] if y % s == 0 else None for y in range(win.P * s))
    return Win(win.jump / s, win.P * s, lo, hi)


def transposed_win(win: Win, K: Aff, s: int, p: Aff, d: int, ctx: Ctx) -> Win:
    """A transposed conv = zero insertion, then a stride-1 conv with left padding d*(K-1) - p."""
    return conv_win(stuff_win(win, s), K, 1, (K - 1) * d - p, d, ctx)


def upsample_win(win: Win, f: int, offsets: Sequence[Sequence[int]] | None = None, ctx: "Ctx | None" = None) -> Win:
    """Upsampling by an integer factor ``f``: output ``o = f*q + r`` reads coarse units ``q + d`` for
    ``d`` in ``offsets[r]`` (nearest: ``[0]`` for every r; bilinear: ``[-1, 0]`` or ``[0, 1]``)."""
    if offsets is None or all(list(o) == [0] for o in offsets):
        lo = tuple(win.lo[y // f] for y in range(win.P * f))
        hi = tuple(win.hi[y // f] for y in range(win.P * f))
        return reduce(Win(win.jump / f, win.P * f, lo, hi))
    ctx = ctx or Ctx(kval=0)
    lo_l: list[Aff | None] = []
    hi_l: list[Aff | None] = []
    for y in range(win.P * f):
        q, r = divmod(y, f)
        got = [w for w in (win.at(Aff.const(q + d)) for d in offsets[r]) if w is not None]
        if not got:
            lo_l.append(None)
            hi_l.append(None)
            continue
        a, b = got[0]
        for x, z in got[1:]:
            a, b = ctx.min(a, x), ctx.max(b, z)
        lo_l.append(a)
        hi_l.append(b)
    return reduce(Win(win.jump / f, win.P * f, tuple(lo_l), tuple(hi_l)))


def interpolation_offsets(mode: str, f: int, align_corners: bool | None) -> list[list[int]] | None:
    """Coarse-unit offsets read by each output residue of an integer-factor upsampling with a nonzero
    weight (exact arithmetic), or None when they are not periodic (``align_corners=True``)."""
    if mode in ("nearest", "nearest-exact"):
        return [[0]] * f
    if align_corners:
        return None
    taps = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}.get(mode)
    if taps is None:
        return None
    out = []
    for r in range(f):
        src = Fraction(2 * r + 1, 2 * f) - Fraction(1, 2)
        if taps == 2:
            base = math.floor(src)
            frac = src - base
            out.append([base] if frac == 0 else [base, base + 1])
        else:
            base = math.floor(src)
            frac = src - base
            out.append([base] if frac == 0 else [base - 1, base, base + 1, base + 2])
    return out


def union_win(wins: Sequence[Win], ctx: Ctx) -> Win:
    P = 1
    for w in wins:
        P = P * w.P // math.gcd(P, w.P)
    lo: list[Aff | None] = []
    hi: list[Aff | None] = []
    for r in range(P):
        got = [w for w in (win.at(Aff.const(r)) for win in wins) if w is not None]
        if not got:
            lo.append(None)
            hi.append(None)
            continue
        a, b = got[0]
        for x, y in got[1:]:
            a, b = ctx.min(a, x), ctx.max(b, y)
        lo.append(a)
        hi.append(b)
    return reduce(Win(wins[0].jump, P, tuple(lo), tuple(hi)))


def closed_form(per_class: Mapping[int, tuple[Fraction, Fraction]], M: int) -> Any:
    """One expression in k for class-wise affine values ``alpha*k + beta`` (k = c mod M)."""
    classes = sorted(per_class)
    alphas = {per_class[c][0] for c in classes}
    k = K_SYM

    def expr(alpha: Fraction, beta: Fraction) -> Any:
        return sp.Rational(alpha.numerator, alpha.denominator) * k + sp.Rational(beta.numerator, beta.denominator)

    if len(set(per_class.values())) == 1:
        return num(sp.expand(expr(*per_class[classes[0]])))
    divisors = [m for m in range(2, M + 1) if M % m == 0 and len({c % m for c in classes}) > 1]
    if len(alphas) == 1:
        alpha = alphas.pop()
        betas = {c: per_class[c][1] for c in classes}
        for m in divisors:
            pairs = [(c % m, betas[c]) for c in classes]
            (m1, b1) = pairs[0]
            other = next(((mm, bb) for mm, bb in pairs if mm != m1), None)
            if other is None:
                continue
            gamma = (other[1] - b1) / (other[0] - m1)
            beta0 = b1 - gamma * m1
            if all(beta0 + gamma * mm == bb for mm, bb in pairs):
                return sp.expand(expr(alpha, beta0)) + sp.Rational(gamma.numerator, gamma.denominator) * sp.Mod(k, m)
    # Piecewise over the smallest modulus that separates the classes
    for m in [d for d in range(1, M + 1) if M % d == 0]:
        groups: dict[int, set] = {}
        for c in classes:
            groups.setdefault(c % m, set()).add(per_class[c])
        if all(len(v) == 1 for v in groups.values()):
            items = sorted((res, next(iter(v))) for res, v in groups.items())
            pieces = [(sp.expand(expr(*val)), sp.Eq(sp.Mod(k, m), res)) for res, val in items[:-1]]
            pieces.append((sp.expand(expr(*items[-1][1])), True))
            return sp.Piecewise(*pieces)
    raise AssertionError("unreachable")  # pragma: no cover
