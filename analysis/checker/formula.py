"""``check``: is a formula the exact count, under which convention, and which slip explains it if not.

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
"""
from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction
from typing import Any, Mapping

import sympy as sp

from ..conventions import Convention
from ..errors import ArchcountError
from ..symbols import HPARAM_SYMBOLS, H, W, k
from . import common as C
from .results import Alternative, CheckResult, SlipFound, Step, TermRow
from .slips import SLIP_BUDGET, Found, search


# ============================================================================================ helpers

def _magnitude(ts: Mapping[Any, Any], ctx: C.Context) -> Fraction:
    """The size of a difference (its terms): the sum of their absolute values at the first point."""
    pt = ctx.fp.points[0]
    total = Fraction(0)
    for m, c in ts.items():
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


def equal_exact(given: Any, exact: Any, ctx: C.Context) -> bool:
    """``given == exact`` for every input size the model accepts (exact floor forms).

    The difference is a quasi-polynomial in H and W: of degree at most d in each and periodic in
    its coefficients with period P, it vanishes everywhere when it vanishes on (d + 1) * P
    consecutive accepted sizes per axis; the other symbols are compared at the fingerprint points.
    """
    key = ("exact", given, exact)
    if key not in ctx.totals:
        ctx.totals[key] = _equal_exact(given, exact, ctx)
    return ctx.totals[key]


def _equal_exact(given: Any, exact: Any, ctx: C.Context) -> bool:
    diff = sp.expand(given - exact)
    if diff == 0:
        return True
    if not C.has_rounding(diff):
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
            if not C.is_zero(ctx.fp(part.xreplace({W: sp.Integer(w)}))):
                return False
    return True


def _term_rows(given: Any, expected: Any, ref: Any, q: str) -> tuple[TermRow, ...]:
    g, e = C.terms(given), C.terms(expected)
    contrib: dict[sp.Expr, list[str]] = {}
    for r in ref.rows:
        for m in C.terms(r.value(q)):
            contrib.setdefault(m, []).append(r.path)
    return tuple(TermRow(C.mono_str(m), e.get(m, sp.Integer(0)), g.get(m, sp.Integer(0)), tuple(contrib.get(m, ())))
                 for m in sorted(set(g) | set(e), key=C.mono_key))


def _term_explanations(given: Any, expected: Any, ref: Any, q: str, numeric: bool) -> list[str]:
    """Term-by-term description of a difference no known slip explains."""
    g, e = C.terms(given), C.terms(expected)
    per_layer: dict[sp.Expr, list[str]] = {}
    for r in ref.rows:
        for m, c in C.terms(r.value(q)).items():
            per_layer.setdefault(m, []).append(f"{r.path}: {C.formula_str(c * m)}")
    out = []
    has_size = lambda m: m.has(H) or m.has(W)  # noqa: E731
    if q == "weights" and any(has_size(m) for m in g):
        out.append("weights do not depend on the input size, but the formula has terms in H, W: "
                   + ", ".join(C.mono_str(m) for m in g if has_size(m)))
    if q != "weights" and any(has_size(m) for m in e) and not any(has_size(m) for m in g) and not numeric:
        out.append(f"the formula does not depend on H, W, but the {q} grow with the input area")
    for m in sorted(set(g) | set(e), key=C.mono_key):
        gc, ec = g.get(m, 0), e.get(m, 0)
        if gc == ec:
            continue
        src = f" (from {', '.join(per_layer[m])})" if m in per_layer else ""
        name = "constant" if m == 1 else C.mono_str(m)
        if ec == 0:
            if q == "weights" and has_size(m):
                continue
            out.append(f"the {name} term ({sp.sstr(gc)}) is not expected")
        elif gc == 0:
            out.append(f"the {name} term is missing: expected {sp.sstr(ec)}{src}")
        else:
            ratio = sp.nsimplify(gc / ec)
            extra = ""
            if ratio.is_Rational and ratio > 0 and ratio != 1 and (ratio.q == 1 or ratio.p == 1):
                extra = {2: ", twice the expected", sp.Rational(1, 2): ", half the expected"}.get(
                    ratio, f", {ratio} times the expected" if ratio.q == 1 else f", 1/{ratio.q} of the expected")
            out.append(f"the {name} term is {sp.sstr(gc)}, expected {sp.sstr(ec)}{extra}{src}")
    return out


class _Budget:
    """The slip-search budget shared by every search of one answer."""

    def __init__(self, total: int = SLIP_BUDGET) -> None:
        self.total = total
        self.used = 0
        self.complete = True

    def run(self, diff: Any, ctx: C.Context, conv: Convention, q: str, expected: Any, pairs: bool,
            only: set[str] | None = None) -> Found | None:
        stats: dict = {}
        found = search(diff, ctx, ctx.reference(conv), q, conv, expected, pairs=pairs,
                       budget=max(self.total - self.used, 0), stats=stats, only=only)
        self.used += stats.get("used", 0)
        self.complete = self.complete and stats.get("complete", True)
        return found

    def stats(self) -> dict[str, Any]:
        return {"budget": self.total, "used": self.used, "complete": self.complete}


def _partial(diff: Any, ctx: C.Context, conv: Convention, q: str, expected: Any, budget: _Budget
             ) -> tuple[Any, Found] | None:
    """The largest part of ``diff`` (a subset of its terms) that one known slip explains."""
    ts = C.terms(diff)
    if not 2 <= len(ts) <= 8:
        return None
    monos = sorted(ts, key=C.mono_key)
    # a useful partial explanation covers most of the difference: at most 2 terms left over
    for size in range(len(monos) - 1, max(0, len(monos) - 3, (len(monos) - 1) // 2), -1):
        for subset in itertools.combinations(monos, size):
            part = sp.Add(*[ts[m] * m for m in subset])
            found = budget.run(part, ctx, conv, q, expected, pairs=False)
            if found is not None:
                return part, found
    return None


def _hints(given: Any, ctx: C.Context, distinct: Mapping, size: Any) -> list[str]:
    """'Right if ...' hints when the formula lacks a symbol the expected count has."""
    out: list[str] = []
    free = given.free_symbols
    exp_free: set = set()
    for simple, _ in distinct.values():
        if isinstance(simple, sp.Basic):
            exp_free |= simple.free_symbols
    absent = [s for s in C.CHANNELS if s in exp_free and s not in free and C.SYMBOL_HPARAM[s] in ctx.defaults]
    size_absent = size is None and H in exp_free and W in exp_free and not (free & {H, W})
    given_fp = ctx.fp(given) if absent else None
    for n in range(len(absent), 0, -1):
        for combo in itertools.combinations(absent, n):
            vals = {s: sp.Integer(ctx.defaults[C.SYMBOL_HPARAM[s]]) for s in combo}
            for simple, convs in distinct.values():
                fixed = sp.sympify(simple).xreplace(vals)
                if ctx.fp(fixed) == given_fp and sp.expand(given - fixed) == 0:
                    conv = next((c for c in convs if C.is_preset(c)), convs[0])
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
                conv = next((c for c in convs if C.is_preset(c)), convs[0])
                out.append(f"right under {conv.label} for input size {roots[0]}x{roots[0]}: pass --size {roots[0]}")
                return out
        out.append("the formula has no H, W: if it is for one input size, pass input_size / --size")
    return out


def _slips_of(found: Found | None, partial: bool = False) -> tuple[SlipFound, ...]:
    if found is None:
        return ()
    return tuple(SlipFound(name, layers, text, partial) for name, layers, text in found.slips)


# ============================================================================================ check()

def check(formula: Any, model: Any, quantity: str, *, input_size: Any = None, convention: Any = None,
          switches: Any = None, **hparams: Any) -> CheckResult:
    """Whether ``formula`` is the exact ``quantity`` (weights, outputs, connections) of ``model``.

    ``formula`` is text (plain or LaTeX, read safely by :func:`analysis.parsing.parse_answer`) or a
    sympy expression (held to the same size limits).  Text may be chained working (``a = b = c``:
    every link is judged and the first wrong step named) or alternatives (``a or b``: each judged).
    ``model`` is a zoo name, a factory, a module or a :class:`CountTable`.  ``input_size=None``
    compares symbolically in H, W (exact floors, or the table simplified for H, W multiples of the
    model's factor); a number (or ``(H, W)``) substitutes it.  Hyperparameters (``kernel=3`` or
    ``k=3``, ``num_filters=32`` or ``NF=32`` ...) fix symbols in both formulas; ``kernel="k"`` keeps
    the kernel symbolic.  When the formula has no ``k`` and the kernel is not given, the model's
    default kernel is assumed (and said so).  ``convention`` (a preset, a label such as
    ``"weighted[bias=true]"`` or a :class:`Convention`; ``None``: any preset) decides ``ok``.

    >>> from analysis.symbols import NIC, NF, NC, k
    >>> r = check(k**2*(NIC*NF + 4*NF**2 + NF*NC + NC**2) + 4*NF + 2*NC, "pool_upsample", "weights")
    >>> r.ok, r.matches[:2], r.verdict
    (False, ('weighted[bias=true]', 'weighted[bias=true,transposed=exact]'), 'wrong (right under weighted[bias=true])')
    >>> r.explanations[0]
    'right under weighted[bias=true] (biases counted, BatchNorm ignored), not under a preset'
    >>> check("weights = 9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2 = 9 (NIC NF + 4 NF^2 + NF NC + NC^2)",
    ...       "pool_upsample", "weights").form
    'chain'
    """
    q = C.quantity(quantity)
    hp, symbolic_k = C.hparams(hparams)
    size = C.sizes(input_size)
    requested = C.convention(convention, switches)
    from ..table import CountTable
    extra = dict(model.symbols) if isinstance(model, CountTable) else None
    if not isinstance(formula, str):
        text, given = C.read_formula(formula, extra)
        return _check_one(text, given, model, q, hp, symbolic_k, size, requested, extra)
    from ..parsing import parse_answer
    try:
        answer = parse_answer(formula, symbols=extra)
    except ArchcountError as exc:
        raise exc.with_context(argument="formula") from None
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise ArchcountError(f"formula too large or too deeply nested ({type(exc).__name__})",
                             argument="formula") from None
    if any(len(conj) > 1 for conj in answer.alternatives):
        raise ArchcountError("a count is one formula; this answer joins several with ',', ';' or 'and'",
                             argument="formula")
    chains = [conj[0] for conj in answer.alternatives]
    results = [_check_chain(formula if len(chains) == 1 else chain.text, chain, model, q, hp, symbolic_k, size,
                            requested, extra) for chain in chains]
    if len(results) == 1:
        return results[0]
    return _alternatives(formula, chains, results)


def _check_chain(text: str, chain: Any, model: Any, q: str, hp: dict, symbolic_k: bool, size: Any,
                 requested: Convention | None, extra: Any) -> CheckResult:
    sides = [C.standardize(s, extra, "formula") for s in chain.sides]
    res = _check_one(text, sides[-1], model, q, dict(hp), symbolic_k, size, requested, extra)
    if len(sides) == 1:
        return res
    from dataclasses import replace
    ctx = C.context(model, dict(res.hparams), size)
    subs = {HPARAM_SYMBOLS[key]: sp.Integer(v) for key, v in res.hparams.items() if key in HPARAM_SYMBOLS}
    if size is not None:
        subs.update({H: sp.Integer(size[0]), W: sp.Integer(size[1])})
    values = [sp.expand(s.xreplace(subs)) if subs else s for s in sides]
    steps = []
    for i in range(len(values) - 1):
        a, b = values[i], values[i + 1]
        holds = _same_value(a, b, ctx)
        steps.append(Step(i + 1, chain.texts[i], chain.texts[i + 1], holds, 0 if holds else sp.expand(b - a),
                          _same_value(b, res.expected, ctx)))
    bad = next((s for s in steps if not s.holds), None)
    explanations = list(res.explanations)
    if bad is not None:
        first = bad.index
        line = (f"step {bad.index} does not hold: {bad.left} = {bad.right} is off by "
                f"{C.formula_str(bad.difference)}")
        if res.ok:
            verdict = f"wrong: the final count is right, but step {bad.index} of the working does not hold"
        else:
            verdict = res.verdict + f"; step {bad.index} of the working does not hold"
        right_before = [s for s in steps[:bad.index - 1] if s.right_is_answer] or \
            ([bad] if _same_value(values[bad.index - 1], res.expected, ctx) else [])
        if right_before:
            line += f" (up to it the working equals the expected count {C.formula_str(res.expected)})"
        explanations.insert(0, line)
        ok = False
    else:
        first = None if res.ok else 0
        ok = res.ok
        verdict = res.verdict
        if not res.ok:
            explanations.insert(0, f"every step of the working holds; the first expression, {chain.texts[0]}, "
                                   f"is already wrong")
    return replace(res, formula=text, ok=ok, verdict=verdict, explanations=tuple(explanations), form="chain",
                   steps=tuple(steps), first_wrong_step=first)


def _same_value(a: Any, b: Any, ctx: C.Context) -> bool:
    d = sp.expand(sp.sympify(a) - sp.sympify(b))
    if d == 0:
        return True
    if not C.has_rounding(d):
        return False
    return equal_exact(sp.sympify(a), sp.sympify(b), ctx)


def _alternatives(text: str, chains: list, results: list[CheckResult]) -> CheckResult:
    from dataclasses import replace
    alts = tuple(Alternative(chain.text, r.ok, r.verdict, r.explanation) for chain, r in zip(chains, results))
    wrong = [(i, a) for i, a in enumerate(alts, start=1) if not a.ok]
    if not wrong:
        base = results[0]
        return replace(base, formula=text, form="alternatives", alternatives=alts,
                       explanations=("every alternative is right",) + base.explanations)
    i, alt = wrong[0]
    base = results[i - 1]
    names = ", ".join(f"{j} ({a.text})" for j, a in wrong)
    lead = f"alternative{'s' if len(wrong) > 1 else ''} {names} {'are' if len(wrong) > 1 else 'is'} wrong"
    return replace(base, formula=text, ok=False, verdict=f"wrong: {lead}", form="alternatives", alternatives=alts,
                   explanations=(lead + f"; alternative {i}: " + (alt.explanation or alt.verdict),) + base.explanations)


def _check_one(text: str, given: Any, model: Any, q: str, hp: dict[str, Any], symbolic_k: bool, size: Any,
               requested: Convention | None, extra: Any) -> CheckResult:
    assumptions: list[str] = []
    name, defaults, _, _, _ = C.model_info(model)
    if symbolic_k:
        assumptions.append("the kernel is kept symbolic (k)")
    elif "kernel" not in hp and k not in given.free_symbols and "kernel" in defaults:
        # the kernel: assumed from the model's default when the formula has no k
        probe = C.context(model, hp, size)
        dep = any(t is not None and isinstance(t, sp.Basic) and k in t.free_symbols
                  for _, t, _, _ in probe.conventions(q)[:3])
        if dep:
            hp["kernel"] = defaults["kernel"]
            assumptions.append(f"the formula has no k: compared with kernel={defaults['kernel']} (the model's "
                               f"default; pass kernel=... / --kernel for another, --kernel k to keep it symbolic)")
    if given.is_number:
        # a plain number: channel counts the formula cannot carry are the model's defaults
        probe = C.context(model, hp, size)
        free: set = set()
        for _, t, _, _ in probe.conventions(q)[:3]:
            if isinstance(t, sp.Basic):
                free |= t.free_symbols
        fill = {C.SYMBOL_HPARAM[s]: defaults[C.SYMBOL_HPARAM[s]] for s in C.CHANNELS
                if s in free and C.SYMBOL_HPARAM[s] not in hp and C.SYMBOL_HPARAM[s] in defaults}
        if fill:
            hp.update(fill)
            assumptions.append("the formula is a number: compared with " + ", ".join(
                f"{HPARAM_SYMBOLS[key]}={v}" for key, v in fill.items()) + " (the model's defaults; pass "
                + " ".join(f"--{str(HPARAM_SYMBOLS[key]).lower()}" for key in fill) + " for others)")
    subs = {HPARAM_SYMBOLS[key]: sp.Integer(v) for key, v in hp.items() if key in HPARAM_SYMBOLS}
    if size is not None:
        subs.update({H: sp.Integer(size[0]), W: sp.Integer(size[1])})
    if subs:
        given = sp.expand(given.xreplace(subs))
    ctx = C.context(model, hp, size)
    assumptions += list(ctx.notes)
    name = ctx.model
    fp = ctx.fp
    given_fp = fp(given)
    budget = _Budget()

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
            matches.append((conv, exact is simple or equal_exact(given, exact, ctx)))
        elif exact is not simple and C.has_rounding(given) and equal_exact(given, exact, ctx):
            matches.append((conv, True))
    if requested is not None and any(C.same(requested, c) for c in unavailable):
        why = next(w for c, _, _, w in rows if C.same(requested, c) and w)
        raise ArchcountError(f"{requested.label} cannot be evaluated here: {why}", model=name,
                             argument="convention")

    match_labels = tuple(c.label for c, _ in matches)
    if requested is not None:
        hit = [(c, ex) for c, ex in matches if C.same(c, requested)]
    else:
        hit = [(c, ex) for c, ex in matches if C.is_preset(c)]
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
    found: Found | None = None
    partial = False
    extra_slips: list[SlipFound] = []

    if ok:
        reference = hit[0][0]
        exact, expected = ctx.select(reference, q)
        names = [c.label for c, _ in hit]
        verdict = "right" + (f" ({', '.join(names)})" if requested is None else "")
        if condition and ctx.multiple > ctx.rule_multiple:
            explanations.append(f"right {condition}; for other sizes the exact count is {C.formula_str(exact)}"
                                if not exact.has(sp.floor) else
                                f"right {condition}; for other sizes the exact count has floors: {sp.sstr(exact)}")
    else:
        if C.has_rounding(given) and not ctx.numeric_size:
            from ..simplify import simplify_multiple
            m2 = min(math.lcm(max(ctx.multiple, 1), _period(given)), 64)
            poly = simplify_multiple(given, {"H": m2, "W": m2}, getattr(ctx.exact, "symbols", None))
            if not C.has_rounding(poly):
                given = sp.sympify(poly)
                assumptions.append(f"the formula's floors are compared for H, W multiples of {m2}")
        # the reference: the requested convention, else the closest preset or convention
        cands = []
        for key, (simple, convs) in distinct.items():
            d = sp.expand(given - simple)
            ts = C.terms(d)
            cands.append((len(ts), _magnitude(ts, ctx), convs, simple, d))
        if not cands:
            raise ArchcountError("no convention can be evaluated for this model; fix the kernel", model=name)
        cands.sort(key=lambda c: (c[0], c[1]))
        if matches:
            # right somewhere, but not where asked: explain against the requested or the closest preset
            match_conv = min((c for c, _ in matches), key=lambda c: len(c.changed))
            if requested is not None:
                reference = requested
            else:
                pres = sorted((c for c in cands if any(C.is_preset(cv) for cv in c[2])), key=lambda c: (c[0], c[1]))
                reference = next(cv for cv in pres[0][2] if C.is_preset(cv)) if pres else cands[0][2][0]
            where = "not under " + (f"the requested {requested.label}" if requested is not None else "a preset")
            explanations.append(f"right under {match_conv.label} ({C.describe_switches(match_conv, q)}), {where}")
            verdict = (f"wrong under {requested.label} (right under {match_conv.label})" if requested is not None
                       else f"wrong (right under {match_conv.label})")
        else:
            reference, closest = _closest(cands, ctx, q, budget, requested)
            verdict = "wrong"
        exact, expected = ctx.select(reference, q)
        difference = sp.expand(given - expected)
        ref_table = ctx.reference(reference)
        found = None
        if matches:   # right under another convention: the switches that differ name the slips
            from .slips import switch_slips
            found = budget.run(difference, ctx, reference, q, expected, pairs=True,
                               only=switch_slips(reference, match_conv, q))
        if found is None:
            found = budget.run(difference, ctx, reference, q, expected, pairs=True)
        if found is not None:
            single = C.terms(difference)
            explanations += list(found.texts)
            mono = list(single)[0] if len(single) == 1 else None
            if mono is not None and mono != 1 and C.terms(expected).get(mono, 0) != 0 \
                    and C.terms(given).get(mono, 0) != 0:
                explanations += _term_explanations(given, expected, ref_table, q, ctx.numeric_size)
            layers = found.layers
        elif (part := _partial(difference, ctx, reference, q, expected, budget)) is not None:
            explained, found = part
            partial = True
            explanations += list(found.texts)
            rest = _term_explanations(given - explained, expected, ref_table, q, ctx.numeric_size)
            explanations += [("in addition, " if i == 0 else "") + line for i, line in enumerate(rest)]
            layers = tuple(dict.fromkeys(list(found.layers) + [
                p for tr in _term_rows(given - explained, expected, ref_table, q) if tr.differs for p in tr.layers]))
        elif given.is_number and isinstance(expected, sp.Basic) and not expected.is_number:
            syms = ", ".join(str(x) for x in sorted(expected.free_symbols, key=lambda x: C.ORDER.get(x, 99)))
            explanations.append(f"the formula is a plain number, but the {q} depend on {syms}")
        else:
            explanations += _term_explanations(given, expected, ref_table, q, ctx.numeric_size)
            layers = tuple(dict.fromkeys(p for tr in _term_rows(given, expected, ref_table, q) if tr.differs
                                         for p in tr.layers))
        if not matches:
            explanations += _hints(given, ctx, distinct, size)
        if symbolic_k and k not in given.free_symbols and isinstance(expected, sp.Basic) and expected.has(k):
            fixed = next((v for v in range(1, 16) if sp.expand(given - expected.xreplace({k: v})) == 0), None)
            if fixed is not None:
                line = f"right for k={fixed}: the formula has the kernel size put in, but the question keeps k symbolic"
                explanations.insert(0, line)
                found = None
                extra_slips.append(SlipFound("kernel-substituted", (), line))
        if closest and requested is not None and closest != requested.label:
            words = C.describe_switches(C.conv_from_label(closest), q)
            explanations.append(f"the closest convention is {closest} ({words})")
        if not matches and unavailable and "kernel" not in hp and q == "connections":
            assumptions.append(f"{len(unavailable)} conventions (padding_taps=exclude, transposed=exact) "
                               f"need a numeric kernel and were not compared")
        if not budget.complete:
            assumptions.append(f"the slip search stopped at its budget of {budget.total:,} lookups; "
                               f"a pair of slips may have been missed")
    ref_table = ctx.reference(reference)
    if ok:
        difference = sp.Integer(0)
    terms_ = _term_rows(given, expected, ref_table, q)
    if ctx.exact.unsupported:
        assumptions.append(f"partial: {len(ctx.exact.unsupported)} unsupported layer(s) not counted")
    return CheckResult(text, name, q, requested.label if requested is not None else None, ok, verdict,
                       given, expected, reference.label, match_labels, condition, closest, difference, terms_,
                       tuple(explanations), tuple(layers), tuple(assumptions), dict(hp), size,
                       slips=_slips_of(found, partial) + tuple(extra_slips), search=budget.stats())


def _closest(cands: list, ctx: C.Context, q: str, budget: _Budget, requested: Convention | None
             ) -> tuple[Convention, str]:
    """The convention to explain a wrong answer against: among those with the fewest differing terms
    (and up to two more), the one whose difference the best-scored slip explains (singles first, then
    pairs; presets first)."""
    best_n = cands[0][0]
    tops = [c for c in cands if c[0] <= best_n + 2][:8]
    chosen = None
    for pairs in (False, True):
        hits = []
        for order, c in enumerate(tops):
            conv0 = next((cv for cv in c[2] if C.is_preset(cv)), c[2][0])
            found = budget.run(c[4], ctx, conv0, q, c[3], pairs=pairs)
            if found is not None:
                hits.append((not C.is_preset(conv0), found.score, order, conv0))
        if hits:
            chosen = min(hits, key=lambda h: h[:3])[3]
            break
    if chosen is None:
        c = cands[0]
        chosen = next((cv for cv in c[2] if C.is_preset(cv)), c[2][0])
    return (requested or chosen), chosen.label


__all__ = ["check", "equal_exact"]
