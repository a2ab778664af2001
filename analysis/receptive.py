"""Receptive fields: exact per-layer window sizes, jumps and offsets, symbolic in k, checked on the real model.

Conventions (per spatial axis; H and W are handled separately and are equal for square kernels):

* Positions are integer indices; input pixel ``0`` is the first real pixel (padding is negative or
  past the end).  The *window* of an output unit is the interval ``[lo, hi]`` of input pixels it
  depends on; its **size** is ``hi - lo + 1`` (the extent; every zoo window is also gap-free).
* Windows are computed on an unbounded line, so they are the *interior* windows, not clipped by
  the image border (units near the border see a clipped part of them).
* The **jump** is how many input pixels the window moves per output step (``1/2`` after one
  stride-2 transposed conv or x2 nearest upsampling).  The **start** is the centre of output
  unit 0's window, ``(lo(0) + hi(0)) / 2``; for a plain conv chain it follows the usual recurrence
  ``start_out = start_in + ((d(K-1))/2 - p) * jump_in``.
* Window sizes can depend on the position: a stride-2 transposed conv with odd k gives outputs
  fed by ``(k+1)/2`` and by ``(k-1)/2`` inputs in turn, and a conv after x2 nearest upsampling
  reads either 1 or 2 coarse units at its edges.  The windows are periodic in the position with
  the layer's **period**; ``size`` is the largest window over positions, ``min_size`` the smallest,
  and ``varies`` says whether they differ (for some allowed k).
* Merges (``torch.cat``, addition, ...) take, position by position, the union of the branches'
  windows; when the branches reach a merge with different jumps the union drifts with the position,
  which is reported (``drift``) and no size is claimed after it.
* Normalisation layers count as identity: their statistics (fixed in eval mode for BatchNorm) are
  not part of the receptive field.  Activations and dropout are identity.
* Global layers (adaptive pooling to 1, flatten, view, a linear layer on a flattened tensor) read
  every position: their size is the whole input (``H``, ``W``, or, for a numeric input size and
  kernel, the exact extent of the input rows actually read).  ``last_spatial`` names the last layer
  that still has positions.

The symbolic answer is exact: the kernel is split into residue classes ``k = M*t + c`` in which every
floor is affine in ``t``, the windows are propagated exactly per class, and the classes are joined
into one formula (with ``Mod(k, m)`` where the answer depends on k mod m).  It is cross-checked against
a direct enumeration at several kernels, and :func:`verify_receptive_field` measures it on the real
model: a *connectivity copy* (max pooling -> average pooling, activations and normalisation ->
identity, every weight 1, float64) is back-propagated from single output units at many positions,
and the non-zero input gradient is the unit's support.

Limits: windows are per axis, so a unit's support is the box of its axis windows.  That is exact
unless a transposed conv has a kernel smaller than its stride (some units read nothing) *and* feeds
a merge: there ``min_size`` may be overstated (the layer says so in its notes).  Upsampling must be
nearest with an integer factor; adaptive pooling must be to 1 (global) or None.

>>> from analysis import receptive_field
>>> rf = receptive_field("conv_transpose")
>>> rf.size, rf.varies
((7*k - 6, 7*k - 6), True)
>>> rf.min_size[0]                      # k = 1 leaves every other output of block3.0 reading nothing
Piecewise((0, Eq(k, 1)), (7*k - 10, True))
>>> receptive_field("pool_upsample", kernel=3).size
(26, 26)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Mapping, Sequence

import sympy as sp

from .errors import ArchcountError
from .rules import NON_LAYER_KEYS, RULES, LayerSpec, RuleRegistry
from .symbols import H, W
from .symbols import k as K_SYM

AXIS_NAMES = ("H", "W")
_GLOBAL = "global"
_DRIFT = "drift"
_MAX_MODULUS = 1 << 12


# =========================================================================== results

@dataclass(frozen=True)
class LayerRF:
    """The receptive field of one layer's output units (per spatial axis, in input pixels)."""

    path: str
    type_name: str
    op: str                               #: conv | transposed | pool | upsample | merge | identity | global
    inputs: tuple[str, ...]
    size: tuple[Any, ...] | None          #: largest window over positions (None after a drift)
    min_size: tuple[Any, ...] | None      #: smallest window over positions
    jump: tuple[Any, ...] | None          #: input pixels per output step (None for global layers)
    start: tuple[Any, ...] | None         #: centre of output unit 0's window (None for global layers)
    period: tuple[int, ...] | None        #: the windows repeat every ``period`` output positions
    varies: bool = False                  #: window size depends on the position (for some allowed k)
    is_global: bool = False               #: reads the whole input (no positions left)
    drift: bool = False                   #: a merge of branches with different jumps (or after one)
    visible: tuple[Any, ...] | None = None  #: largest window clipped to a numeric input (numeric k)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type_name, "op": self.op, "inputs": list(self.inputs),
                "size": _jlist(self.size), "min_size": _jlist(self.min_size), "jump": _jlist(self.jump),
                "start": _jlist(self.start), "period": None if self.period is None else list(self.period),
                "varies": self.varies, "global": self.is_global, "drift": self.drift,
                "visible": _jlist(self.visible), "notes": list(self.notes)}


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive fields of every layer of a model; ``size`` is that of the output.

    >>> rf = receptive_field("unet", kernel=5)
    >>> rf.size, rf.layer("block3.0").size, rf.layer("block3.0").jump
    ((29, 29), (21, 21), (2, 2))
    """

    model: str
    hparams: Mapping[str, Any]
    input_size: tuple[Any, ...]
    layers: tuple[LayerRF, ...]
    output: str                           #: path of the output layer
    last_spatial: str | None              #: path of the last layer that has positions
    kernel_parity: str | None = None
    assumptions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def layer(self, path: str) -> LayerRF:
        for row in self.layers:
            if row.path == path:
                return row
        raise ArchcountError(f"no layer {path!r}; layers: {', '.join(r.path for r in self.layers)}",
                             model=self.model, argument="path")

    @property
    def size(self) -> tuple[Any, ...] | None:
        """The largest receptive field over output positions, per axis."""
        return self.layer(self.output).size

    @property
    def min_size(self) -> tuple[Any, ...] | None:
        return self.layer(self.output).min_size

    @property
    def varies(self) -> bool:
        """Whether the output's receptive field depends on the output position."""
        return self.layer(self.output).varies

    @property
    def spatial(self) -> LayerRF | None:
        """The last layer with positions (the output itself for dense-prediction models)."""
        return None if self.last_spatial is None else self.layer(self.last_spatial)

    def evaluate(self, **values: Any) -> "ReceptiveField":
        """Substitute symbols (``k=5``, ``H=64``) into every formula.

        >>> receptive_field("pool_upsample").evaluate(k=7).size
        (66, 66)
        """
        from .symbols import by_name
        subs = {by_name(name): v for name, v in values.items()}
        kv = subs.get(K_SYM)
        if isinstance(kv, int) and self.kernel_parity and kv % 2 != (self.kernel_parity == "odd"):
            raise ArchcountError(f"the model builds only with {self.kernel_parity} kernels", model=self.model,
                                 argument="k")

        def sub(t: Any) -> Any:
            return None if t is None else tuple(None if x is None else _num(sp.sympify(x).subs(subs)) for x in t)

        def row(r: LayerRF) -> LayerRF:
            size, small = sub(r.size), sub(r.min_size)
            varies = r.varies
            if size is not None and small is not None and all(isinstance(x, int) for x in size + small):
                varies = size != small  # now for this kernel, not for some kernel
            return replace(r, size=size, min_size=small, start=sub(r.start), varies=varies)

        layers = tuple(row(r) for r in self.layers)
        hp = {key: (_num(v.subs(subs)) if isinstance(v, sp.Basic) else v) for key, v in self.hparams.items()}
        return replace(self, layers=layers, hparams=hp, input_size=sub(self.input_size))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": 1, "model": self.model,
                "hparams": {key: _jval(v) for key, v in self.hparams.items()},
                "input_size": _jlist(self.input_size), "kernel_parity": self.kernel_parity,
                "output": self.output, "last_spatial": self.last_spatial,
                "size": _jlist(self.size), "min_size": _jlist(self.min_size), "varies": self.varies,
                "layers": [r.to_dict() for r in self.layers],
                "assumptions": list(self.assumptions), "notes": list(self.notes)}

    def _repr_markdown_(self) -> str:  # notebook display; rendering lives in reports.display
        from reports.display import receptive_markdown
        return receptive_markdown(self)

    def _repr_latex_(self) -> str:
        from reports.display import receptive_latex
        return receptive_latex(self)

    def _repr_html_(self) -> str:
        from reports.display import receptive_html
        return receptive_html(self)


def _jval(x: Any) -> Any:
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, sp.Basic) and x.is_Integer:
        return int(x)
    return sp.sstr(x)


def _jlist(t: Any) -> Any:
    return None if t is None else [_jval(x) for x in t]


def _num(x: Any) -> Any:
    if isinstance(x, Fraction):
        return int(x) if x.denominator == 1 else sp.Rational(x.numerator, x.denominator)
    if isinstance(x, sp.Basic) and x.is_Integer:
        return int(x)
    return x


# =========================================================================== exact affine arithmetic

class _NeedModulus(Exception):
    """The residue-class modulus is too small for a floor to be affine; multiply it by ``factor``."""

    def __init__(self, factor: int) -> None:
        super().__init__(factor)
        self.factor = factor


class _RaiseTmin(Exception):
    """A comparison is decided only from ``t`` on: the class formula starts there."""

    def __init__(self, t: int) -> None:
        super().__init__(t)
        self.t = t


@dataclass(frozen=True)
class _Aff:
    """``a*t + b`` with exact rationals (t: the class parameter of ``k = M*t + c``)."""

    a: Fraction
    b: Fraction

    @staticmethod
    def const(v: Any) -> "_Aff":
        return _Aff(Fraction(0), Fraction(v))

    def __add__(self, o: Any) -> "_Aff":
        o = o if isinstance(o, _Aff) else _Aff.const(o)
        return _Aff(self.a + o.a, self.b + o.b)

    __radd__ = __add__

    def __sub__(self, o: Any) -> "_Aff":
        o = o if isinstance(o, _Aff) else _Aff.const(o)
        return _Aff(self.a - o.a, self.b - o.b)

    def __rsub__(self, o: Any) -> "_Aff":
        return _Aff.const(o) - self

    def __neg__(self) -> "_Aff":
        return _Aff(-self.a, -self.b)

    def __mul__(self, f: Any) -> "_Aff":
        if isinstance(f, _Aff):
            if f.a == 0:
                f = f.b
            elif self.a == 0:
                return f * self.b
            else:
                raise ArchcountError("a receptive-field quantity is quadratic in k; archcount handles "
                                     "spatial hyperparameters affine in k")
        f = Fraction(f)
        return _Aff(self.a * f, self.b * f)

    __rmul__ = __mul__

    def floor(self) -> "_Aff":
        if self.a.denominator != 1:
            raise _NeedModulus(self.a.denominator)
        return _Aff(self.a, Fraction(math.floor(self.b)))

    def ceil(self) -> "_Aff":
        return -((-self).floor())

    def divmod(self, n: int) -> tuple["_Aff", int]:
        q = (self * Fraction(1, n)).floor()
        r = self - q * n
        if r.a != 0 or r.b.denominator != 1:  # pragma: no cover - guarded by floor()
            raise _NeedModulus(n)
        return q, int(r.b)

    def value(self, t: int) -> Fraction:
        return self.a * t + self.b


class _Ctx:
    """Numeric kernel (``kval``) or residue class ``k = M*t + c`` valid for ``t >= t_min``."""

    def __init__(self, kval: int | None = None, M: int = 1, c: int = 0, t_min: int = 0) -> None:
        self.kval, self.M, self.c, self.t_min = kval, M, c, t_min

    @property
    def numeric(self) -> bool:
        return self.kval is not None

    def le(self, x: _Aff, y: _Aff) -> bool:
        """``x <= y`` for every t >= t_min (raises _RaiseTmin when that holds only eventually)."""
        d = y - x
        if d.a == 0:
            return d.b >= 0
        at_min = d.value(self.t_min)
        if d.a > 0:
            if at_min >= 0:
                return True
            raise _RaiseTmin(math.ceil(-d.b / d.a))
        if at_min < 0:
            return False
        raise _RaiseTmin(math.floor(d.b / -d.a) + 1)

    def lt(self, x: _Aff, y: _Aff) -> bool:
        return not self.le(y, x)

    def min(self, x: _Aff, y: _Aff) -> _Aff:
        return x if self.le(x, y) else y

    def max(self, x: _Aff, y: _Aff) -> _Aff:
        return y if self.le(x, y) else x

    def aff(self, expr: Any, where: str = "", layer: str | None = None) -> _Aff:
        """A layer hyperparameter (int or sympy expression in k) as an affine form in t."""
        if isinstance(expr, bool):
            raise ArchcountError(f"{where} is a boolean", layer=layer)
        if isinstance(expr, (int, Fraction)):
            return _Aff.const(expr)
        if isinstance(expr, float):
            if not expr.is_integer():
                raise ArchcountError(f"{where}={expr} is not an integer", layer=layer)
            return _Aff.const(int(expr))
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
            return _Aff.const(Fraction(int(v.p), int(v.q)))
        return self._walk(e, where, layer)

    def _walk(self, e: sp.Basic, where: str, layer: str | None) -> _Aff:
        if e.is_Rational:
            return _Aff.const(Fraction(int(e.p), int(e.q)))
        if e == K_SYM:
            return _Aff(Fraction(self.M), Fraction(self.c))
        if isinstance(e, sp.Add):
            out = _Aff.const(0)
            for term in e.args:
                out = out + self._walk(term, where, layer)
            return out
        if isinstance(e, sp.Mul):
            out = _Aff.const(1)
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
class _Win:
    """Windows of one axis: unit ``o = P*q + r`` reads input ``[lo[r], hi[r]] + jump*P*q`` (None: nothing)."""

    jump: Fraction
    P: int
    lo: tuple[_Aff | None, ...]
    hi: tuple[_Aff | None, ...]

    def at(self, x: _Aff) -> tuple[_Aff, _Aff] | None:
        q, r = x.divmod(self.P)
        if self.lo[r] is None:
            return None
        shift = q * (self.jump * self.P)
        return self.lo[r] + shift, self.hi[r] + shift


def _identity_win() -> _Win:
    return _Win(Fraction(1), 1, (_Aff.const(0),), (_Aff.const(0),))


def _reduce(win: _Win) -> _Win:
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
            return _Win(win.jump, d, win.lo[:d], win.hi[:d])
    return win


def _conv_win(win: _Win, K: _Aff, s: int, pl: _Aff, d: int, ctx: _Ctx) -> _Win:
    """Unit o reads taps ``o*s - pl + t*d`` for t in [0, K)."""
    P2 = win.P // math.gcd(win.P, s)
    lo: list[_Aff | None] = []
    hi: list[_Aff | None] = []
    for r in range(P2):
        x0 = _Aff.const(r * s) - pl
        if ctx.numeric:
            got = [w for w in (win.at(x0 + t * d) for t in range(int(K.b))) if w is not None]
            lo.append(min((w[0] for w in got), key=lambda a: a.b) if got else None)
            hi.append(max((w[1] for w in got), key=lambda a: a.b) if got else None)
            continue
        # windows are monotone in the position, so the first and last non-empty taps give the extent
        cycle = win.P // math.gcd(win.P, d)
        first = last = None
        for t in range(cycle):
            if not ctx.lt(_Aff.const(t), K):
                break
            w = win.at(x0 + t * d)
            if w is not None:
                first = w
                break
        for u in range(cycle):
            if not ctx.lt(_Aff.const(u), K):
                break
            w = win.at(x0 + (K - 1 - u) * d)
            if w is not None:
                last = w
                break
        lo.append(None if first is None else first[0])
        hi.append(None if last is None else last[1])
    return _reduce(_Win(win.jump * s, P2, tuple(lo), tuple(hi)))


def _stuff_win(win: _Win, s: int) -> _Win:
    """Zero insertion: input unit i sits at position i*s, the positions between read nothing."""
    lo = tuple(win.lo[y // s] if y % s == 0 else None for y in range(win.P * s))
    hi = tuple(win.hi[y // s] if y % s == 0 else None for y in range(win.P * s))
    return _Win(win.jump / s, win.P * s, lo, hi)


def _transposed_win(win: _Win, K: _Aff, s: int, p: _Aff, d: int, ctx: _Ctx) -> _Win:
    """A transposed conv = zero insertion, then a stride-1 conv with left padding d*(K-1) - p."""
    return _conv_win(_stuff_win(win, s), K, 1, (K - 1) * d - p, d, ctx)


def _upsample_win(win: _Win, f: int) -> _Win:
    lo = tuple(win.lo[y // f] for y in range(win.P * f))
    hi = tuple(win.hi[y // f] for y in range(win.P * f))
    return _reduce(_Win(win.jump / f, win.P * f, lo, hi))


def _union_win(wins: Sequence[_Win], ctx: _Ctx) -> _Win:
    P = 1
    for w in wins:
        P = P * w.P // math.gcd(P, w.P)
    lo: list[_Aff | None] = []
    hi: list[_Aff | None] = []
    for r in range(P):
        got = [w for w in (win.at(_Aff.const(r)) for win in wins) if w is not None]
        if not got:
            lo.append(None)
            hi.append(None)
            continue
        a, b = got[0]
        for x, y in got[1:]:
            a, b = ctx.min(a, x), ctx.max(b, y)
        lo.append(a)
        hi.append(b)
    return _reduce(_Win(wins[0].jump, P, tuple(lo), tuple(hi)))


# =========================================================================== the plan: layer ops per axis

@dataclass(frozen=True)
class _AxisOp:
    kind: str                 #: identity | conv | transposed | upsample | global
    K: Any = 1
    s: Any = 1
    pl: Any = 0
    pr: Any = 0
    d: Any = 1
    op: Any = 0               #: transposed output_padding
    ceil: bool = False        #: pooling ceil_mode
    f: int = 1                #: upsampling factor


@dataclass(frozen=True)
class _Step:
    name: str
    path: str
    type_name: str
    kind: str                 #: input | const | nontensor | merge | axes | flatten | linear
    inputs: tuple[str, ...]   #: tensor producer names
    op: str = "identity"      #: the label shown in tables
    axes: tuple[_AxisOp, ...] = ()


_CONV = "torch.nn.modules.conv.Conv"
_TCONV = "torch.nn.modules.conv.ConvTranspose"
_POOL = ("torch.nn.modules.pooling.MaxPool", "torch.nn.modules.pooling.AvgPool")
_ADAPTIVE = ("torch.nn.modules.pooling.AdaptiveAvgPool", "torch.nn.modules.pooling.AdaptiveMaxPool")
_UPSAMPLE = ("torch.nn.modules.upsampling.Upsample", "torch.nn.modules.upsampling.UpsamplingNearest2d",
             "torch.nn.functional.interpolate")
_FLATTEN = ("torch.nn.modules.flatten.Flatten", "torch.flatten", "Tensor.flatten", "Tensor.view",
            "Tensor.reshape", "torch.reshape")
_CAT = ("torch.cat", "torch.concat", "torch.concatenate")
_LINEAR = "torch.nn.modules.linear.Linear"


def _tuple(value: Any, n: int) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value) * n if len(value) == 1 and n > 1 else tuple(value)
    return (value,) * n


def _int_param(value: Any, what: str, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, sp.Basic) and value.is_Integer:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchcountError(f"{what} = {value} must be a fixed integer for receptive fields", layer=path)
    return value


def _conv_axes(p: Mapping[str, Any], n: int, path: str, pool: bool = False) -> tuple[_AxisOp, ...]:
    K = _tuple(p["kernel_size"], n)
    stride = p.get("stride") if pool else p.get("stride", 1)
    s = _tuple(stride if stride not in (None, ()) else p["kernel_size"], n)
    d = _tuple(p.get("dilation", 1), n)
    padding = p.get("padding", 0)
    if isinstance(padding, str):
        if padding == "valid":
            pl = pr = (0,) * n
        elif padding == "same":
            tot = [sp.sympify(di) * (sp.sympify(ki) - 1) for ki, di in zip(K, d)]
            pl = tuple(sp.floor(t / 2) for t in tot)
            pr = tuple(t - a for t, a in zip(tot, pl))
        else:
            raise ArchcountError(f"unknown padding mode {padding!r}", layer=path)
    else:
        pl = pr = _tuple(padding, n)
    return tuple(_AxisOp("conv", K[i], _int_param(s[i], "stride", path), pl[i], pr[i],
                         _int_param(d[i], "dilation", path), ceil=bool(p.get("ceil_mode", False)))
                 for i in range(n))


def _upsample_axes(p: Mapping[str, Any], n: int, path: str) -> tuple[_AxisOp, ...]:
    mode = p.get("mode", "nearest")
    if mode not in ("nearest",):
        raise ArchcountError(f"receptive fields of {mode!r} interpolation are not supported (nearest only)",
                             layer=path)
    if p.get("size") is not None or p.get("scale_factor") is None:
        raise ArchcountError("receptive fields need upsampling by a scale_factor, not a target size", layer=path)
    out = []
    for f in _tuple(p["scale_factor"], n):
        fv = float(f)
        if not fv.is_integer() or fv < 1:
            raise ArchcountError(f"receptive fields need an integer scale_factor, got {f}", layer=path)
        out.append(_AxisOp("upsample", f=int(fv)))
    return tuple(out)


def _plan(graph: Any, n: int, registry: RuleRegistry) -> list[_Step]:
    """Turn the captured graph into receptive-field steps (errors name the layer)."""
    steps: list[_Step] = []
    kinds: dict[str, str] = {}
    for node in graph.nodes:
        path = node.path
        if node.op == "placeholder":
            if any(s.kind == "input" for s in steps):
                raise ArchcountError("receptive fields need a model with one tensor input", model=graph.model)
            steps.append(_Step(node.name, path, "input", "input", ()))
            kinds[node.name] = "input"
            continue
        if node.op == "output":
            continue
        if node.key in NON_LAYER_KEYS:
            kinds[node.name] = "nontensor"
            steps.append(_Step(node.name, path, node.type_name, "nontensor", ()))
            continue
        if node.op == "get_attr":
            kinds[node.name] = "const"
            steps.append(_Step(node.name, path, node.type_name, "const", ()))
            continue
        ins = tuple(i for i in node.inputs if kinds.get(i) not in ("nontensor", None))
        tensor_ins = tuple(i for i in ins if kinds.get(i) != "const")
        found = registry.resolve(node.mro_keys)
        if found is None:
            raise ArchcountError(f"no rule for {node.type_name}, so its receptive field is unknown; register one "
                                 f"with analysis.rules.register_rule", model=graph.model, layer=path)
        key = found[0]
        p = node.params
        try:
            step = _step_for(node, key, p, ins, tensor_ins, n, registry)
        except ArchcountError as exc:
            raise exc.with_context(model=graph.model, layer=path) from None
        kinds[node.name] = step.kind
        steps.append(step)
    return steps


def _step_for(node: Any, key: str, p: Mapping[str, Any], ins: tuple, tensor_ins: tuple, n: int,
              registry: RuleRegistry) -> _Step:
    path, tname = node.path, node.type_name
    if not tensor_ins:
        return _Step(node.name, path, tname, "const", ())
    one = tensor_ins[:1]
    if key.startswith(_TCONV):
        K = _tuple(p["kernel_size"], n)
        s = _tuple(p.get("stride", 1), n)
        pad = p.get("padding", 0)
        if isinstance(pad, str):
            raise ArchcountError(f"padding mode {pad!r} on a transposed conv", layer=path)
        pad = _tuple(pad, n)
        d = _tuple(p.get("dilation", 1), n)
        op = _tuple(p.get("output_padding", 0), n)
        axes = tuple(_AxisOp("transposed", K[i], _int_param(s[i], "stride", path), pad[i], pad[i],
                             _int_param(d[i], "dilation", path), op[i]) for i in range(n))
        return _Step(node.name, path, tname, "axes", one, "transposed", axes)
    if key.startswith(_CONV):
        return _Step(node.name, path, tname, "axes", one, "conv", _conv_axes(p, n, path))
    if key.startswith(_POOL):
        return _Step(node.name, path, tname, "axes", one, "pool", _conv_axes(p, n, path, pool=True))
    if key.startswith(_ADAPTIVE):
        axes = []
        for o in _tuple(p.get("output_size"), n):
            if o is None:
                axes.append(_AxisOp("identity"))
            elif o == 1:
                axes.append(_AxisOp("global"))
            else:
                raise ArchcountError(f"adaptive pooling to {o} positions: the windows depend on the input size; "
                                     f"receptive fields support output_size 1 (global) or None", layer=path)
        if len({a.kind for a in axes}) > 1:
            raise ArchcountError("adaptive pooling to 1 along some axes only is not supported", layer=path)
        return _Step(node.name, path, tname, "axes", one, "global" if axes[0].kind == "global" else "identity",
                     tuple(axes))
    if key in _UPSAMPLE:
        params = dict(p)
        if key == "torch.nn.functional.interpolate":
            args = list(p.get("args", ()))
            kw = dict(p.get("kwargs", {}))
            for name, value in zip(("size", "scale_factor", "mode"), args[1:]):
                kw.setdefault(name, value)
            params = {"size": kw.get("size"), "scale_factor": kw.get("scale_factor"),
                      "mode": kw.get("mode", "nearest")}
        return _Step(node.name, path, tname, "axes", one, "upsample", _upsample_axes(params, n, path))
    if key.startswith("torch.nn.modules.upsampling."):
        raise ArchcountError(f"receptive fields of {tname} are not supported (nearest upsampling only)", layer=path)
    if key in _FLATTEN:
        if key == "torch.nn.modules.flatten.Flatten":
            start = p.get("start_dim", 1)
        elif key in ("torch.flatten", "Tensor.flatten"):
            args = list(p.get("args", ()))[1:]
            start = p.get("kwargs", {}).get("start_dim", args[0] if args else 0)
        else:
            start = 1
        if start < 0:
            start += n + 2
        if start > 1:
            raise ArchcountError("flattening only spatial axes together is not supported", layer=path)
        return _Step(node.name, path, tname, "flatten", one, "global")
    if key in _CAT:
        args = p.get("args", ())
        dim = p.get("kwargs", {}).get("dim", args[1] if len(args) > 1 else 0)
        if int(dim) not in (1, -(n + 1)):
            raise ArchcountError(f"torch.cat along dim {dim}: receptive fields support concatenation of "
                                 f"channels (dim=1) only", layer=path)
        return _Step(node.name, path, tname, "merge", tensor_ins, "merge")
    if key == _LINEAR:
        return _Step(node.name, path, tname, "linear", one, "linear")
    # anything else: ask its counting rule for its category
    category = _category(node, registry)
    if category in ("elementwise", "norm"):
        return _Step(node.name, path, tname, "merge", tensor_ins, "identity" if len(tensor_ins) == 1 else "merge")
    raise ArchcountError(f"no receptive-field rule for {tname} (category {category})", layer=path)


#: torch built-ins that act position by position (their statistics aside): identity for receptive fields
_PASS_PREFIXES = ("torch.nn.modules.batchnorm.", "torch.nn.modules.instancenorm.", "torch.nn.modules.normalization.",
                  "torch.nn.modules.activation.", "torch.nn.modules.dropout.", "torch.nn.modules.linear.Identity")
_NOT_PASS = ("torch.nn.modules.activation.MultiheadAttention",)


def _layer_category(key: str, mro: Sequence[str], params: Mapping[str, Any], n_inputs: int,
                   registry: RuleRegistry = RULES, path: str = "") -> str:
    """The counting category of a layer (``elementwise``, ``norm``, ``conv``, ...), or ``unknown``.

    torch's normalisation, activation and dropout modules are ``elementwise``/``norm`` by their
    module; other layers ask their rule, with a probe input shaped after the layer's own
    hyperparameters (so that rules checking channel counts accept it).
    """
    found = registry.resolve(tuple(mro) or (key,))
    if found is None:
        return "unknown"
    if found[0].startswith(_PASS_PREFIXES) and found[0] not in _NOT_PASS:
        return "norm" if "norm" in found[0] else "elementwise"
    channels = next((params[a] for a in ("num_features", "num_channels", "in_channels") if a in params), 4)
    norm = params.get("normalized_shape")
    shape = (channels, 8, 8) if norm is None else (channels, *_tuple(norm, 1))
    spec = LayerSpec(path, key, tuple(mro), params, (), key)
    try:
        return found[1](spec, [shape] * max(1, n_inputs)).category
    except Exception:
        return "unknown"


def _category(node: Any, registry: RuleRegistry) -> str:
    return _layer_category(node.key, node.mro_keys, node.params, len(node.inputs), registry, node.path)


# =========================================================================== propagation (unbounded line)

@dataclass(frozen=True)
class _State:
    kind: str                                   #: tensor | const | nontensor
    axes: tuple[Any, ...] = ()                  #: per axis: _Win | "global" | "drift"
    spatial: bool = True                        #: False after a flatten
    note: str = ""


def _propagate(steps: Sequence[_Step], n: int, ctx: _Ctx) -> dict[str, _State]:
    env: dict[str, _State] = {}
    for st in steps:
        if st.kind == "input":
            env[st.name] = _State("tensor", tuple(_identity_win() for _ in range(n)))
            continue
        if st.kind in ("const", "nontensor"):
            env[st.name] = _State(st.kind)
            continue
        ins = [env[i] for i in st.inputs if env[i].kind == "tensor"]
        if not ins:
            env[st.name] = _State("const")
            continue
        if st.kind == "flatten":
            env[st.name] = _State("tensor", (_GLOBAL,) * n, spatial=False)
            continue
        if st.kind == "merge":
            env[st.name] = _merge(ins, n, ctx)
            continue
        src = ins[0]
        if st.kind == "linear":
            if src.spatial:
                raise ArchcountError("a Linear layer on a tensor with positions mixes its last axis only; "
                                     "receptive fields support Linear after a flatten or global pooling",
                                     layer=st.path)
            env[st.name] = src
            continue
        axes = []
        for i, aop in enumerate(st.axes):
            w = src.axes[i]
            if not isinstance(w, _Win):
                axes.append(w)
                continue
            axes.append(_apply_axis(w, aop, ctx, st.path))
        env[st.name] = _State("tensor", tuple(axes), src.spatial and not all(a == _GLOBAL for a in axes))
    return env


def _apply_axis(w: _Win, aop: _AxisOp, ctx: _Ctx, path: str) -> Any:
    if aop.kind == "identity":
        return w
    if aop.kind == "global":
        return _GLOBAL
    if aop.kind == "upsample":
        return _upsample_win(w, aop.f)
    K = ctx.aff(aop.K, "kernel_size", path)
    if aop.kind == "conv":
        return _conv_win(w, K, aop.s, ctx.aff(aop.pl, "padding", path), aop.d, ctx)
    if aop.kind == "transposed":
        return _transposed_win(w, K, aop.s, ctx.aff(aop.pl, "padding", path), aop.d, ctx)
    raise AssertionError(aop.kind)  # pragma: no cover


def _merge(ins: Sequence[_State], n: int, ctx: _Ctx) -> _State:
    if len(ins) == 1:
        return ins[0]
    axes: list[Any] = []
    note = ""
    for i in range(n):
        per = [s.axes[i] for s in ins]
        if any(a == _GLOBAL for a in per):
            axes.append(_GLOBAL)
        elif any(a == _DRIFT for a in per):
            axes.append(_DRIFT)
        else:
            jumps = {w.jump for w in per}
            if len(jumps) > 1:
                axes.append(_DRIFT)
                note = ("branches arrive with different jumps (" + ", ".join(str(j) for j in sorted(jumps)) +
                        "): the union of their windows drifts with the position, so its size depends on the "
                        "input size")
            else:
                axes.append(_union_win(per, ctx))
    if not note and any(isinstance(a, _Win) and None in a.lo for s in ins for a in s.axes):
        note = ("a branch has units that read nothing (a transposed conv with kernel < stride): windows are "
                "merged axis by axis, so min_size may be overstated where a branch is empty on the other axis")
    return _State("tensor", tuple(axes), all(s.spatial for s in ins), note)


@dataclass(frozen=True)
class _AxisStats:
    size: _Aff                 #: 0 when every unit reads nothing
    min_size: _Aff
    start: _Aff | None
    jump: Fraction
    P: int


def _stats(w: _Win, ctx: _Ctx) -> _AxisStats:
    sizes = [(_Aff.const(0) if lo is None else hi - lo + 1) for lo, hi in zip(w.lo, w.hi)]
    big = small = sizes[0]
    for s in sizes[1:]:
        big, small = ctx.max(big, s), ctx.min(small, s)
    start = None if w.lo[0] is None else (w.lo[0] + w.hi[0]) * Fraction(1, 2)
    return _AxisStats(big, small, start, w.jump, w.P)


# =========================================================================== bounded line (numeric input)

def _finite(steps: Sequence[_Step], sizes: Sequence[int], kval: int | None) -> dict[str, Any]:
    """Per node and axis: the exact windows of every unit of a numeric input, clipped by the borders.

    A global axis holds ``("global", (first, last))`` of the input rows read at all.
    """
    ctx = _Ctx(kval=kval if kval is not None else 0)
    n = len(sizes)
    env: dict[str, Any] = {}
    for st in steps:
        if st.kind == "input":
            env[st.name] = ("tensor", tuple([(i, i) for i in range(s)] for s in sizes))
            continue
        if st.kind in ("const", "nontensor"):
            env[st.name] = (st.kind,)
            continue
        ins = [env[i] for i in st.inputs if env[i][0] == "tensor"]
        if not ins:
            env[st.name] = ("const",)
            continue
        if st.kind == "flatten":
            env[st.name] = ("tensor", tuple(_coverage(a) for a in ins[0][1]))
            continue
        if st.kind == "linear":
            env[st.name] = ins[0]
            continue
        if st.kind == "merge":
            axes = []
            for i in range(n):
                per = [s[1][i] for s in ins]
                if any(isinstance(a, tuple) for a in per):
                    axes.append(_union_coverage([a if isinstance(a, tuple) else _coverage(a) for a in per]))
                    continue
                if len({len(a) for a in per}) != 1:
                    raise ArchcountError("merged tensors differ in size", layer=st.path)
                axes.append([_union_pair([a[o] for a in per]) for o in range(len(per[0]))])
            env[st.name] = ("tensor", tuple(axes))
            continue
        axes = []
        for i, aop in enumerate(st.axes):
            a = ins[0][1][i]
            if isinstance(a, tuple):
                axes.append(a)
            else:
                axes.append(_finite_axis(a, aop, ctx, st.path))
        env[st.name] = ("tensor", tuple(axes))
    return env


def _union_pair(ws: Sequence[Any]) -> Any:
    got = [w for w in ws if w is not None]
    if not got:
        return None
    return min(w[0] for w in got), max(w[1] for w in got)


def _coverage(a: Any) -> tuple:
    if isinstance(a, tuple):
        return a
    got = [w for w in a if w is not None]
    return (_GLOBAL, (min(w[0] for w in got), max(w[1] for w in got)) if got else None)


def _union_coverage(cs: Sequence[tuple]) -> tuple:
    return (_GLOBAL, _union_pair([c[1] for c in cs]))


def _finite_axis(a: list, aop: _AxisOp, ctx: _Ctx, path: str) -> Any:
    nin = len(a)
    if aop.kind == "identity":
        return a
    if aop.kind == "global":
        return _coverage(a)
    if aop.kind == "upsample":
        return [a[o // aop.f] for o in range(nin * aop.f)]
    K = int(ctx.aff(aop.K, "kernel_size", path).b)
    pl = int(ctx.aff(aop.pl, "padding", path).b)
    pr = int(ctx.aff(aop.pr, "padding", path).b)
    s, d = aop.s, aop.d
    if aop.kind == "conv":
        span = nin + pl + pr - d * (K - 1) - 1
        if aop.ceil:
            nout = -(-span // s) + 1
            if (nout - 1) * s >= nin + pl:
                nout -= 1
        else:
            nout = span // s + 1
        out = []
        for o in range(max(nout, 0)):
            xs = [o * s - pl + t * d for t in range(K)]
            out.append(_union_pair([a[x] for x in xs if 0 <= x < nin]))
        return out
    op = int(ctx.aff(aop.op, "output_padding", path).b)
    nout = (nin - 1) * s - 2 * pl + d * (K - 1) + op + 1
    out = []
    for o in range(max(nout, 0)):
        u = o + pl
        parents = [(u - j * d) // s for j in range(K) if (u - j * d) % s == 0]
        out.append(_union_pair([a[i] for i in parents if 0 <= i < nin]))
    return out


# =========================================================================== joining residue classes

def _closed_form(per_class: Mapping[int, tuple[Fraction, Fraction]], M: int) -> Any:
    """One expression in k for class-wise affine values ``alpha*k + beta`` (k = c mod M)."""
    classes = sorted(per_class)
    alphas = {per_class[c][0] for c in classes}
    k = K_SYM

    def expr(alpha: Fraction, beta: Fraction) -> Any:
        return sp.Rational(alpha.numerator, alpha.denominator) * k + sp.Rational(beta.numerator, beta.denominator)

    if len(set(per_class.values())) == 1:
        return _num(sp.expand(expr(*per_class[classes[0]])))
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


# =========================================================================== the public function

def receptive_field(model: Any, *, input_size: Any = None, symbols: Mapping[str, Any] | None = None,
                    registry: RuleRegistry = RULES, **hparams: Any) -> ReceptiveField:
    """Receptive field of every layer of ``model``: largest/smallest window, jump, start; symbolic in k.

    ``model`` is a zoo name, a factory or an ``nn.Module``; hyperparameters not fixed in ``hparams``
    are lifted (only the kernel k matters here).  ``input_size`` (``(H, W)`` or one number) is
    used for global layers and, when numeric together with the kernel, for ``visible`` (the
    largest window clipped to the image) and the exact input extent read by global layers;
    it defaults to the zoo model's fixed size, else the symbols ``(H, W)``.

    >>> rf = receptive_field("pool_upsample")
    >>> rf.size[0]
    10*k + Mod(k, 4) - 7
    >>> [rf.evaluate(k=v).size[0] for v in (3, 5, 7)]
    [26, 44, 66]
    >>> g = receptive_field("mnist_global_pool", kernel=3, input_size=32)
    >>> g.last_spatial, g.spatial.size, g.size
    ('features.7', (12, 12), (32, 32))
    """
    graph = _graph(model, hparams, symbols, registry)
    spec = None
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
    sizes = _input_sizes(input_size, spec, graph.model, _spatial_dims(graph))
    n = len(sizes)
    steps = _plan(graph, n, registry)
    symbolic = any(K_SYM in _free(node.params) for node in graph.nodes if node.op == "call_module"
                   or node.op == "call_function")
    parity = graph.kernel_parity if symbolic else None
    stats, notes_by_node, assumptions = _solve(steps, n, symbolic, parity, graph.model)
    kval = _numeric_kernel(graph)
    finite = None
    if all(isinstance(s, int) for s in sizes) and not symbolic:
        try:
            finite = _finite(steps, sizes, kval)
        except (IndexError, ValueError):  # pragma: no cover - sizes invalid for the model
            finite = None
    small_k = None
    if all(isinstance(s, int) for s in sizes) and symbolic:
        small_k = _small_kernel_coverage(steps, sizes, parity)
    layers, output, last_spatial = _rows(graph, steps, stats, notes_by_node, sizes, finite, small_k)
    notes = []
    if any(r.varies for r in layers):
        notes.append("window sizes vary with the output position where 'varies' is set: size is the largest, "
                     "min_size the smallest")
    hp = dict(graph.hparams)
    return ReceptiveField(graph.model, hp, tuple(sizes), tuple(layers), output, last_spatial, parity,
                          tuple(assumptions), tuple(notes))


def _graph(model: Any, hparams: Mapping[str, Any], symbols: Mapping[str, Any] | None,
           registry: RuleRegistry) -> Any:
    """The captured graph (cached for zoo names and factories); a concrete module is traced as it is
    (its input channels need not be inferable: receptive fields do not depend on them)."""
    if _is_module(model):
        from .capture import CapturedGraph, trace_module
        if hparams:
            raise ArchcountError("hyperparameters cannot be set on a concrete nn.Module; pass a factory",
                                 argument=", ".join(hparams))
        name = type(model).__name__
        return CapturedGraph(name, tuple(trace_module(model, name, registry)), {}, None)
    from .counting import _capture
    return _capture(model, hparams, symbols, registry)


def _free(params: Mapping[str, Any]) -> set:
    out: set = set()

    def walk(v: Any) -> None:
        if isinstance(v, sp.Basic):
            out.update(v.free_symbols)
        elif isinstance(v, (tuple, list)):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
    walk(params)
    return out


def _numeric_kernel(graph: Any) -> int | None:
    kv = graph.hparams.get("kernel")
    return int(kv) if isinstance(kv, int) else None


def _spatial_dims(graph: Any) -> int:
    """Spatial axes of the input: from the first layer with a kernel_size tuple (1-d, 2-d or 3-d); else 2."""
    for node in graph.nodes:
        ks = node.params.get("kernel_size") if node.op == "call_module" else None
        if isinstance(ks, tuple) and 1 <= len(ks) <= 3:
            return len(ks)
    return 2


def _input_sizes(input_size: Any, spec: Any, model: str, n: int = 2) -> tuple[Any, ...]:
    if input_size is None:
        if spec is not None and spec.fixed_size:
            return tuple(spec.fixed_size)
        from .symbols import positive_int_symbol
        return {1: (H,), 2: (H, W), 3: (positive_int_symbol("D"), H, W)}[n]
    from .counting import input_sizes
    return input_sizes(input_size, n, spec=spec, model=model)


def _solve(steps: Sequence[_Step], n: int, symbolic: bool, parity: str | None,
           model: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Per node: per-axis (size, min_size, start, jump, period, varies) as expressions in k."""
    if not symbolic:
        env = _propagate(steps, n, _Ctx(kval=0))
        return _numeric_stats(env, _Ctx(kval=0)), {k_: s.note for k_, s in env.items() if s.note}, []
    M = 2
    while True:
        try:
            per_class, notes, tmins = _classes(steps, n, M, parity)
            break
        except _NeedModulus as exc:
            M *= exc.factor
            if M > _MAX_MODULUS:
                raise ArchcountError("the receptive field depends on k modulo more than "
                                     f"{_MAX_MODULUS}; give a numeric kernel", model=model) from None
    # small kernels below a class's threshold: enumerate them exactly
    exceptions: dict[int, dict[str, Any]] = {}
    for c, tmin in tmins.items():
        for t in range(tmin):
            kv = M * t + c
            env = _propagate(steps, n, _Ctx(kval=kv))
            exceptions[kv] = _numeric_stats(env, _Ctx(kval=kv))
    stats = _join(per_class, M, exceptions)
    _self_check(steps, n, stats, sorted({M * (tmins[c] + 1) + c for c in tmins}), model)
    assumptions = []
    if parity:
        assumptions.append(f"k {parity} (the model builds only with {parity} kernels)")
    return stats, notes, assumptions


def _classes(steps: Sequence[_Step], n: int, M: int,
             parity: str | None) -> tuple[dict[int, dict], dict[str, str], dict[int, int]]:
    per_class: dict[int, dict] = {}
    tmins: dict[int, int] = {}
    notes: dict[str, str] = {}
    for c in range(1, M + 1):
        if parity == "odd" and c % 2 == 0 or parity == "even" and c % 2 == 1:
            continue
        t_min = 0
        while True:
            ctx = _Ctx(M=M, c=c, t_min=t_min)
            try:
                env = _propagate(steps, n, ctx)
                per_class[c] = _class_stats(env, ctx)
                break
            except _RaiseTmin as exc:
                if exc.t <= t_min:  # pragma: no cover - defensive
                    raise AssertionError("receptive-field comparison did not settle") from None
                t_min = exc.t
        tmins[c] = t_min
        notes.update({k_: s.note for k_, s in env.items() if s.note})
    return per_class, notes, tmins


def _class_stats(env: Mapping[str, _State], ctx: _Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, st in env.items():
        if st.kind != "tensor":
            continue
        axes = []
        for a in st.axes:
            axes.append(_stats(a, ctx) if isinstance(a, _Win) else a)
        out[name] = (tuple(axes), st.spatial)
    return out


def _numeric_stats(env: Mapping[str, _State], ctx: _Ctx) -> dict[str, Any]:
    """Stats of a numeric propagation, as sympy numbers, in the joined format."""
    out: dict[str, Any] = {}
    for name, (axes, spatial) in _class_stats(env, ctx).items():
        row = []
        for a in axes:
            if isinstance(a, _AxisStats):
                row.append({"size": _num(a.size.b), "min_size": _num(a.min_size.b),
                            "start": None if a.start is None else _num(a.start.b),
                            "jump": _num(a.jump), "period": a.P, "varies": a.size.b != a.min_size.b})
            else:
                row.append(a)
        out[name] = (tuple(row), spatial)
    return out


def _join(per_class: Mapping[int, dict], M: int, exceptions: Mapping[int, dict]) -> dict[str, Any]:
    classes = sorted(per_class)
    names = list(per_class[classes[0]])
    out: dict[str, Any] = {}
    for name in names:
        first_axes, spatial = per_class[classes[0]][name]
        row = []
        for i, a0 in enumerate(first_axes):
            per = {c: per_class[c][name][0][i] for c in classes}
            if not all(isinstance(a, _AxisStats) for a in per.values()):
                kinds = {a if isinstance(a, str) else "window" for a in per.values()}
                row.append(_DRIFT if _DRIFT in kinds else _GLOBAL if kinds == {_GLOBAL} else _DRIFT)
                continue
            item: dict[str, Any] = {}
            for q in ("size", "min_size", "start"):
                vals = {c: getattr(a, q) for c, a in per.items()}
                if any(v is None for v in vals.values()):
                    item[q] = None
                    continue
                item[q] = _with_exceptions(_closed_form({c: _to_k(v, M, c) for c, v in vals.items()}, M),
                                           {kv: ex[name][0][i][q] for kv, ex in exceptions.items()
                                            if isinstance(ex[name][0][i], dict)})
            item["jump"] = _num(per[classes[0]].jump)
            periods = {a.P for a in per.values()}
            item["period"] = math.lcm(*periods)
            item["varies"] = any(a.size != a.min_size for a in per.values()) or any(
                ex[name][0][i]["varies"] for ex in exceptions.values() if isinstance(ex[name][0][i], dict))
            row.append(item)
        out[name] = (tuple(row), spatial)
    return out


def _to_k(v: _Aff, M: int, c: int) -> tuple[Fraction, Fraction]:
    """``a*t + b`` with ``t = (k - c)/M`` as ``(alpha, beta)`` of ``alpha*k + beta``."""
    return v.a / M, v.b - v.a * c / M


def _with_exceptions(expr: Any, values: Mapping[int, Any]) -> Any:
    special = [(val, kv) for kv, val in sorted(values.items())
               if val is not None and sp.simplify(sp.sympify(expr).subs(K_SYM, kv) - val) != 0]
    if not special:
        return expr
    return sp.Piecewise(*[(v, sp.Eq(K_SYM, kv)) for v, kv in special], (expr, True))


def _self_check(steps: Sequence[_Step], n: int, stats: Mapping[str, Any], kernels: Sequence[int],
                model: str) -> None:
    """The joined formulas must equal a direct enumeration (one kernel past each class's start)."""
    for kv in kernels:
        ctx = _Ctx(kval=kv)
        direct = _numeric_stats(_propagate(steps, n, ctx), ctx)
        for name, (axes, _) in direct.items():
            for i, a in enumerate(axes):
                b = stats[name][0][i]
                if not isinstance(a, dict) or not isinstance(b, dict):
                    continue
                for q in ("size", "min_size", "start"):
                    if a[q] is None or b[q] is None:
                        continue
                    if sp.simplify(sp.sympify(b[q]).subs(K_SYM, kv) - a[q]) != 0:  # pragma: no cover
                        raise ArchcountError(f"internal error: the {q} formula {b[q]} gives "
                                             f"{sp.sympify(b[q]).subs(K_SYM, kv)} at k={kv}, the enumeration "
                                             f"{a[q]}", model=model, layer=name)


#: with a symbolic kernel and a numeric input, global layers' extents are enumerated up to this kernel
SMALL_KERNELS = 15


def _small_kernel_coverage(steps: Sequence[_Step], sizes: Sequence[int],
                           parity: str | None) -> dict[str, dict[int, tuple]]:
    """Extent read by each global layer at each kernel up to :data:`SMALL_KERNELS` (numeric input)."""
    out: dict[str, dict[int, tuple]] = {}
    for kv in range(1, SMALL_KERNELS + 1):
        if parity == "odd" and kv % 2 == 0 or parity == "even" and kv % 2:
            continue
        try:
            env = _finite(steps, sizes, kv)
        except (IndexError, ValueError, ArchcountError):
            continue  # the model does not run on this input with this kernel
        for name, v in env.items():
            if v[0] == "tensor" and all(isinstance(a, tuple) for a in v[1]):
                out.setdefault(name, {})[kv] = tuple(
                    0 if a[1] is None else a[1][1] - a[1][0] + 1 for a in v[1])
    return out


def _rows(graph: Any, steps: Sequence[_Step], stats: Mapping[str, Any], notes: Mapping[str, str],
          sizes: Sequence[Any], finite: Mapping[str, Any] | None,
          small_k: Mapping[str, Mapping[int, tuple]] | None = None) -> tuple[list[LayerRF], str, str | None]:
    path_of = {st.name: st.path for st in steps}
    out_node = next(node for node in graph.nodes if node.op == "output")
    if len(out_node.inputs) != 1:
        raise ArchcountError(f"receptive fields need a model with one output, found {len(out_node.inputs)}",
                             model=graph.model)
    rows: list[LayerRF] = []
    drifted: set[str] = set()
    last_spatial = None
    for st in steps:
        if st.kind in ("input", "const", "nontensor") or st.name not in stats:
            continue
        axes, spatial = stats[st.name]
        row_notes = [notes[st.name]] if st.name in notes else []
        drift = any(a == _DRIFT for a in axes)
        if drift:
            drifted.add(st.name)
        if all(a == _GLOBAL for a in axes) or not spatial:
            cov = finite.get(st.name) if finite else None
            size = tuple(sizes)
            if cov is not None and all(isinstance(a, tuple) and a[1] is not None for a in cov[1]):
                size = tuple(a[1][1] - a[1][0] + 1 for a in cov[1])
                for ax, a, full in zip(AXIS_NAMES, cov[1], sizes):
                    if (a[1][0], a[1][1]) != (0, full - 1):
                        row_notes.append(f"reads input positions {a[1][0]}..{a[1][1]} of 0..{full - 1} along {ax}")
            elif small_k is not None and st.name in small_k:
                short = {kv: ext for kv, ext in small_k[st.name].items() if ext != tuple(sizes)}
                if short:
                    size = tuple(sp.Piecewise(*[(ext[i], sp.Eq(K_SYM, kv)) for kv, ext in sorted(short.items())],
                                              (sizes[i], True)) for i in range(len(sizes)))
                    row_notes.append(f"small kernels leave input rows unread (k = "
                                     f"{', '.join(map(str, sorted(short)))})")
                row_notes.append(f"extent read enumerated for k <= {SMALL_KERNELS}; larger kernels read the "
                                 f"whole input")
            elif not all(isinstance(s, int) for s in sizes) or finite is None:
                row_notes.append("reads every position of its input: the whole image (if some input rows "
                                 "were left unread by floor-mode layers, give numeric input and kernel sizes "
                                 "to see it)")
            rows.append(LayerRF(path_of[st.name], st.type_name, "global", _in_paths(st, path_of), size, size,
                                None, None, None, False, True, False, None, tuple(row_notes)))
            continue
        if drift:
            rows.append(LayerRF(path_of[st.name], st.type_name, st.op, _in_paths(st, path_of), None, None, None,
                                None, None, False, False, True, None,
                                tuple(row_notes or ["follows a drifting merge: no size independent of the "
                                                    "input size"])))
            continue
        vis = None
        if finite is not None and st.name in finite:
            vis_axes = []
            for a in finite[st.name][1]:
                got = [w[1] - w[0] + 1 for w in a if w is not None] if isinstance(a, list) else []
                vis_axes.append(max(got) if got else 0)
            vis = tuple(vis_axes)
        empty = any(a["size"] == 0 for a in axes)
        if empty:
            row_notes.append("no output unit reads any input")
        elif any(a["min_size"] == 0 for a in axes):
            row_notes.append("some output units read no input (a transposed conv with kernel < stride)")
        rows.append(LayerRF(path_of[st.name], st.type_name, st.op, _in_paths(st, path_of),
                            tuple(a["size"] for a in axes), tuple(a["min_size"] for a in axes),
                            tuple(a["jump"] for a in axes), tuple(a["start"] for a in axes),
                            tuple(a["period"] for a in axes), any(a["varies"] for a in axes), False, False, vis,
                            tuple(row_notes)))
        last_spatial = path_of[st.name]
    output = path_of[out_node.inputs[0]]
    if output not in [r.path for r in rows]:
        raise ArchcountError("the output is not a tensor that depends on the input", model=graph.model)
    return rows, output, last_spatial


def _in_paths(st: _Step, path_of: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(path_of.get(i, i) for i in st.inputs)


# =========================================================================== structural measurement (torch)

@dataclass(frozen=True)
class MeasuredLayer:
    """Input supports of single output units of one layer, measured on the connectivity copy."""

    path: str
    input_size: tuple[int, ...]           #: the input size this layer was measured at
    out_shape: tuple[int, ...]            #: its output (without batch)
    positions: tuple[tuple[int, ...], ...]
    windows: tuple[tuple[tuple[int, int] | None, ...], ...]   #: per position, per axis: (first, last) read
    filled: tuple[bool, ...]              #: per position: the support is the full box of its extents
    interior: tuple[bool, ...]            #: per position: an unclipped interior unit (centre run only)
    positional: bool                      #: the output has positions (not global)
    run: int = 8                          #: the first ``run`` positions are the centre run

    def extents(self) -> list[tuple[int, ...]]:
        return [tuple(0 if w is None else w[1] - w[0] + 1 for w in pos) for pos in self.windows]

    @property
    def max_size(self) -> tuple[int, ...]:
        ext = self.extents()
        return tuple(max(e[i] for e in ext) for i in range(len(ext[0])))

    @property
    def complete(self) -> bool:
        """Every unit of the centre run is interior: its largest and smallest windows are the unclipped ones."""
        return self.positional and all(self.interior[: self.run])

    @property
    def interior_min(self) -> tuple[int, ...] | None:
        ext = [e for e, ok in zip(self.extents(), self.interior) if ok]
        return tuple(min(e[i] for e in ext) for i in range(len(ext[0]))) if ext else None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "input_size": list(self.input_size), "out_shape": list(self.out_shape),
                "positions": [list(p) for p in self.positions],
                "windows": [[None if w is None else list(w) for w in pos] for pos in self.windows],
                "filled": list(self.filled), "interior": list(self.interior), "positional": self.positional,
                "max_size": list(self.max_size)}


@dataclass(frozen=True)
class RFMeasurement:
    model: str
    hparams: Mapping[str, Any]
    layers: tuple[MeasuredLayer, ...]

    def layer(self, path: str) -> MeasuredLayer:
        for row in self.layers:
            if row.path == path:
                return row
        raise ArchcountError(f"layer {path!r} was not measured", model=self.model, argument="path")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "hparams": {k_: _jval(v) for k_, v in self.hparams.items()},
                "layers": [r.to_dict() for r in self.layers]}


def connectivity_copy(module: Any, registry: RuleRegistry = RULES) -> Any:
    """A float64 ``torch.fx.GraphModule`` with the connectivity of ``module`` and nothing else.

    Max pooling becomes average pooling (its gradient reaches every tap, not just the arg-max),
    activations, dropout and normalisation layers become identity (also as functions), every
    weight is 1 and every bias 0.  Node names are those of :func:`analysis.capture.capture`.
    """
    import copy

    import torch
    import torch.fx as fx
    import torch.nn as nn

    from .capture import _tracer_cls, mro_keys, module_params

    net = copy.deepcopy(module).double().eval()
    for name, sub in list(net.named_modules()):
        if not name:
            continue
        new = _replacement(sub, registry, mro_keys, module_params, nn)
        if new is not None:
            parent_name, _, attr = name.rpartition(".")
            parent = net.get_submodule(parent_name) if parent_name else net
            setattr(parent, attr, new)
    with torch.no_grad():
        for pname, prm in net.named_parameters():
            prm.fill_(0.0 if pname.rsplit(".", 1)[-1] == "bias" else 1.0)
    net.requires_grad_(False)
    tracer = _tracer_cls(registry)()
    graph = tracer.trace(net)
    gm = fx.GraphModule(net, graph)
    # identity layers (replaced modules, activation/normalisation functions) are taken out of the graph:
    # their outputs are their inputs, so they are measured once, as their input
    aliases: dict[str, tuple[str, str]] = {}   # erased node -> (its layer path, the node it equals)
    from .rules import type_key
    for node in list(gm.graph.nodes):
        refs = [a for a in list(node.args) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
        if len(refs) != 1:
            continue
        if node.op == "call_module":
            if not isinstance(gm.get_submodule(node.target), nn.Identity):
                continue
            path = str(node.target)
        elif node.op in ("call_function", "call_method"):
            key = type_key(node.target) if node.op == "call_function" else f"Tensor.{node.target}"
            if _layer_category(key, (key,), {"args": (), "kwargs": {}}, 1, registry, node.name) not in (
                    "elementwise", "norm"):
                continue
            path = node.name
        else:
            continue
        node.replace_all_uses_with(refs[0])
        aliases[node.name] = (path, refs[0].name)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm._archcount_aliases = aliases  # type: ignore[attr-defined]
    return gm


def _replacement(sub: Any, registry: RuleRegistry, mro_keys: Any, module_params: Any, nn: Any) -> Any:
    name = type(sub).__name__
    if name.startswith("MaxPool") and name[-2:] in ("1d", "2d", "3d"):
        if max(_tuple(sub.dilation, 1)) != 1:
            raise ArchcountError("a dilated max pool has no average-pool twin for the connectivity copy",
                                 layer=name)
        avg = getattr(nn, f"AvgPool{name[-2:]}")
        return avg(sub.kernel_size, sub.stride, sub.padding, ceil_mode=sub.ceil_mode, count_include_pad=True)
    if name.startswith("AdaptiveMaxPool"):
        return getattr(nn, f"AdaptiveAvgPool{name[-2:]}")(sub.output_size)
    found = registry.resolve(mro_keys(type(sub)))
    if found is None or found[0].startswith(("torch.nn.modules.conv", "torch.nn.modules.pooling",
                                             "torch.nn.modules.linear.Linear")):
        return None
    category = _layer_category(found[0], mro_keys(type(sub)), module_params(sub), 1, registry, name)
    return nn.Identity() if category in ("elementwise", "norm") else None


def measure_receptive_field(model: Any, *, input_size: int | None = None, run: int = 8, max_size: int = 512,
                            minimal_channels: bool = True, registry: RuleRegistry = RULES,
                            **hparams: Any) -> RFMeasurement:
    """Measure input supports of single output units of every layer on the real model's connectivity copy.

    For each layer, ``run`` consecutive positions on the centre diagonal (every phase up to period
    ``run``) and the corners and edge midpoints are back-propagated (one batch element each).
    Positional layers whose centre units touch the image border are measured again at twice the
    input size (up to ``max_size``; beyond a model's own size limit only the layers that still run
    are measured).  Zoo models are built with 1 input channel, 1 filter and 1 colour unless given
    (``minimal_channels``): every conv here is dense over channels, so the pattern over positions
    does not depend on the channel counts.

    >>> m = measure_receptive_field("conv_transpose", kernel=3)
    >>> m.layer("final").max_size, m.layer("final").interior_min
    ((15, 15), (11, 11))
    """
    import torch

    name, module, spec = _build(model, hparams, minimal_channels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is many times faster than contended ones
    try:
        return _measure(name, module, spec, hparams, input_size, run, max_size, registry, torch)
    finally:
        torch.set_num_threads(threads)


def _measure(name: str, module: Any, spec: Any, hparams: Mapping[str, Any], input_size: int | None, run: int,
             max_size: int, registry: RuleRegistry, torch: Any) -> RFMeasurement:
    gm = connectivity_copy(module, registry)
    aliases = getattr(gm, "_archcount_aliases", {})
    paths = {node.name: (str(node.target) if node.op == "call_module" else node.name) for node in gm.graph.nodes}
    in_ch = _input_channels(gm)
    size = input_size or _default_size(spec)
    results: dict[str, MeasuredLayer] = {}
    todo: set[str] | None = None
    while True:
        done = _measure_at(gm, size, in_ch, run, todo, torch)
        for key, ml in done.items():
            results[key] = ml
        grow = {key for key, ml in done.items() if ml.positional and not ml.complete}
        if not grow or size * 2 > max_size:
            break
        size *= 2
        todo = grow
    layers = []
    for node in gm.graph.nodes:
        if node.name in results:
            ml = results[node.name]
            layers.append(replace(ml, path=paths[node.name]))
    for path, target in aliases.values():
        if target in results:
            layers.append(replace(results[target], path=path))
    return RFMeasurement(name, dict(hparams), tuple(layers))


def _build(model: Any, hparams: Mapping[str, Any], minimal: bool) -> tuple[str, Any, Any]:
    import torch.nn as nn
    if isinstance(model, nn.Module):
        if hparams:
            raise ArchcountError("hyperparameters cannot be set on a concrete nn.Module", argument="hparams")
        return type(model).__name__, model, None
    if isinstance(model, str):
        import models as zoo
        spec = zoo.spec(model)
        hp = dict(hparams)
        if minimal:
            for key in ("num_in_channels", "num_filters", "num_colours"):
                if key in spec.defaults:
                    hp.setdefault(key, 1)
        try:
            return spec.name, zoo.build(model, **hp), spec
        except ArchcountError as exc:
            raise exc.with_context(model=spec.name) from None
    if callable(model):
        return getattr(model, "__name__", "model"), model(**hparams), None
    raise ArchcountError(f"expected a zoo name, a factory or an nn.Module, got {type(model).__name__}",
                         argument="model")


def _input_channels(gm: Any) -> int:
    import torch.nn as nn
    for m in gm.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                          nn.ConvTranspose3d)):
            return m.in_channels
    return 1


def _default_size(spec: Any) -> int:
    if spec is None:
        return 64
    if spec.fixed_size:
        return spec.fixed_size[0]
    size = 64
    while not spec.valid_size(size):  # pragma: no cover - zoo sizes accept 64
        size += 1
    return size


def _positions(shape: Sequence[int], run: int) -> list[tuple[int, ...]]:
    centre = [max(0, s // 2 - run // 2) for s in shape]
    out: list[tuple[int, ...]] = []
    for a in range(run):
        out.append(tuple(min(c + a, s - 1) for c, s in zip(centre, shape)))
    corners = [tuple(0 if (b >> i) & 1 == 0 else s - 1 for i, s in enumerate(shape)) for b in range(2 ** len(shape))]
    mids = []
    for i, s in enumerate(shape):
        for edge in (0, s - 1):
            mids.append(tuple(edge if j == i else t // 2 for j, t in enumerate(shape)))
    for p in corners + mids:
        if p not in out:
            out.append(p)
    return out


def _measure_at(gm: Any, size: int, in_ch: int, run: int, only: set[str] | None,
                torch: Any) -> dict[str, MeasuredLayer]:
    import torch.fx as fx

    values: dict[str, Any] = {}

    class _Recorder(fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            values[n.name] = out
            return out

    batch = run + 8  # the centre run, 4 corners and 4 edge midpoints (2-d)
    x = torch.ones((batch, in_ch, size, size), dtype=torch.float64, requires_grad=True)
    try:
        _Recorder(gm).run(x)
    except Exception as exc:  # beyond the model's size limits the later layers fail; measure those that ran
        if len(values) <= 1:
            raise ArchcountError(f"the structural measurement runs 2-d models on [BS, C, {size}, {size}] inputs, "
                                 f"and this one failed at once: {type(exc).__name__}: {exc}") from None
    out: dict[str, MeasuredLayer] = {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output") or node.name not in values:
            continue
        if only is not None and node.name not in only:
            continue
        v = values[node.name]
        if not isinstance(v, torch.Tensor) or v.dim() < 2 or v.shape[0] != batch or not v.requires_grad:
            continue
        spatial = tuple(v.shape[2:])
        positional = len(spatial) >= 1 and any(s > 1 for s in spatial)
        pos = _positions(spatial, run) if positional else [tuple(0 for _ in spatial)]
        pos = pos[:batch]
        loss = 0
        for b, p in enumerate(pos):
            loss = loss + v[(b, slice(None)) + p].sum()
        (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
        windows, filled, interior = [], [], []
        for b in range(len(pos)):
            mask = (grad[b] != 0).any(0)
            per_axis = []
            box = 1
            for ax in range(mask.dim()):
                other = tuple(i for i in range(mask.dim()) if i != ax)
                hit = mask.any(dim=other) if other else mask
                idx = hit.nonzero().flatten()
                if len(idx) == 0:
                    per_axis.append(None)
                    box = 0
                else:
                    lo, hi = int(idx[0]), int(idx[-1])
                    per_axis.append((lo, hi))
                    box *= hi - lo + 1
            windows.append(tuple(per_axis))
            filled.append(int(mask.sum()) == box)
            # border probes are never interior.  A centre unit is when its layer has at least 2*run positions
            # per axis (so the run sits in the middle half of the layer, away from missing border units) and
            # its support lies in the middle half of the image (ancestors falling off the border would put
            # it near that border); a unit reading nothing is judged by its position alone
            lo_ok, hi_ok = size // 4, size - 1 - size // 4
            inner = all(sh >= 2 * run and sh // 4 <= pi <= sh - 1 - sh // 4 for pi, sh in zip(pos[b], spatial))
            if all(w is not None for w in per_axis):
                inner = inner and all(lo_ok <= w[0] and w[1] <= hi_ok for w in per_axis)
            interior.append(positional and b < run and inner)
        out[node.name] = MeasuredLayer(node.name, (size,) * 2, tuple(v.shape[1:]), tuple(pos), tuple(windows),
                                       tuple(filled), tuple(interior), positional, run if positional else 0)
    return out


# =========================================================================== verification

@dataclass(frozen=True)
class RFCheckRow:
    kernel: int | None     #: None for a concrete nn.Module
    path: str
    quantity: str          #: size | min_size | start | coverage
    formula: Any
    measured: Any
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "path": self.path, "quantity": self.quantity,
                "formula": _jval(self.formula) if not isinstance(self.formula, tuple) else _jlist(self.formula),
                "measured": list(self.measured) if isinstance(self.measured, tuple) else self.measured,
                "ok": self.ok}


@dataclass(frozen=True)
class RFCheck:
    """The symbolic receptive fields against the structural measurement, layer by layer."""

    model: str
    kernels: tuple[int | None, ...]
    rows: tuple[RFCheckRow, ...]
    skipped: tuple[str, ...] = ()         #: layers whose interior units did not fit in ``max_size``

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def failures(self) -> list[RFCheckRow]:
        return [r for r in self.rows if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "kernels": list(self.kernels), "ok": self.ok,
                "rows": [r.to_dict() for r in self.rows], "skipped": list(self.skipped)}


def verify_receptive_field(model: Any, kernels: Sequence[int] | None = None, *, input_size: int | None = None,
                           max_size: int = 512, **hparams: Any) -> RFCheck:
    """Check :func:`receptive_field` against the structural measurement, layer by layer, at each kernel.

    The formulas are derived once (symbolic in k unless ``kernel`` is given) and evaluated at each
    kernel.  Per positional layer: the largest window equals the largest measured support
    (``size``), the smallest the smallest interior support (``min_size``), and ``start + jump*o``
    the centre of a measured interior unit ``o`` of phase 0 (``start``); the exact bounded-image
    windows equal the measured ones at every measured position, borders included (``windows``).
    Per global layer: the claimed size (the whole input; the exact extent read when the kernel and
    ``input_size`` are numeric) equals the measured extent read (``coverage``).  ``kernels``
    defaults to (3, 5, 7), or to the given ``kernel``.

    >>> verify_receptive_field("unet", kernels=(3,)).ok
    True
    """
    fixed = hparams.get("kernel")
    if _is_module(model):
        if kernels not in (None, (), [None], (None,)):
            raise ArchcountError("a concrete nn.Module has fixed kernels; pass a factory or zoo name to vary k",
                                 argument="kernels")
        kernels = (None,)
    elif kernels is None:
        kernels = (fixed,) if fixed is not None else (3, 5, 7)
    elif fixed is not None and tuple(kernels) != (fixed,):
        raise ArchcountError(f"kernel={fixed} is fixed but kernels={tuple(kernels)} were asked for",
                             argument="kernels")
    rf = receptive_field(model, input_size=input_size, **hparams)
    graph = _graph(model, hparams, None, RULES)
    steps = _plan(graph, 2, RULES)
    path_of = {st.name: st.path for st in steps}
    rows: list[RFCheckRow] = []
    skipped: list[str] = []
    for kv in kernels:
        meas_hp = {key: v for key, v in hparams.items() if key != "kernel"}
        if kv is not None:
            meas_hp["kernel"] = kv
        periods = [p for r in rf.layers for p in (r.period or ())]
        run = min(64, max([8] + [2 * p for p in periods]))
        meas = measure_receptive_field(model, input_size=input_size, run=run, max_size=max_size, **meas_hp)
        at = rf.evaluate(k=kv) if kv is not None and K_SYM in _expr_symbols(rf) else rf
        finite: dict[tuple[int, ...], dict[str, Any]] = {}
        for layer in at.layers:
            try:
                ml = meas.layer(layer.path)
            except ArchcountError:
                continue
            if ml.input_size not in finite:
                env = _finite(steps, ml.input_size, kv)
                finite[ml.input_size] = {path_of[name]: v for name, v in env.items() if name in path_of}
            exact = finite[ml.input_size].get(layer.path)
            if layer.is_global:
                want = tuple(_num(sp.sympify(x).subs({H: ml.input_size[0], W: ml.input_size[1]})) for x in layer.size)
                rows.append(RFCheckRow(kv, layer.path, "coverage", want, ml.max_size, want == ml.max_size))
                if exact is not None and exact[0] == "tensor":
                    got = tuple(None if a[1] is None else tuple(a[1]) for a in exact[1])
                    rows.append(RFCheckRow(kv, layer.path, "windows", got, ml.windows[0],
                                           got == tuple(ml.windows[0])))
                continue
            if layer.size is None or not ml.positional:
                continue
            if exact is not None and exact[0] == "tensor":
                lengths = tuple(len(a) if isinstance(a, list) else None for a in exact[1])
                if lengths != tuple(ml.out_shape[1:]):
                    rows.append(RFCheckRow(kv, layer.path, "shape", lengths, tuple(ml.out_shape[1:]), False))
                    continue
                pred = tuple(_product(tuple(exact[1][ax][pi] for ax, pi in enumerate(p))) for p in ml.positions)
                rows.append(RFCheckRow(kv, layer.path, "windows", pred, ml.windows, pred == tuple(ml.windows)))
            if not ml.complete:
                skipped.append(f"k={kv} {layer.path}: interior units need an input larger than {ml.input_size[0]}")
                continue
            rows.append(RFCheckRow(kv, layer.path, "size", layer.size, ml.max_size,
                                   tuple(layer.size) == ml.max_size))
            if ml.interior_min is not None:
                rows.append(RFCheckRow(kv, layer.path, "min_size", layer.min_size, ml.interior_min,
                                       tuple(layer.min_size) == ml.interior_min))
            centres = [(p, w) for p, w, ok in zip(ml.positions, ml.windows, ml.interior)
                       if ok and None not in w and all(pi % per == 0 for pi, per in zip(p, layer.period))]
            if centres and all(s is not None for s in layer.start):
                p, w = centres[0]
                want = tuple(sp.sympify(s) + sp.sympify(j) * pi for s, j, pi in zip(layer.start, layer.jump, p))
                got_c = tuple(sp.Rational(a + b, 2) for a, b in w)
                rows.append(RFCheckRow(kv, layer.path, "start", want, got_c, want == got_c))
    return RFCheck(rf.model, tuple(kernels), tuple(rows), tuple(skipped))


def _is_module(model: Any) -> bool:
    if isinstance(model, str):
        return False
    try:
        import torch.nn as nn
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, nn.Module)


def _product(axes: tuple) -> tuple:
    """A unit's support is the product of its per-axis windows: empty on one axis, empty on all."""
    return tuple(None for _ in axes) if any(a is None for a in axes) else axes


def _expr_symbols(rf: ReceptiveField) -> set:
    out: set = set()
    for r in rf.layers:
        for t in (r.size, r.min_size, r.start):
            for x in t or ():
                if isinstance(x, sp.Basic):
                    out |= x.free_symbols
    return out


__all__ = ["LayerRF", "MeasuredLayer", "RFCheck", "RFCheckRow", "RFMeasurement", "ReceptiveField",
           "connectivity_copy", "measure_receptive_field", "receptive_field", "verify_receptive_field"]
