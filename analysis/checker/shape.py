"""``check_shape``: a claimed output shape of one layer, with the slip that reproduces it, per axis.

>>> r = check_shape("16x961x641", "conv k=5 s=2 p=1 out=16", "3x1920x1080")
>>> [(a.axis, a.slips, a.note) for a in r.axes]
[('H', ('kernel-term-missing',), ''), ('W', (), 'looks like a typo of 541, what kernel-term-missing, which fits H, gives')]
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, Sequence

import sympy as sp

from ..errors import ArchcountError
from .common import bounded_int
from .results import AxisDiagnosis, ShapeCheck
from .slips import ROUNDING_SLIPS, SHAPE_SLIPS, shape_variants

#: largest spatial size of a shape check's input (the exact arithmetic enumerates dropped rows)
MAX_SHAPE_SIZE = 100_000


def num_text(v: Any) -> str:
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


def shape_text(shape: Sequence[Any]) -> str:
    return "x".join(num_text(v) for v in shape)


_NUM = re.compile(r"^\s*(\d{1,20})(?:\s*/\s*(\d{1,20})|\.(\d{1,20}))?\s*$")


def parse_claimed_shape(claimed: Any) -> tuple[Any, ...]:
    """``"16x513x385"`` (decimals and fractions allowed, e.g. ``16x510.5x382.5``) or a sequence."""
    if not isinstance(claimed, str):
        if not isinstance(claimed, (tuple, list)):
            raise ArchcountError(f"expected a shape such as 16x511x383, got {type(claimed).__name__}",
                                 argument="shape")
        out = []
        for v in claimed:
            if isinstance(v, bool) or not isinstance(v, (int, Fraction, float)) or \
                    (isinstance(v, float) and not math.isfinite(v)):
                raise ArchcountError(f"shape entries must be numbers, got {v!r}", argument="shape")
            if isinstance(v, int) and v.bit_length() > 64:
                raise ArchcountError("shape entries must have at most 20 digits", argument="shape")
            out.append(Fraction(v) if not isinstance(v, int) else v)
        if not out or len(out) > 5:
            raise ArchcountError(f"expected 1 to 5 dimensions, got {len(out)}", argument="shape")
        return tuple(out)
    body = claimed.strip().strip("()[]")
    parts = [p for p in re.split(r"\s*[x×X,]\s*", body.strip())]
    if not body.strip() or len(parts) > 5 or len(claimed) > 200:
        raise ArchcountError(f"cannot read shape {claimed[:40]!r}; write e.g. 16x511x383", argument="shape")
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


def _axis_values(layer: Any, naxes: int) -> list[dict[str, int]]:
    names = ("kernel", "stride", "padding", "dilation", "output_padding")
    return [{key: int(layer.axis_value(key, i, naxes)) for key in names} for i in range(naxes)]


def _combos(layer: Any) -> list[tuple[str, str, Any, int, str]]:
    """(slip names, text, fn, const, rounding) of every formula variant x rounding; the right one first."""
    if layer.kind == "transposed":
        roundings: tuple[str, ...] = ("floor",)
    elif layer.ceil_mode:
        roundings = ("ceil", "floor", "nearest", "exact")
    else:
        roundings = ("floor", "ceil", "nearest", "exact")
    correct = "ceil" if layer.ceil_mode else "floor"
    out = []
    for name, text, fn, const in shape_variants(layer.kind):
        for rmode in roundings:
            names, texts = [name] if name else [], [text] if text else []
            if rmode != correct:
                if rmode == "floor" and layer.ceil_mode:
                    names.append("ceil-mode-ignored")
                    texts.append("ceil_mode ignored (floor used)")
                else:
                    key = {"exact": "no-floor", "ceil": "ceil", "nearest": "nearest"}[rmode]
                    names.append(key)
                    texts.append(ROUNDING_SLIPS[key])
            out.append((" + ".join(names), " and ".join(texts), fn, const, rmode))
    return out


def _typo_of(claimed: Fraction, candidates: Sequence[tuple[Fraction, str]]) -> str:
    """``looks like a typo of 541`` when one digit changed, swapped, dropped or doubled gives a candidate."""
    if claimed.denominator != 1:
        return ""
    c = str(claimed.numerator)
    for value, why in candidates:
        if value.denominator != 1 or value < 0:
            continue
        v = str(value.numerator)
        if v != c and _one_edit(c, v):
            return f"looks like a typo of {v}" + (f", {why}" if why else "")
    return ""


def _one_edit(a: str, b: str) -> bool:
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                   and a[diff[1]] == b[diff[0]])
    if abs(len(a) - len(b)) == 1:
        short, long_ = (a, b) if len(a) < len(b) else (b, a)
        return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))
    return False


def check_shape(claimed: Any, layer: Any, input_shape: Any) -> ShapeCheck:
    """Check a claimed output shape of one layer (text such as ``"conv k=5 s=2 p=1 out=16"``).

    Names every known slip (floor ignored, kernel or padding forgotten, +1 forgotten, stride
    ignored, wrong formula ...) that reproduces the claimed sizes exactly; when no single slip fits
    both axes, each axis is diagnosed on its own (and a one-digit typo is named).

    >>> r = check_shape("16x513x385", "conv k=5 s=2 p=1 out=16", "3x1024x768")
    >>> r.ok, "x".join(map(str, r.expected)), r.arithmetic[0]
    (False, '16x511x383', 'H: floor((1024 + 2 - 5)/2) + 1 = 511')
    """
    from ..layertext import format_shape, layer_output_shape, parse_layer, parse_shape
    lay = parse_layer(layer) if isinstance(layer, str) else layer
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else tuple(input_shape)
    for i, d in enumerate(shape):
        if isinstance(d, int):
            bounded_int(d, "input", 1, MAX_SHAPE_SIZE)
    answer = layer_output_shape(lay, shape)
    claim = parse_claimed_shape(claimed)
    expected = tuple(answer.output_shape)
    arith = tuple(f"{st.axis}: {st.arithmetic}" for st in answer.axes)
    layer_text = str(lay)
    if any(isinstance(v, sp.Basic) and not v.is_number for v in expected):
        raise ArchcountError("check_shape needs a numeric input shape", argument="input")
    same = len(claim) == len(expected) and all(Fraction(c) == Fraction(int(e)) for c, e in zip(claim, expected))
    if same:
        notes = [f"{st.axis}: the floor drops {st.dropped} input row(s)/column(s)" for st in answer.axes
                 if st.dropped not in (None, 0)]
        axes = tuple(AxisDiagnosis(st.axis, int(e), int(e)) for st, e in zip(answer.axes, expected[-2:]))
        return ShapeCheck(claim, layer_text, shape, expected, True, "right", arith, (), tuple(notes), axes)
    explanations: list[str] = []
    mistakes: list[str] = []
    slips: list[str] = []
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
    spatial_e = [int(v) for v in expected[-2:]]
    spatial_c = [Fraction(c) for c in claim_cmp[-2:]]
    if len(expected) >= 3 and claim_cmp[0] is not None and Fraction(claim_cmp[0]) != Fraction(int(expected[0])):
        cin = shape[-3] if len(shape) >= 3 else None
        why = ""
        if cin is not None and Fraction(claim_cmp[0]) == Fraction(int(cin)) and lay.out_channels is not None:
            why = f": the input channel count {cin} was kept, but out={lay.out_channels} sets the output channels"
        explanations.append(f"channels: claimed {claim_cmp[0]}, expected {expected[0]}{why}")
        mistakes.append("wrong channel count")
        slips.append("wrong-channels")
    axes_diag: list[AxisDiagnosis] = []
    spatial_ok = all(c == e for c, e in zip(spatial_c, spatial_e))
    if not spatial_ok and spatial_c[::-1] == [Fraction(e) for e in spatial_e]:
        mistakes.append("H and W swapped")
        slips.append("h-w-swapped")
        explanations.append(f"H and W are swapped: expected {spatial_e[0]}x{spatial_e[1]}")
    elif not spatial_ok:
        axes_diag = _diagnose(lay, shape, spatial_c, spatial_e, answer, mistakes, slips, explanations)
    return ShapeCheck(claim, layer_text, shape, expected, False, "wrong", arith, tuple(mistakes), tuple(explanations),
                      tuple(axes_diag), tuple(slips))


def _diagnose(lay: Any, shape: Sequence[Any], spatial_c: list[Fraction], spatial_e: list[int], answer: Any,
              mistakes: list[str], slips: list[str], explanations: list[str]) -> list[AxisDiagnosis]:
    n_in = [int(v) for v in shape[-2:]]
    per_axis: list[list[tuple[int, str, str, Fraction]]] = [[], []]   # (n slips, names, text, value)
    values: dict[str, list[Fraction]] = {}
    if lay.kind in ("conv", "transposed", "maxpool", "avgpool"):
        axes = _axis_values(lay, 2)
        for names, text, fn, const, rmode in _combos(lay):
            vals = [_round(fn(n, ax["kernel"], ax["stride"], ax["padding"], ax["dilation"], ax["output_padding"]),
                           rmode) + const for n, ax in zip(n_in, axes)]
            if names:
                values[names] = vals
            for i in range(2):
                if names and spatial_c[i] == vals[i]:
                    per_axis[i].append((names.count("+") + 1, names, text, vals[i]))
    elif lay.kind == "upsample":
        for rmode, key in (("ceil", "ceil"), ("nearest", "nearest"), ("exact", "no-floor")):
            vals = [_round(Fraction(n) * Fraction(str(lay.scale_factor)), rmode) for n in n_in]
            values[key] = vals
            for i in range(2):
                if spatial_c[i] == vals[i]:
                    per_axis[i].append((1, key, ROUNDING_SLIPS[key], vals[i]))
    both = [h for h in per_axis[0] if any(w[1] == h[1] for w in per_axis[1])]
    if both:
        best = min(h[0] for h in both)
        named = list(dict.fromkeys((h[1], h[2]) for h in both if h[0] == best))
        slips += [n for n, _ in named]
        mistakes += [t for _, t in named]
        explanations.append("the claimed sizes are reproduced exactly by: " + "; or ".join(t for _, t in named))
    diag = []
    for i, axis in enumerate("HW"):
        hits = per_axis[i]
        best = min((h[0] for h in hits), default=0)
        top = list(dict.fromkeys((h[1], h[2]) for h in hits if h[0] == best))
        note = ""
        wrong = spatial_c[i] != spatial_e[i]
        if wrong and not hits:
            other = per_axis[1 - i]
            cands = [(values[h[1]][i], f"what {h[1]}, which fits {'HW'[1 - i]}, gives") for h in other
                     if h[1] in values]
            cands.append((Fraction(spatial_e[i]), "the right value"))
            note = _typo_of(spatial_c[i], cands)
        claimed = int(spatial_c[i]) if spatial_c[i].denominator == 1 else spatial_c[i]
        diag.append(AxisDiagnosis(axis, claimed, spatial_e[i], tuple(t for _, t in top) if wrong else (),
                                  tuple(n for n, _ in top) if wrong else (), note))
    if not both:
        lines = []
        for d in diag:
            if d.ok:
                lines.append(f"{d.axis} = {d.expected} is right")
            elif d.mistakes:
                lines.append(f"{d.axis}: {num_text(Fraction(d.claimed))} is reproduced by " + "; or ".join(d.mistakes))
            else:
                lines.append(f"{d.axis}: no known slip reproduces {num_text(Fraction(d.claimed))} (expected "
                             f"{d.expected})" + (f"; it {d.note}" if d.note else ""))
        explanations.append("no single known mistake reproduces the claimed sizes "
                            f"{'x'.join(num_text(c) for c in spatial_c)}; per axis: " + "; ".join(lines))
    if lay.kind in ("conv", "maxpool", "avgpool"):
        notes = []
        for st, n, ax in zip(answer.axes, n_in, _axis_values(lay, 2)):
            kk, ss, pp, dd = ax["kernel"], ax["stride"], ax["padding"], ax["dilation"]
            span = n + 2 * pp - dd * (kk - 1) - 1
            if span % ss:
                word = "up (ceil_mode)" if lay.ceil_mode else "down"
                padded = f" + {2 * pp}" if pp else ""
                notes.append(f"{st.axis}: ({n}{padded} - {dd * (kk - 1) + 1})/{ss} = "
                             f"{num_text(Fraction(span, ss))} is rounded {word}, so {st.arithmetic}")
        if notes:
            explanations.append("floor division matters too: " + "; ".join(notes))
    return diag


__all__ = ["MAX_SHAPE_SIZE", "SHAPE_SLIPS", "check_shape", "num_text", "parse_claimed_shape", "shape_text"]
