"""``check_scaled``: a claim about a count when the input's H and W are multiplied by a factor.

>>> check_scaled("4x", "unet", "weights", kernel=3).explanations[0]
'weights do not depend on the input size: the ratio is 1, not 4'
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import sympy as sp

from ..conventions import PRESETS, Convention
from ..errors import ArchcountError
from ..symbols import H, W
from . import common as C
from .formula import check
from .results import ScalingCheck

_RATIO = re.compile(r"^\s*(?:[x×*]\s*)?(\d{1,20}(?:\.\d{1,20})?(?:/\d{1,20})?)\s*(?:[x×]|times)?\s*$", re.I)


def _parse_ratio(claim: Any) -> sp.Rational | None:
    if isinstance(claim, bool):
        return None
    if isinstance(claim, (int, Fraction)):
        if isinstance(claim, int) and claim.bit_length() > 64:
            raise ArchcountError("the ratio has more than 20 digits", argument="claim")
        return sp.Rational(claim)
    if isinstance(claim, str):
        m = _RATIO.match(claim)
        if m:
            if m.group(1).endswith("/0") or re.search(r"/0+$", m.group(1)):
                raise ArchcountError(f"division by zero in {claim!r}", argument="claim")
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
    q = C.quantity(quantity)
    factor = C.bounded_int(factor, "factor", 2, 1024)
    requested = C.convention(convention, switches)
    if claim_kind not in ("auto", "ratio", "value"):
        raise ArchcountError(f"must be auto, ratio or value, got {claim_kind!r}", argument="claim_kind")
    ratio_claim = None if claim_kind == "value" else _parse_ratio(claim)
    if claim_kind == "ratio" and ratio_claim is None:
        raise ArchcountError(f"expected a ratio such as 4 or 4x, got {claim!r}", argument="claim")
    hp, symbolic_k = C.hparams(hparams)
    if symbolic_k:
        hp_kw: dict[str, Any] = dict(hp, kernel="k")
    else:
        hp_kw = dict(hp)
    name, defaults, default_size, valid, _ = C.model_info(model)
    size = C.sizes(input_size)
    assumptions: list[str] = []
    claim_text = claim if isinstance(claim, str) else sp.sstr(claim)

    if ratio_claim is None:
        # a value at the scaled size
        if size is None:
            size = default_size
            assumptions.append(f"original size {size[0]}x{size[1]} (the model's default; pass input_size)")
        big = C.sizes((size[0] * factor, size[1] * factor))
        try:
            res = check(claim, model, q, input_size=big, convention=requested, **hp_kw)
        except ArchcountError as exc:
            if exc.argument == "formula":
                raise ArchcountError(exc.reason, argument="claim", model=exc.model, hint=exc.hint) from None
            raise
        ref = requested.label if requested is not None else res.reference
        conv = C.conv_from_label(ref)
        ctx_small = C.context(model, dict(res.hparams), size)
        small_total = ctx_small.simple.under(conv).total(q)
        ctx_big = C.context(model, dict(res.hparams), big)
        big_total = ctx_big.simple.under(conv).total(q)
        ratio = _ratio(big_total, small_total, ctx_small.fp)
        explanations = [e for e in res.explanations if not e.startswith("the whole formula is")]
        slips: list[str] = list(res.slip_names)
        if not res.ok:
            for r in (factor ** 2, factor, factor ** 3, 1):
                if sp.expand(res.given - r * sp.sympify(small_total)) == 0 and r != ratio:
                    why = " but weights do not depend on the input size" if q == "weights" else ""
                    explanations.insert(0, f"the claim is {r} x the {q} at {size[0]}x{size[1]},{why} "
                                           f"(the actual ratio is {sp.sstr(ratio)})")
                    slips.insert(0, f"scaled-x{r}")
                    break
        return ScalingCheck(claim_text, name, q, factor, requested.label if requested else None, res.ok,
                            res.verdict, ratio, ref, (), (), tuple(explanations), res, tuple(assumptions),
                            tuple(dict.fromkeys(slips)))

    # a ratio claim
    ctx = C.context(model, hp, size)
    ctx_big = C.context(model, hp, C.sizes((size[0] * factor, size[1] * factor))) if size else None
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
        ref_label = next((c.label for c, *_ in ctx.conventions(q) if C.same(c, requested)), requested.label)
        if ref_label not in ratios:
            raise ArchcountError(f"{requested.label} cannot be evaluated here; fix the kernel", argument="convention")
        ok = ref_label in holds
    else:
        ok = any(label in PRESETS for label in holds)
        pres_fail = [lab for lab in PRESETS if lab not in holds]
        ref_label = next((lab for lab in PRESETS if lab in holds), None) if ok else pres_fail[0]
    ratio = ratios[ref_label]
    explanations: list[str] = []
    conv = C.conv_from_label(ref_label)
    slips = []
    if not ok:
        explanations += _scaling_explanations(ctx, ctx_big, q, conv, ratio_claim, factor)
        if ratio == 1 and q == "weights":
            slips.append(f"weights-scaled-x{sp.sstr(ratio_claim)}")
        else:
            slips.append("wrong-ratio")
        if holds:
            explanations.append(f"it holds under {', '.join(holds[:4])}" + (" ..." if len(holds) > 4 else ""))
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
                        ref_label, tuple(holds), tuple(fails), tuple(explanations), None, tuple(assumptions),
                        tuple(slips))


def _ratio(after: Any, before: Any, fp: C.Fingerprinter) -> Any:
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


def _scaling_explanations(ctx: C.Context, ctx_big: C.Context | None, q: str, conv: Convention, claim: Any,
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
                   f"{C.formula_str(border[0][1])} for {border[0][0]}")
    return out


__all__ = ["check_scaled"]
