"""Receptive-field propagation over the planned steps: per residue class of k, and on a bounded input.

:func:`solve` gives, per step and spatial axis, the largest and smallest window, the start and the
jump, symbolic in k (the classes ``k = M*t + c`` joined into one formula), or numbers for a fixed
kernel; :func:`finite` enumerates the exact windows of every unit of a numeric input (clipped by
the borders; bounded by :data:`FINITE_LIMIT` positions per axis); :func:`connected` counts the
input positions a unit actually reads inside its span (dilated kernels leave gaps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..symbols import k as K_SYM
from .plan import AxisOp, Key, Step
from .windows import (DRIFT, GLOBAL, MAX_MODULUS, Aff, Ctx, NeedModulus, RaiseTmin, Win, closed_form, conv_win,
                      identity_win, num, transposed_win, union_win, upsample_win)

#: numeric inputs up to this many positions per axis get their exact bounded windows enumerated
FINITE_LIMIT = 4096
UNKNOWN = "unknown"


class SizeDependent(Exception):
    """A layer whose windows depend on the input size: unknown on the unbounded line."""


@dataclass(frozen=True)
class State:
    kind: str                                   #: tensor | const | unknown
    axes: tuple[Any, ...] = ()                  #: per spatial axis: Win | "global" | "drift"
    positional: bool = True
    note: str = ""


def _key(st: Step, i: int = 0) -> Key:
    return (st.name, i)


def propagate(steps: Sequence[Step], n: int, ctx: Ctx) -> dict[str, State]:
    env: dict[Key, State] = {}
    out: dict[str, State] = {}
    for st in steps:
        if st.kind == "input":
            state = State("tensor", tuple(identity_win() for _ in range(n)))
        elif st.kind == "const":
            state = State("const")
        elif st.kind == "unknown":
            state = State(UNKNOWN, note=st.reason)
        else:
            ins = [env[i] for i in st.inputs if i in env]
            bad = [s for s in ins if s.kind == UNKNOWN]
            tensors = [s for s in ins if s.kind == "tensor"]
            if bad:
                state = State(UNKNOWN, note=bad[0].note or "follows an operation whose windows are unknown")
            elif not tensors:
                state = State("const")
            elif st.kind == "merge":
                state = _merge(tensors, n, ctx)
            else:
                src = tensors[0]
                axes = []
                try:
                    for i in range(n):
                        w = src.axes[i]
                        aop = st.axes.get(i)
                        if aop is not None and isinstance(w, Win):
                            w = apply_axis(w, aop, ctx, st.path)
                        axes.append(w)
                    state = State("tensor", tuple(axes), st.positional, src.note)
                except SizeDependent as exc:
                    state = State(UNKNOWN, note=str(exc))
            if state.kind == "tensor" and st.kind == "merge":
                state = State("tensor", state.axes, st.positional, state.note)
            if state.kind == "tensor" and st.globals:
                state = State("tensor", tuple(GLOBAL if i in st.globals else a for i, a in enumerate(state.axes)),
                              state.positional, state.note)
        for i in range(max(1, st.n_outputs)):
            env[_key(st, i)] = state
        out[st.name] = state
    return out


def apply_axis(w: Win, aop: AxisOp, ctx: Ctx, path: str) -> Any:
    if aop.kind == "global":
        return GLOBAL
    if aop.kind == "upsample":
        return upsample_win(w, aop.f, aop.offsets, ctx)
    if aop.kind == "pad":
        return conv_win(w, Aff.const(1), 1, ctx.aff(aop.pl, "padding", path), 1, ctx)
    if aop.kind == "crop":
        if int(aop.pl) < 0:
            raise SizeDependent("slicing from the end: the offset depends on the input size (exact at a numeric "
                                "input size)")
        return conv_win(w, Aff.const(1), aop.s, Aff.const(-int(aop.pl)), 1, ctx)
    if aop.kind in ("adaptive", "resize"):
        what = (f"adaptive pooling to {aop.out} positions" if aop.kind == "adaptive" else
                "resizing by a factor that is not an integer (or with align_corners=True)")
        raise SizeDependent(f"{what}: the windows depend on the input size (exact at a numeric input size)")
    K = ctx.aff(aop.K, "kernel_size", path)
    if aop.kind == "conv":
        return conv_win(w, K, aop.s, ctx.aff(aop.pl, "padding", path), aop.d, ctx)
    if aop.kind == "transposed":
        return transposed_win(w, K, aop.s, ctx.aff(aop.pl, "padding", path), aop.d, ctx)
    raise AssertionError(aop.kind)  # pragma: no cover


def _merge(ins: Sequence[State], n: int, ctx: Ctx) -> State:
    if len(ins) == 1:
        return ins[0]
    axes: list[Any] = []
    note = ""
    for i in range(n):
        per = [s.axes[i] for s in ins]
        if any(a == GLOBAL for a in per):
            axes.append(GLOBAL)
        elif any(a == DRIFT for a in per):
            axes.append(DRIFT)
        else:
            jumps = {w.jump for w in per}
            if len(jumps) > 1:
                axes.append(DRIFT)
                note = ("branches arrive with different jumps (" + ", ".join(str(j) for j in sorted(jumps)) +
                        "): the union of their windows drifts with the position, so its size depends on the "
                        "input size")
            else:
                axes.append(union_win(per, ctx))
    if not note and any(isinstance(a, Win) and None in a.lo for s in ins for a in s.axes):
        note = ("a branch has units that read nothing (a transposed conv with kernel < stride): windows are "
                "merged axis by axis, so min_size may be overstated where a branch is empty on the other axis")
    return State("tensor", tuple(axes), all(s.positional for s in ins), note)


@dataclass(frozen=True)
class AxisStats:
    size: Aff
    min_size: Aff
    start: Aff | None
    jump: Fraction
    P: int


def stats(w: Win, ctx: Ctx) -> AxisStats:
    sizes = [(Aff.const(0) if lo is None else hi - lo + 1) for lo, hi in zip(w.lo, w.hi)]
    big = small = sizes[0]
    for s in sizes[1:]:
        big, small = ctx.max(big, s), ctx.min(small, s)
    start = None if w.lo[0] is None else (w.lo[0] + w.hi[0]) * Fraction(1, 2)
    return AxisStats(big, small, start, w.jump, w.P)


# =========================================================================== bounded line (numeric input)

def finite(steps: Sequence[Step], sizes: Sequence[int], kval: int | None,
           recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per step and axis: the exact windows of every unit of a numeric input, clipped by the borders.

    A global axis holds ``("global", (first, last))`` of the input rows read at all.
    """
    ctx = Ctx(kval=kval if kval is not None else 0)
    n = len(sizes)
    env: dict[Key, Any] = {}
    out: dict[str, Any] = {}
    for st in steps:
        if st.kind == "input":
            state: Any = ("tensor", tuple([(i, i) for i in range(s)] for s in sizes))
        elif st.kind in ("const", "unknown"):
            state = (st.kind,)
        else:
            ins = [env[i] for i in st.inputs if i in env]
            if any(s[0] == "unknown" for s in ins):
                state = ("unknown",)
            else:
                ins = [s for s in ins if s[0] == "tensor"]
                if not ins:
                    state = ("const",)
                elif st.kind == "merge":
                    axes = []
                    for i in range(n):
                        per = [s[1][i] for s in ins]
                        if any(isinstance(a, tuple) for a in per):
                            axes.append(_union_coverage([a if isinstance(a, tuple) else _coverage(a) for a in per]))
                            continue
                        if len({len(a) for a in per}) != 1:
                            axes.append(_union_coverage([_coverage(a) for a in per]))
                            continue
                        axes.append([_union_pair([a[o] for a in per]) for o in range(len(per[0]))])
                    state = ("tensor", tuple(axes))
                else:
                    axes = []
                    for i in range(n):
                        a = ins[0][1][i]
                        aop = st.axes.get(i)
                        if aop is not None and not isinstance(a, tuple):
                            a = finite_axis(a, aop, ctx, st.path, recorded, st, i)
                        axes.append(a)
                    state = ("tensor", tuple(axes))
                if state[0] == "tensor" and st.globals:
                    state = ("tensor", tuple(_coverage(a) if i in st.globals else a
                                             for i, a in enumerate(state[1])))
        for j in range(max(1, st.n_outputs)):
            env[_key(st, j)] = state
        out[st.name] = state
    return out


def _union_pair(ws: Sequence[Any]) -> Any:
    got = [w for w in ws if w is not None]
    if not got:
        return None
    return min(w[0] for w in got), max(w[1] for w in got)


def _coverage(a: Any) -> tuple:
    if isinstance(a, tuple):
        return a
    got = [w for w in a if w is not None]
    return (GLOBAL, (min(w[0] for w in got), max(w[1] for w in got)) if got else None)


def _union_coverage(cs: Sequence[tuple]) -> tuple:
    return (GLOBAL, _union_pair([c[1] for c in cs]))


def _linear_taps(o: int, n_in: int, n_out: int, align: bool | None, scale: Any, cubic: bool) -> list[int]:
    """Input indices with a nonzero weight for output ``o`` of a (bi)linear / cubic resize (exact)."""
    if align:
        src = Fraction(0) if n_out <= 1 else Fraction(n_in - 1, n_out - 1) * o
    else:
        ratio = Fraction(1) / Fraction(scale).limit_denominator(10**9) if scale else Fraction(n_in, n_out)
        src = ratio * (Fraction(2 * o + 1, 2)) - Fraction(1, 2)
        if not cubic:
            src = max(src, Fraction(0))
    base = math.floor(src)
    frac = src - base
    if cubic:
        taps = [base] if frac == 0 else [base - 1, base, base + 1, base + 2]
        return sorted({min(max(t, 0), n_in - 1) for t in taps})
    i0 = min(base, n_in - 1)
    taps = [i0]
    if frac != 0 and i0 < n_in - 1:
        taps.append(i0 + 1)
    return taps


def finite_axis(a: list, aop: AxisOp, ctx: Ctx, path: str, recorded: Mapping[str, Any] | None = None,
                st: Step | None = None, axis: int = 0) -> Any:
    nin = len(a)
    if aop.kind == "global":
        return _coverage(a)
    if aop.kind == "upsample":
        out = []
        for o in range(nin * aop.f):
            q, r = divmod(o, aop.f)
            offs = aop.offsets[r] if aop.offsets else (0,)
            out.append(_union_pair([a[min(max(q + d, 0), nin - 1)] for d in offs]))
        return out
    if aop.kind == "adaptive":
        o_n = int(aop.out)
        return [_union_pair(a[(i * nin) // o_n:-((-(i + 1) * nin) // o_n)]) for i in range(o_n)]
    if aop.kind == "resize":
        n_out = _resized(nin, aop)
        cubic = aop.mode == "bicubic"
        if aop.mode in ("nearest", "nearest-exact"):
            ratio = Fraction(nin, n_out) if not aop.scale else 1 / Fraction(aop.scale).limit_denominator(10**9)
            if aop.mode == "nearest":
                return [a[min(math.floor(o * ratio), nin - 1)] for o in range(n_out)]
            return [a[min(math.floor((o + Fraction(1, 2)) * ratio), nin - 1)] for o in range(n_out)]
        return [_union_pair([a[t] for t in _linear_taps(o, nin, n_out, aop.align, aop.scale, cubic)])
                for o in range(n_out)]
    if aop.kind == "crop":
        return [a[i] for i in range(*slice(int(aop.pl), None if aop.out is None else int(aop.out),
                                            int(aop.s)).indices(nin))]
    if aop.kind == "pad":
        pl = int(ctx.aff(aop.pl, "padding", path).b)
        pr = int(ctx.aff(aop.pr, "padding", path).b)
        out = []
        for o in range(nin + pl + pr):
            i = o - pl
            if 0 <= i < nin:
                out.append(a[i])
            elif aop.mode in ("reflect", "reflection"):
                out.append(a[-i if i < 0 else 2 * (nin - 1) - i])
            elif aop.mode in ("replicate", "replication"):
                out.append(a[min(max(i, 0), nin - 1)])
            elif aop.mode == "circular":
                out.append(a[i % nin])
            else:
                out.append(None)
        return out
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


def _resized(nin: int, aop: AxisOp) -> int:
    if aop.out is not None:
        return int(aop.out)
    if aop.scale is not None:
        return int(math.floor(nin * float(aop.scale)))
    raise ArchcountError("a resize without size or scale_factor")


# =========================================================================== residue classes of k

def solve(steps: Sequence[Step], n: int, symbolic: bool, parity: str | None,
          model: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Per step: per-axis (size, min_size, start, jump, period, varies) as expressions in k."""
    if not symbolic:
        env = propagate(steps, n, Ctx(kval=0))
        return numeric_stats(env, Ctx(kval=0)), {k_: s.note for k_, s in env.items() if s.note}, []
    M = 2
    while True:
        try:
            per_class, notes, tmins = _classes(steps, n, M, parity)
            break
        except NeedModulus as exc:
            M *= exc.factor
            if M > MAX_MODULUS:
                raise ArchcountError("the receptive field depends on k modulo more than "
                                     f"{MAX_MODULUS}; give a numeric kernel", model=model) from None
    exceptions: dict[int, dict[str, Any]] = {}
    for c, tmin in tmins.items():
        for t in range(tmin):
            kv = M * t + c
            env = propagate(steps, n, Ctx(kval=kv))
            exceptions[kv] = numeric_stats(env, Ctx(kval=kv))
    out = _join(per_class, M, exceptions)
    _self_check(steps, n, out, sorted({M * (tmins[c] + 1) + c for c in tmins}), model)
    assumptions = []
    if parity:
        assumptions.append(f"k {parity} (the model builds only with {parity} kernels)")
    return out, notes, assumptions


def _classes(steps: Sequence[Step], n: int, M: int,
             parity: str | None) -> tuple[dict[int, dict], dict[str, str], dict[int, int]]:
    per_class: dict[int, dict] = {}
    tmins: dict[int, int] = {}
    notes: dict[str, str] = {}
    for c in range(1, M + 1):
        if parity == "odd" and c % 2 == 0 or parity == "even" and c % 2 == 1:
            continue
        t_min = 0
        while True:
            ctx = Ctx(M=M, c=c, t_min=t_min)
            try:
                env = propagate(steps, n, ctx)
                per_class[c] = class_stats(env, ctx)
                break
            except RaiseTmin as exc:
                if exc.t <= t_min:  # pragma: no cover - defensive
                    raise AssertionError("receptive-field comparison did not settle") from None
                t_min = exc.t
        tmins[c] = t_min
        notes.update({k_: s.note for k_, s in env.items() if s.note})
    return per_class, notes, tmins


def class_stats(env: Mapping[str, State], ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, st in env.items():
        if st.kind == UNKNOWN:
            out[name] = (UNKNOWN, st.note)
            continue
        if st.kind != "tensor":
            continue
        axes = []
        for a in st.axes:
            axes.append(stats(a, ctx) if isinstance(a, Win) else a)
        out[name] = (tuple(axes), st.positional)
    return out


def numeric_stats(env: Mapping[str, State], ctx: Ctx) -> dict[str, Any]:
    """Stats of a numeric propagation, as sympy numbers, in the joined format."""
    out: dict[str, Any] = {}
    for name, value in class_stats(env, ctx).items():
        if value[0] == UNKNOWN:
            out[name] = value
            continue
        axes, spatial = value
        row = []
        for a in axes:
            if isinstance(a, AxisStats):
                row.append({"size": num(a.size.b), "min_size": num(a.min_size.b),
                            "start": None if a.start is None else num(a.start.b),
                            "jump": num(a.jump), "period": a.P, "varies": a.size.b != a.min_size.b})
            else:
                row.append(a)
        out[name] = (tuple(row), spatial)
    return out


def _join(per_class: Mapping[int, dict], M: int, exceptions: Mapping[int, dict]) -> dict[str, Any]:
    classes = sorted(per_class)
    names = list(per_class[classes[0]])
    out: dict[str, Any] = {}
    for name in names:
        first = per_class[classes[0]][name]
        if first[0] == UNKNOWN:
            out[name] = first
            continue
        first_axes, spatial = first
        row = []
        for i, a0 in enumerate(first_axes):
            per = {c: per_class[c][name][0][i] for c in classes}
            if not all(isinstance(a, AxisStats) for a in per.values()):
                kinds = {a if isinstance(a, str) else "window" for a in per.values()}
                row.append(DRIFT if DRIFT in kinds else GLOBAL if kinds == {GLOBAL} else DRIFT)
                continue
            item: dict[str, Any] = {}
            for q in ("size", "min_size", "start"):
                vals = {c: getattr(a, q) for c, a in per.items()}
                if any(v is None for v in vals.values()):
                    item[q] = None
                    continue
                item[q] = _with_exceptions(closed_form({c: _to_k(v, M, c) for c, v in vals.items()}, M),
                                           {kv: ex[name][0][i][q] for kv, ex in exceptions.items()
                                            if ex.get(name, (UNKNOWN,))[0] != UNKNOWN
                                            and isinstance(ex[name][0][i], dict)})
            item["jump"] = num(per[classes[0]].jump)
            item["period"] = math.lcm(*{a.P for a in per.values()})
            item["varies"] = any(a.size != a.min_size for a in per.values()) or any(
                ex[name][0][i]["varies"] for ex in exceptions.values()
                if ex.get(name, (UNKNOWN,))[0] != UNKNOWN and isinstance(ex[name][0][i], dict))
            row.append(item)
        out[name] = (tuple(row), spatial)
    return out


def _to_k(v: Aff, M: int, c: int) -> tuple[Fraction, Fraction]:
    return v.a / M, v.b - v.a * c / M


def _with_exceptions(expr: Any, values: Mapping[int, Any]) -> Any:
    special = [(val, kv) for kv, val in sorted(values.items())
               if val is not None and sp.simplify(sp.sympify(expr).subs(K_SYM, kv) - val) != 0]
    if not special:
        return expr
    return sp.Piecewise(*[(v, sp.Eq(K_SYM, kv)) for v, kv in special], (expr, True))


def _self_check(steps: Sequence[Step], n: int, joined: Mapping[str, Any], kernels: Sequence[int], model: str) -> None:
    for kv in kernels:
        ctx = Ctx(kval=kv)
        direct = numeric_stats(propagate(steps, n, ctx), ctx)
        for name, value in direct.items():
            if value[0] == UNKNOWN or joined.get(name, (UNKNOWN,))[0] == UNKNOWN:
                continue
            for i, a in enumerate(value[0]):
                b = joined[name][0][i]
                if not isinstance(a, dict) or not isinstance(b, dict):
                    continue
                for q in ("size", "min_size", "start"):
                    if a[q] is None or b[q] is None:
                        continue
                    if sp.simplify(sp.sympify(b[q]).subs(K_SYM, kv) - a[q]) != 0:  # pragma: no cover
                        raise ArchcountError(f"internal error: the {q} formula {b[q]} gives "
                                             f"{sp.sympify(b[q]).subs(K_SYM, kv)} at k={kv}, the enumeration "
                                             f"{a[q]}", model=model, layer=name)


# =========================================================================== connected positions

def connected(steps: Sequence[Step], n: int, kval: int, target: str, positions: Sequence[int]) -> tuple[int, ...] | None:
    """Input positions (per axis) one unit of ``target`` reads, on the unbounded line: ``positions``
    gives the unit.  A dilated kernel reads fewer positions than its span."""
    by_name = {st.name: st for st in steps}
    ctx = Ctx(kval=kval)
    order = [st for st in steps]
    index = {st.name: i for i, st in enumerate(order)}
    result = []
    for axis in range(n):
        need: dict[str, set[int]] = {target: {int(positions[axis])}}
        reached: set[int] = set()
        for st in reversed(order[:index[target] + 1]):
            pos = need.pop(st.name, None)
            if not pos:
                continue
            if st.kind == "input":
                reached |= pos
                continue
            if st.kind in ("const", "unknown"):
                if st.kind == "unknown":
                    return None
                continue
            if axis in st.globals:
                return None
            aop = st.axes.get(axis)
            src = _back(pos, aop, ctx, st.path)
            if src is None:
                return None
            for key in st.inputs:
                need.setdefault(key[0], set()).update(src)
        result.append(len(reached))
    return tuple(result)


def _back(pos: set[int], aop: AxisOp | None, ctx: Ctx, path: str) -> set[int] | None:
    if aop is None:
        return set(pos)
    if aop.kind == "pad":
        pl = int(ctx.aff(aop.pl, "padding", path).b)
        return {p - pl for p in pos}
    if aop.kind == "crop":
        return {o * aop.s + int(aop.pl) for o in pos}
    if aop.kind == "upsample":
        out = set()
        for o in pos:
            q, r = divmod(o, aop.f)
            out |= {q + d for d in (aop.offsets[r] if aop.offsets else (0,))}
        return out
    if aop.kind in ("conv",):
        K = int(ctx.aff(aop.K, "kernel_size", path).b)
        pl = int(ctx.aff(aop.pl, "padding", path).b)
        return {o * aop.s - pl + t * aop.d for o in pos for t in range(K)}
    if aop.kind == "transposed":
        K = int(ctx.aff(aop.K, "kernel_size", path).b)
        p = int(ctx.aff(aop.pl, "padding", path).b)
        out = set()
        for o in pos:
            u = o + p
            out |= {(u - j * aop.d) // aop.s for j in range(K) if (u - j * aop.d) % aop.s == 0}
        return out
    return None


__all__ = ["FINITE_LIMIT", "State", "connected", "finite", "finite_axis", "numeric_stats", "propagate", "solve"]
