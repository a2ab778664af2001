"""Named slips: the mistakes people make, each a pure transformation of the right count.

A slip is registered like a counting rule: a pure function of a :class:`SlipContext` (the right
per-layer counts under one convention) that yields :class:`Change` objects, one per layer it can
touch (the layer's count becomes ``old + delta``).  The search tries every slip on any subset of
its layers (bias in some layers only, one layer omitted ...), then pairs of slips, within a stated
budget (:data:`SLIP_BUDGET` subset sums looked up), and reports the combination that reproduces
the answer exactly, with the layer names.

A teacher can add a slip:

>>> from analysis.checker.slips import register_slip, unregister_slip
>>> from analysis.symbols import k
>>> @register_slip("kernel-area-as-2k", describe="the kernel area written 2k, not k^2 ({layers})")
... def kernel_area_2k(ctx):
...     for row in ctx.counted():
...         value = ctx.value(row)
...         if value.has(k):
...             yield ctx.change(row, (value / k**2 * 2 * k).expand())
>>> from analysis.checker import check
>>> r = check("2k (NIC NF + 4 NF^2 + NF NC + NC^2)", "pool_upsample", "weights")
>>> r.slip_names, r.explanations[0]
(('kernel-area-as-2k',), 'the kernel area written 2k, not k^2 (all layers (block1.0, block2.0, block3.0, block4.0, final))')
>>> unregister_slip("kernel-area-as-2k")

Output-size slips (for shape answers) are registered with :func:`register_shape_slip`.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator, Sequence

import sympy as sp

from ..conventions import Convention
from ..symbols import NC, NF
from .common import QUANTITIES, Context, formula_str, is_zero, terms

#: Most subset sums looked up when pairing slips, per answer (the search stops there and says so).
SLIP_BUDGET = 120_000
_SUBSET_LIMIT = 11          #: slips touching more layers than this try single layers, all, all but one
_COMBO_LIMIT = 4096         #: most choices enumerated for one slip


class Lazy:
    """Text built only when shown (formatting every candidate would dominate the run time)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], str]) -> None:
        self.fn = fn

    def __str__(self) -> str:
        return self.fn()


def instead(new: Any, old: Any, extra: str = "") -> Lazy:
    return Lazy(lambda: f"{formula_str(new)} instead of {formula_str(old)}" + extra)


@dataclass(frozen=True)
class Change:
    """One layer's part of a slip: what the slip adds to the right count of ``layer``."""

    layer: str          #: the row path ("*" for the whole formula, "input" for the input)
    delta: Any
    detail: Any = ""    #: e.g. "NF^2*k^2 instead of NC*NF*k^2" (str or Lazy)
    variant: str = ""   #: a second change of one layer is an alternative, e.g. "with NF where NC belongs"


@dataclass(frozen=True)
class Slip:
    """A registered slip. ``describe`` is a callable ``(changes, full, ctx) -> str`` or a template with
    ``{layers}`` (the layers named), ``{delta}`` (the total change), ``{details}``, ``{q}`` and ``{convention}``."""

    name: str
    fn: Callable[["SlipContext"], Iterable[Change]]
    describe: Any
    quantities: tuple[str, ...] = QUANTITIES
    rank: int = 50                #: lower: preferred when several explanations fit
    subsets: str = "any"          #: any | most (not all at once) | one | all
    pairs: bool = True            #: may combine with a slip of another group
    group: str = ""               #: slips of one group never pair
    noun: str = "layers"          #: "all <noun> (...)" when every layer is touched

    def phrase(self, changes: Sequence[Change], full: bool, ctx: "SlipContext") -> str:
        if callable(self.describe):
            return self.describe(changes, full, ctx)
        return str(self.describe).format(layers=ctx.which(changes, full, self.noun), delta=ctx.signed(changes),
                                         details=ctx.details(changes), q=ctx.q, convention=ctx.conv.label)


SLIPS: dict[str, Slip] = {}
_VERSION = [0]   #: bumped on every (un)registration, so cached slip tables are rebuilt


def register_slip(name: str, *, describe: Any, quantities: Sequence[str] = QUANTITIES, rank: int = 50,
                  subsets: str = "any", pairs: bool = True, group: str = "", noun: str = "layers"
                  ) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx) -> Iterable[Change]`` as the slip ``name`` (replacing one of that name)."""
    if subsets not in ("any", "most", "one", "all"):
        raise ValueError(f"subsets must be any, most, one or all, got {subsets!r}")

    def deco(fn: Callable) -> Callable:
        SLIPS[name] = Slip(name, fn, describe, tuple(quantities), rank, subsets, pairs, group or name, noun)
        _VERSION[0] += 1
        return fn
    return deco


def unregister_slip(name: str) -> None:
    SLIPS.pop(name, None)
    SHAPE_SLIPS.pop(name, None)
    _VERSION[0] += 1


class SlipContext:
    """The right per-layer counts of one quantity under one convention, for slip functions."""

    def __init__(self, table: Any, q: str, conv: Convention, expected: Any, numeric_size: bool) -> None:
        self.table = table
        self.q = q
        self.conv = conv
        self.expected = expected
        self.numeric_size = numeric_size
        self.all_rows = list(table.rows)
        self.labels = _labels(self.all_rows)

    # -- for slip functions
    def rows(self, *categories: str) -> list[Any]:
        """Rows of these categories (conv, transposed, linear, norm, resample, elementwise, structural)."""
        return [r for r in self.all_rows if not categories or r.category in categories]

    def weight_rows(self) -> list[Any]:
        return self.rows("conv", "linear", "transposed")

    def counted(self) -> list[Any]:
        return [r for r in self.all_rows if r.value(self.q) != 0]

    def value(self, row: Any) -> Any:
        return row.value(self.q)

    def change(self, row: Any, new: Any, detail: Any = "") -> Change:
        """The row's count becomes ``new``."""
        return Change(row.path, sp.expand(sp.sympify(new) - sp.sympify(row.value(self.q))), detail)

    def add(self, row: Any, delta: Any, detail: Any = "") -> Change:
        """``delta`` is added to the row's count."""
        return Change(row.path, sp.expand(sp.sympify(delta)), detail)

    def variants(self, row: Any, value: Any, detail: str = "") -> Iterator[Change]:
        """The row's count becomes ``value``; and, as alternatives, ``value`` with NF where NC
        belongs or NC where NF belongs (a slip combined with a channel mix-up in that layer)."""
        shown = lambda v, extra="": Lazy(lambda: f"{formula_str(v)}" + (f" ({detail}{extra})" if detail or extra  # noqa: E731
                                                                          else ""))
        yield self.change(row, value, shown(value))
        if not isinstance(value, sp.Basic):
            return
        for s_, t in ((NC, NF), (NF, NC)):
            if value.has(s_):
                new = sp.expand(value.xreplace({s_: t}))
                yield Change(row.path, sp.expand(new - sp.sympify(row.value(self.q))),
                             shown(new, f"{', ' if detail else ''}with {t} where {s_} belongs"), variant=f"{t}-for-{s_}")

    def area(self) -> Any:
        """The input's H*W (numbers for a numeric size)."""
        shape = self.table.input_shape
        return sp.Mul(*[sp.sympify(s) for s in shape[-2:]]) if len(shape) >= 2 else sp.Integer(1)

    # -- for descriptions
    def label(self, path: str) -> str:
        return self.labels.get(path, path)

    def which(self, changes: Sequence[Change], full: bool, noun: str = "layers") -> str:
        paths = ", ".join(c.layer for c in changes)
        if full and len(changes) > 1:
            return f"all {noun} ({paths})"
        if len(changes) == 1:
            return self.label(changes[0].layer)
        return paths

    def signed(self, changes: Sequence[Change]) -> str:
        s = sp.expand(sum((c.delta for c in changes), sp.Integer(0)))
        ts = terms(s)
        return formula_str(-s if ts and all(c < 0 for c in ts.values()) else s)

    def details(self, changes: Sequence[Change]) -> str:
        return "; ".join(f"{c.layer}: {c.detail}" for c in changes)


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


# ============================================================================================ the search

@dataclass(frozen=True)
class Found:
    """The best explanation: texts (alternatives after the first start with "or:"), slips and layers."""

    texts: tuple[str, ...]
    slips: tuple[tuple[str, tuple[str, ...], str], ...]   #: (slip name, layers, text) of the best
    layers: tuple[str, ...]
    score: tuple
    used: int                   #: subset sums looked up
    complete: bool              #: False when the budget ran out before every pair was tried


class _NotPackable(Exception):
    """A fingerprint that no sum of the packed ones can equal (a finer denominator)."""


_PACK_BASE = 10 ** 40


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


def _subset_sums(values: list[int], policy: str, layers: Sequence[str] | None = None
                 ) -> dict[int, list[tuple[int, ...]]]:
    """{sum: choices (index tuples, fewest first, at most 4)} allowed by ``policy``.

    Changes of one layer are alternatives (a variant of the slip in that layer): a choice takes at
    most one of them.  ``any``: any non-empty set of layers; ``most``: at most half of them;
    ``one``: a single layer; ``all``: every layer.
    """
    layers = list(layers) if layers is not None else [str(i) for i in range(len(values))]
    groups: dict[str, list[int]] = {}
    for i, layer in enumerate(layers):
        groups.setdefault(layer, []).append(i)
    opts = list(groups.values())
    n = len(opts)
    out: dict[int, list[tuple[int, ...]]] = {}

    def put(idx: tuple[int, ...]) -> None:
        lst = out.setdefault(sum(values[i] for i in idx), [])
        if len(lst) < 4 and idx not in lst:
            lst.append(idx)
    if policy == "one" or n == 1 and policy != "all":
        for i in range(len(values)):
            put((i,))
        return out
    combos = 1
    for o in opts:
        combos *= len(o) + 1
    if policy == "all":
        if combos <= _COMBO_LIMIT:
            for pick in itertools.product(*opts):
                put(tuple(sorted(pick)))
        else:
            put(tuple(o[0] for o in opts))
        return out
    most = n if policy == "any" else max(1, n // 2)
    if n <= _SUBSET_LIMIT and combos <= _COMBO_LIMIT:
        level: list[tuple[int, ...]] = [()]
        for o in opts:
            level = level + [idx + (i,) for idx in level if len(idx) < most for i in o]
        for idx in sorted(level[1:], key=len):
            put(tuple(sorted(idx)))
        return out
    for i in range(len(values)):
        put((i,))
    if policy == "any":
        plain = [o[0] for o in opts]
        put(tuple(plain))
        for j in range(n):
            put(tuple(x for k_, x in enumerate(plain) if k_ != j))
    return out


def _layers_of(changes: Sequence[Change], idx: tuple[int, ...]) -> int:
    return len({changes[i].layer for i in idx})


def _full(changes: Sequence[Change], idx: tuple[int, ...]) -> bool:
    """The slip touches every layer it can (a systematic slip)."""
    return _layers_of(changes, idx) == len({c.layer for c in changes})


def _variants(changes: Sequence[Change], idx: tuple[int, ...]) -> int:
    return sum(1 for i in idx if changes[i].variant)


@dataclass
class _Prepared:
    slips: list[tuple[Slip, list[Change], dict[int, list[tuple[int, ...]]]]]
    pack: Callable[[tuple], int]
    sctx: SlipContext


def _prepare(ctx: Context, table: Any, q: str, conv: Convention, expected: Any) -> _Prepared:
    key = ("slips", q, tuple(conv.switches.items()), _VERSION[0])
    if key in ctx.totals:
        return ctx.totals[key]
    sctx = SlipContext(table, q, conv, expected, ctx.numeric_size)
    built: list[tuple[Slip, list[Change], list[tuple]]] = []
    for slip in SLIPS.values():
        if q not in slip.quantities:
            continue
        changes = [c for c in slip.fn(sctx) if c.delta != 0]
        if changes:
            built.append((slip, changes, [ctx.fp(c.delta) for c in changes]))
    pack = _packer([fp for _, _, fps in built for fp in fps])
    slips = [(slip, changes, _subset_sums([pack(fp) for fp in fps], slip.subsets, [c.layer for c in changes]))
             for slip, changes, fps in built]
    slips.sort(key=lambda s: s[0].rank)
    prepared = _Prepared(slips, pack, sctx)
    ctx.totals[key] = prepared
    return prepared


def switch_slips(reference: Convention, other: Convention, q: str) -> set[str]:
    """The slips that turn counting under ``reference`` into counting under ``other`` (for an answer
    right under another convention)."""
    names: set[str] = set()
    if reference.bias != other.bias:
        names |= {"bias", "bias-twice"}
    if reference.batchnorm != other.batchnorm:
        names |= {"batchnorm", "batchnorm-twice"} if q == "weights" else {"batchnorm-layer"}
    if reference.pooling != other.pooling:
        names |= {"pooling", "upsampling"}
    if reference.padding_taps != other.padding_taps:
        names.add(f"connections-{other.padding_taps}")
    if reference.transposed != other.transposed:
        names.add(f"connections-{other.transposed}")
    return names


def search(diff: Any, ctx: Context, table: Any, q: str, conv: Convention, expected: Any, *,
           pairs: bool = True, budget: int = SLIP_BUDGET, stats: dict | None = None,
           only: set[str] | None = None) -> Found | None:
    """Name the slip (or pair of slips) whose changes add up to exactly ``diff``; None if none does.

    Sums are compared by packed fingerprints first and the chosen explanation is then confirmed
    symbolically.  Pairs are tried in order of rank, at most ``budget`` lookups; ``stats`` (a dict)
    gets ``used`` (lookups) and ``complete`` (False when the budget stopped the search).
    """
    stats = stats if stats is not None else {}
    stats.update(used=0, complete=True)
    target_fp = ctx.fp(diff)
    if is_zero(target_fp):
        return None
    prep = _prepare(ctx, table, q, conv, expected)
    try:
        target = prep.pack(target_fp)
    except _NotPackable:
        return None
    ts = terms(diff)
    numeric = not (ts.keys() - {1})
    if only is not None:
        prep = _Prepared([x for x in prep.slips if x[0].name in only], prep.pack, prep.sctx)
    found = _find(target, prep, pairs, budget, stats, max(2, len(ts)), numeric)
    return _confirm(found, diff, prep, stats) if found else None


def _plausible(parts: list[tuple[Slip, list[Change], tuple[int, ...]]], limit: int, numeric: bool) -> bool:
    """A pair must be simpler than a per-term description: no layer changed twice, each slip either
    systematic (all its layers) or in at most 2 layers, and at most ``limit`` changes in all (a
    systematic slip counts once, a per-layer variant once more); a numeric difference pairs only
    systematic slips (single numbers coincide too easily)."""
    seen: set[str] = set()
    cost = 0
    for _, changes, idx in parts:
        full = _full(changes, idx)
        if (numeric or _layers_of(changes, idx) > 2) and not full:
            return False
        cost += (1 if full else _layers_of(changes, idx)) + _variants(changes, idx)
        for i in idx:
            layer = changes[i].layer
            if layer in seen and layer not in ("*", "input"):
                return False
            seen.add(layer)
    return cost <= limit


def _find(target: int, prep: _Prepared, pairs: bool, budget: int, stats: dict, limit: int = 2,
          numeric: bool = False) -> list:
    found: list[tuple[tuple, list[tuple[Slip, list[Change], tuple[int, ...]]]]] = []

    def score(parts: list[tuple[Slip, list[Change], tuple[int, ...]]]) -> tuple:
        return (len(parts), sum(0 if _full(ch, idx) else 1 for _, ch, idx in parts)
                + sum(_variants(ch, idx) for _, ch, idx in parts),
                sum(s.rank for s, _, _ in parts), sum(len(idx) for _, _, idx in parts))

    used = 0
    for slip, changes, sums in prep.slips:
        used += 1
        for idx in sums.get(target, []):
            found.append((score([(slip, changes, idx)]), [(slip, changes, idx)]))
    complete = True
    if not found and pairs and used >= budget:
        complete = False
    elif not found and pairs:
        able = [s for s in prep.slips if s[0].pairs]
        combos = sorted(itertools.combinations(able, 2), key=lambda ab: ab[0][0].rank + ab[1][0].rank)
        for (sa, ca, ta), (sb, cb, tb) in combos:
            if sa.group == sb.group:
                continue
            if len(ta) > len(tb):
                (sa, ca, ta), (sb, cb, tb) = (sb, cb, tb), (sa, ca, ta)
            if used + len(ta) > budget:
                complete = False
                continue
            used += len(ta)
            for key_a, idx_as in ta.items():
                for idx_b in tb.get(target - key_a, [])[:2]:
                    for idx_a in idx_as[:2]:
                        parts = [(sa, ca, idx_a), (sb, cb, idx_b)]
                        if _plausible(parts, limit, numeric):
                            found.append((score(parts), parts))
    stats.update(used=used, complete=complete)
    return found


def _confirm(found: list, diff: Any, prep: _Prepared, stats: dict) -> Found | None:
    found.sort(key=lambda x: x[0])
    texts: list[str] = []
    layers: list[str] = []
    best = None
    best_slips: list[tuple[str, tuple[str, ...], str]] = []
    numeric = not (terms(diff).keys() - {1})
    sctx = prep.sctx
    for sc, parts in found:
        total = sp.expand(sum((c.delta for _, ch, idx in parts for c in (ch[i] for i in idx)), sp.Integer(0)))
        if sp.expand(total - diff) != 0:
            continue  # a fingerprint collision
        first = best is None
        if first:
            best = sc
        elif (sc != best and not numeric) or len(texts) >= 3:
            break
        pieces = []
        for slip, ch, idx in parts:
            picked = [ch[i] for i in idx]
            text = slip.phrase(picked, _full(ch, idx), sctx)
            pieces.append(text)
            if first:
                best_slips.append((slip.name, tuple(c.layer for c in picked if c.layer not in ("*", "input")), text))
        line = "; and ".join(pieces)
        if texts:
            line = "or: " + line
        if line not in texts:
            texts.append(line)
        for slip, ch, idx in parts:
            layers += [ch[i].layer for i in idx if ch[i].layer not in layers and ch[i].layer != "*"]
    if not texts:
        return None
    if len(texts) > 1 and numeric:
        texts.append("(the difference is a single number, so several explanations fit; a formula would say more)")
    return Found(tuple(texts), tuple(best_slips), tuple(layers), best, stats["used"], stats["complete"])


# ===================================================================================== output-size slips

@dataclass(frozen=True)
class ShapeSlip:
    """A wrong output-size formula: ``fn(n, k, s, p, d, op)`` before rounding, plus ``const``."""

    name: str
    text: str
    fn: Callable[..., Fraction]
    const: int
    kinds: tuple[str, ...]


SHAPE_SLIPS: dict[str, ShapeSlip] = {}
_CONV_KINDS = ("conv", "maxpool", "avgpool")


def register_shape_slip(name: str, text: str, fn: Callable[..., Fraction], const: int = 1,
                        kinds: Sequence[str] = _CONV_KINDS) -> None:
    """Register an output-size slip: ``fn(n, k, s, p, d, op)`` (a Fraction) rounded, plus ``const``."""
    SHAPE_SLIPS[name] = ShapeSlip(name, text, fn, const, tuple(kinds))


#: the right formulas, per kind (not slips)
RIGHT_SIZE: dict[str, tuple[Callable[..., Fraction], int]] = {
    "conv": (lambda n, k, s, p, d, op: Fraction(n + 2 * p - d * (k - 1) - 1, s), 1),
    "transposed": (lambda n, k, s, p, d, op: Fraction((n - 1) * s - 2 * p + d * (k - 1) + op), 1),
}
RIGHT_SIZE["maxpool"] = RIGHT_SIZE["avgpool"] = RIGHT_SIZE["conv"]
#: rounding slips: name -> (text, rounding mode)
ROUNDING_SLIPS = {"ceil": "rounded up instead of down (ceil)",
                  "nearest": "rounded to the nearest integer instead of down",
                  "no-floor": "floor division ignored"}

def shape_variants(kind: str) -> list[tuple[str, str, Callable[..., Fraction], int]]:
    """(name, text, fn, const) for ``kind``: the right formula first (name ``""``), then the slips."""
    fn, const = RIGHT_SIZE[kind]
    out = [("", "", fn, const)]
    out += [(s.name, s.text, s.fn, s.const) for s in SHAPE_SLIPS.values() if kind in s.kinds]
    return out


__all__ = ["Change", "Found", "ROUNDING_SLIPS", "switch_slips", "SHAPE_SLIPS", "SLIPS", "SLIP_BUDGET", "ShapeSlip", "Slip",
           "SlipContext", "register_shape_slip", "register_slip", "search", "shape_variants", "unregister_slip"]

from . import library  # noqa: E402,F401  (registers the standard slips)
