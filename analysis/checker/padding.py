"""``check_padding``: a claimed padding, a relation between padding and output padding, or
alternatives, against :func:`analysis.shapes.solve_padding`; the kernel may stay symbolic.

>>> check_padding("2p - op = 2", 4, stride=2, transposed=True).ok
True
>>> r = check_padding("p = 1 or p = 2", 4, stride=2)
>>> r.ok, r.explanations[0]
(False, 'alternative 2 (p = 2) is wrong: p=2 gives H/2 + 1 for H divisible by 2, not H/2; the right choice: p=1 \
(valid for all input sizes divisible by 2 (in >= 2))')
>>> check_padding("p = (k-1)/2", "k").ok
True
"""
from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Sequence

import sympy as sp

from ..errors import ArchcountError
from ..symbols import H, k
from .common import MAX_VALUE, bounded_int, is_symbolic_kernel
from .results import Alternative, PaddingCheck

P = sp.Symbol("p", integer=True, nonnegative=True)
OP = sp.Symbol("op", integer=True, nonnegative=True)
UNKNOWNS = {"p": P, "P": P, "pad": P, "padding": P, "op": OP, "output_padding": OP, "outpad": OP}
MAX_STRIDE = 1024            #: largest stride / dilation of a padding check
KERNELS_CHECKED = 64         #: a symbolic kernel is judged for k = 1 .. this
_ENUMERATE_LIMIT = 4096      #: largest p tried for a relation that is not polynomial in p
INFINITE = "infinite"


def _parse_padding_claim(claimed: Any) -> tuple[int, int | None] | None:
    """The legacy claim forms ``1``, ``(1, 0)``, ``"p=1"``, ``"p=1 op=0"``; None for anything else."""
    if isinstance(claimed, bool):
        raise ArchcountError(f"expected a padding such as p=1, got {claimed!r}", argument="padding")
    if isinstance(claimed, int):
        return bounded_int(claimed, "padding", 0), None
    if isinstance(claimed, (tuple, list)):
        if len(claimed) in (1, 2) and all(isinstance(v, int) and not isinstance(v, bool) for v in claimed):
            return (bounded_int(claimed[0], "padding", 0),
                    bounded_int(claimed[1], "output_padding", 0) if len(claimed) == 2 else None)
        raise ArchcountError(f"expected (padding, output_padding), got {claimed!r}", argument="padding")
    if not isinstance(claimed, str):
        raise ArchcountError(f"expected a padding such as p=1, got {type(claimed).__name__}", argument="padding")
    text = claimed.strip().strip("()[]")
    p: int | None = None
    op: int | None = None
    toks = [t for t in re.split(r"[\s,;]+", text) if t]
    if not toks:
        return None
    for tok in toks:
        m = re.fullmatch(r"(?:(p|pad|padding|op|output_padding)\s*=\s*)?(\d{1,20})", tok, flags=re.I)
        if not m:
            return None
        key = (m.group(1) or ("p" if p is None else "op")).lower()
        value = int(m.group(2))
        if key in ("p", "pad", "padding"):
            if p is not None:
                raise ArchcountError(f"padding given twice in {claimed!r}", argument="padding")
            p = value
        else:
            if op is not None:
                raise ArchcountError(f"output_padding given twice in {claimed!r}", argument="padding")
            op = value
    if p is None:
        raise ArchcountError(f"no padding in {claimed!r}; write e.g. p=1", argument="padding")
    return bounded_int(p, "padding", 0), op


def _goal(scale_r: Any) -> str:
    num, den = sp.fraction(scale_r)
    return "out = " + ("" if num == 1 else f"{num}*") + "in" + ("" if den == 1 else f"/{den}")


def _sols_text(sols: Iterable[tuple[Any, Any]], transposed: bool) -> str:
    return ", ".join((f"p={a}, op={b}" if transposed else f"p={a}") for a, b in sols) or "none"


# ============================================================================== one value, numeric kernel

def _value_check(p: int, op: int, kernel: int, stride: int, dilation: int, transposed: bool, scale: Any
                 ) -> PaddingCheck:
    from ..shapes import out_len, solve_padding
    sol = solve_padding(kernel, stride=stride, dilation=dilation, transposed=transposed, scale=scale)
    scale_r = sol.scale
    ok = (p, op) in [(int(a), int(b)) for a, b in sol.solutions]
    m = sp.Symbol("m", integer=True, nonnegative=True)
    gives: list[str] = []
    failures: list[tuple[int, int, Any]] = []
    explanations: list[str] = []
    slips: list[str] = []
    kind = "transposed" if transposed else "conv"
    residues = [(0, 1)] if transposed or stride == 1 else [(r, stride) for r in range(min(stride, 8))]
    for r, s in residues:
        n_expr = s * m + r if s > 1 else H
        out = sp.expand(out_len(kind, n_expr, kernel, stride, p, dilation, op))
        out_h = sp.expand(out.xreplace({m: (H - r) / s})) if s > 1 else out
        want = scale_r * H
        if s > 1:
            cls = f"H divisible by {s}" if r == 0 else ("odd H" if s == 2 else f"H = {r} mod {s}")
        else:
            cls = "every H"
        good = sp.expand(out_h - want) == 0
        if r == 0:
            gives.append(f"{cls}: out = {sp.sstr(out_h)}" + ("" if good else f" (wanted {sp.sstr(want)})"))
        else:
            gives.append(f"{cls}: out = {sp.sstr(sp.factor(out_h))} ({sp.sstr(want)} is not an integer there)")
    for n in range(1, 65):
        want = scale_r * n
        if not want.is_integer or len(failures) >= 4:
            continue
        got = out_len(kind, n, kernel, stride, p, dilation, op)
        if int(got) != int(want) and (transposed or n + 2 * p >= dilation * (kernel - 1) + 1):
            failures.append((n, int(got), int(want)))
    sols = _sols_text(sol.solutions, transposed)
    if ok:
        verdict = "right"
        explanations.append(f"holds for {sol.valid_for}")
        if stride > 1 and not transposed:
            odd = [g for g in gives if not g.startswith("H divisible")]
            if odd:
                explanations.append("other sizes are not scaled exactly: " + "; ".join(odd))
    else:
        verdict = "wrong"
        main = gives[0].split(": out = ")[1].split(" (wanted")[0]
        if not sol.solutions:
            explanations.append(f"p={p} gives {main} for every H: no padding {'keeps' if scale_r == 1 else 'gives'} "
                                f"the size for k={kernel}, stride {stride} ({sol.reason})")
            slips.append("no-padding-works")
        else:
            cls = gives[0].split(":")[0]
            explanations.append(f"p={p}" + (f", op={op}" if transposed else "") + f" gives {main} for {cls}, "
                                f"not {sp.sstr(scale_r * H)}; the right choice: {sols} (valid for {sol.valid_for})")
            for name, key, value in _padding_rules(kernel, dilation):
                if value == p and all(int(a) != value for a, _ in sol.solutions):
                    explanations.append(f"p={p} is {name}; " + _padding_rule_hint(stride, transposed))
                    slips.append(key)
                    break
            if transposed and any(int(a) == p for a, _ in sol.solutions):
                right_op = [int(b) for a, b in sol.solutions if int(a) == p]
                explanations.append(f"the padding is right, but output_padding must be {right_op[0]}")
                slips.append("output-padding-wrong")
            if not slips:
                slips.append("padding-off-by-one" if any(abs(int(a) - p) == 1 for a, _ in sol.solutions)
                             else "padding-wrong")
    return PaddingCheck((p, op), kernel, stride, dilation, transposed, _goal(scale_r), ok, verdict,
                        tuple(sol.solutions), tuple(gives), tuple(failures), tuple(explanations),
                        slips=tuple(slips))


def _padding_rules(kernel: int, dilation: int) -> list[tuple[str, str, int]]:
    e = dilation * (kernel - 1)
    rules = []
    if kernel % 2 == 0:
        rules.append((f"k/2 = {kernel // 2}", "padding-k/2", kernel // 2))
    rules += [(f"k - 1 = {kernel - 1}", "padding-k-1", kernel - 1),
              (f"ceil((k-1)/2) = {-(-e // 2)}", "padding-ceil", -(-e // 2)),
              (f"floor((k-1)/2) = {e // 2}", "padding-floor", e // 2), ("0 (no padding)", "padding-zero", 0)]
    return rules


def _padding_rule_hint(stride: int, transposed: bool) -> str:
    if transposed:
        return "for a stride-s transposed conv the rule is 2p = d(k-1) + 1 - s + op, 0 <= op < s"
    if stride == 1:
        return "keeping the size needs p = d(k-1)/2"
    return f"a stride-{stride} conv gives in/{stride} for ceil((d(k-1)+1-s)/2) <= p <= floor(d(k-1)/2)"


# =============================================================================================== relations

def admitted(equations: Sequence[Any], kernel: int, stride: int, dilation: int, transposed: bool
             ) -> set[tuple[int, int]] | str:
    """The (p, op) with p >= 0 and 0 <= op < max(stride, dilation) (op = 0 for a conv) that satisfy
    every equation (``expr == 0``), or :data:`INFINITE` when they leave p free.

    Solved in closed form (integer roots of a polynomial in p) for each allowed op.

    >>> sorted(admitted([2 * P - OP - 2], 4, 2, 1, True))
    [(1, 0)]
    """
    return _Relation(equations).solutions(kernel, stride, dilation, transposed)


class _Relation:
    """Equations in p, op (and k), split once into ``a*p + b`` where they are linear in p."""

    def __init__(self, equations: Sequence[Any]) -> None:
        self.eqs = [sp.expand(sp.sympify(e)) for e in equations]
        self.uses_op = any(OP in e.free_symbols for e in self.eqs)
        self.linear: list[tuple[Any, Any] | None] = []
        for e in self.eqs:
            try:
                poly = sp.Poly(e, P)
                ok = poly.degree() <= 1 and not any(c.has(P) for c in poly.all_coeffs())
            except (sp.PolynomialError, sp.GeneratorsNeeded):
                ok = False
            self.linear.append((poly.coeff_monomial(P), poly.coeff_monomial(1)) if ok else None)

    def solutions(self, kernel: int, stride: int, dilation: int, transposed: bool) -> set[tuple[int, int]] | str:
        ops = range(max(stride, dilation)) if transposed and self.uses_op else [0]
        out: set[tuple[int, int]] = set()
        for o in ops:
            values = {k: kernel, OP: o}
            cand: set[int] | None = None
            constraint = False
            for e, lin in zip(self.eqs, self.linear):
                if lin is not None:
                    a, b = (sp.sympify(x).xreplace(values) for x in lin)
                    if a == 0:
                        if b != 0:
                            cand = set()
                            constraint = True
                            break
                        continue
                    constraint = True
                    root = -b / a
                    roots = {int(root)} if root.is_Integer and root >= 0 else set()
                else:
                    ev = sp.expand(e.xreplace(values))
                    if ev == 0:
                        continue
                    constraint = True
                    roots = _roots(ev, kernel, stride, dilation)
                cand = roots if cand is None else cand & roots
                if not cand:
                    break
            if not constraint:
                return INFINITE
            out |= {(r, o) for r in (cand or set())}
        return out


def _equations(chains: Sequence[Any], transposed: bool, default_op: bool) -> list[Any]:
    eqs = []
    for chain in chains:
        for a, b in zip(chain.sides, chain.sides[1:]):
            eqs.append(sp.expand(a - b))
    free = set().union(*(e.free_symbols for e in eqs)) if eqs else set()
    other = free - {P, OP, k}
    if other:
        names = ", ".join(sorted(map(str, other)))
        raise ArchcountError(f"a padding relation is about p and op (and k); it also has {names}", argument="padding")
    if OP in free and not transposed:
        raise ArchcountError("output_padding (op) applies only to transposed convs (pass transposed=True)",
                             argument="output_padding")
    if P not in free and OP not in free:
        raise ArchcountError("the relation says nothing about the padding p", argument="padding")
    if transposed and OP not in free and default_op:
        eqs.append(OP)   # op not mentioned: PyTorch's default output_padding = 0
    return eqs


def _judge(got: set | str, right: set[tuple[int, int]], transposed: bool) -> tuple[bool, str, str]:
    """(ok, explanation, slip) for the set a relation admits against the right set."""
    domain = "p >= 0" + (", 0 <= op < stride" if transposed else "")
    if got == INFINITE:
        return False, f"it holds for every p ({domain}), so it does not pin the padding; the right one: " \
                      f"{_sols_text(sorted(right), transposed)}", "relation-free"
    assert isinstance(got, set)
    right = set(right)
    if got == right:
        if not right:
            return True, "right: no padding works, and the relation has no solution either", ""
        return True, f"right: its solutions with {domain} are exactly the right ones: " \
                     f"{_sols_text(sorted(right), transposed)}", ""
    if len(got) == 1 and got <= right:
        return True, f"right: it gives {_sols_text(sorted(got), transposed)}, one of the right paddings " \
                     f"(all: {_sols_text(sorted(right), transposed)})", ""
    if not got:
        return False, f"no {domain} satisfies it; the right one: {_sols_text(sorted(right), transposed)}", \
            "relation-no-solution"
    extra, missing = sorted(got - right), sorted(right - got)
    parts = []
    if extra:
        parts.append(f"it admits {_sols_text(extra, transposed)}, which {'is' if len(extra) == 1 else 'are'} "
                     f"not right")
    if missing:
        parts.append(f"it excludes {_sols_text(missing, transposed)}")
    if not right:
        parts.append("no padding works here")
    return False, "; ".join(parts), "relation-extra" if extra else "relation-missing"


@functools.lru_cache(maxsize=4096)
def _right_set(kernel: int, stride: int, dilation: int, transposed: bool, scale: Any) -> frozenset[tuple[int, int]]:
    from ..shapes import solve_padding
    sol = solve_padding(kernel, stride=stride, dilation=dilation, transposed=transposed, scale=scale)
    return frozenset((int(a), int(b)) for a, b in sol.solutions)


def _relation_check(text: str, form: str, chains: Sequence[Any], kernel: Any, stride: int, dilation: int,
                    transposed: bool, scale: Any, default_op: bool = True) -> PaddingCheck:
    from ..shapes import solve_padding
    eqs = _equations(chains, transposed, default_op)
    claimed = _claimed(chains)
    if not isinstance(kernel, sp.Basic):
        right = _right_set(kernel, stride, dilation, transposed, scale)
        got = admitted(eqs, kernel, stride, dilation, transposed)
        ok, why, slip = _judge(got, right, transposed)
        sol = solve_padding(kernel, stride=stride, dilation=dilation, transposed=transposed, scale=scale)
        explanations = [why]
        if isinstance(got, set):
            for p, op in sorted(got - right)[:2]:
                v = _value_check(p, op, kernel, stride, dilation, transposed, scale)
                explanations.append(v.explanations[0])
        return PaddingCheck(claimed, kernel, stride, dilation, transposed, _goal(sol.scale), ok,
                            "right" if ok else "wrong", tuple(sol.solutions), (), (), tuple(explanations), form, text,
                            admitted=tuple(sorted(got)) if isinstance(got, set) else (),
                            slips=(slip,) if slip else ())
    # a symbolic kernel: judged for every k = 1 .. KERNELS_CHECKED
    failing: list[int] = []
    first_why = ""
    relation = _Relation(eqs)
    for kv in range(1, KERNELS_CHECKED + 1):
        right = _right_set(kv, stride, dilation, transposed, scale)
        got = relation.solutions(kv, stride, dilation, transposed)
        ok_k, why, _ = _judge(got, right, transposed)
        if not ok_k:
            failing.append(kv)
            if not first_why:
                first_why = f"for k={kv}: {why}"
    sol = solve_padding(k, stride=stride, dilation=dilation, transposed=transposed, scale=scale)
    ok = not failing
    linear = all(_linear(e) for e in eqs)
    if ok:
        every = linear and stride <= 8 and dilation <= 8
        explanations = [f"right for every kernel size k = 1..{KERNELS_CHECKED}"
                        + (" (both sides are linear in k per parity of k, so for every k)" if every else "")]
    else:
        odd = [kv for kv in failing if kv % 2]
        even = [kv for kv in failing if not kv % 2]
        where = ", ".join(f"{name} k ({', '.join(map(str, ks[:4]))}{' ...' if len(ks) > 4 else ''})"
                          for name, ks in (("odd", odd), ("even", even)) if ks)
        explanations = [f"wrong for {where}; {first_why}"]
    if sol.solutions:
        explanations.append(f"the right choice for every k: {_sols_text(sol.solutions, transposed)}")
    else:
        for parity, sols in sol.by_parity.items():
            explanations.append(f"{parity} k: {_sols_text(sols, transposed) if sols else 'no padding works'}")
    return PaddingCheck(claimed, k, stride, dilation, transposed, _goal(sol.scale), ok, "right" if ok else "wrong",
                        tuple(sol.solutions), (), (), tuple(explanations), form, text, failing_kernels=tuple(failing),
                        slips=() if ok else ("relation-wrong-for-some-k",))


def _linear(e: Any) -> bool:
    try:
        return sp.Poly(e, P, OP, k).total_degree() <= 1
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return False


def _claimed(chains: Sequence[Any]) -> tuple[Any, Any]:
    """(p, op) as the claim states them when it assigns them directly, else the relation text."""
    p = op = None
    for chain in chains:
        if len(chain.sides) == 2 and chain.sides[0] in (P, OP) and not chain.sides[1].has(P, OP):
            if chain.sides[0] == P:
                p = chain.sides[1]
            else:
                op = chain.sides[1]
    text = ", ".join(c.text for c in chains)
    return (p if p is not None else text, op if op is not None else 0)


# ================================================================================================ check

def check_padding(claimed: Any, kernel: Any, stride: int = 1, *, transposed: bool = False, dilation: int = 1,
                  output_padding: int | None = None, scale: Any = None) -> PaddingCheck:
    """Check a claimed padding: does it give ``out = scale*in`` (default: keep, halve or double) for
    every input size of the class :func:`analysis.shapes.solve_padding` states?

    ``claimed`` is a value (``"p=1"``, ``"p=1 op=0"``, ``1``, ``(1, 0)``), a relation judged as a
    condition on p >= 0 and 0 <= op < stride (``"2p - op = 2"``, ``"p = (k-1)/2"``: right when its
    solutions are exactly the right ones, or it names one of them), or alternatives
    (``"p = 1 or p = 2"``, ``"p ∈ {1, 2}"``: wrong if any alternative is).  ``kernel`` is an int, or
    ``"k"`` to judge the claim for every kernel size.

    >>> r = check_padding("p=2", 4, stride=2)
    >>> r.ok, r.gives[0]
    (False, 'H divisible by 2: out = H/2 + 1 (wanted H/2)')
    >>> check_padding("p=1", 4, stride=1).explanations[0]
    'p=1 gives H - 1 for every H: no padding keeps the size for k=4, stride 1 (keeping the size needs \
2p = d(k-1) = 3, which is odd: an even effective kernel 4 with stride 1 cannot keep the size with symmetric padding)'
    """
    symbolic = is_symbolic_kernel(kernel) or (isinstance(kernel, sp.Symbol) and kernel.name in ("k", "K"))
    kernel_v: Any = k if symbolic else bounded_int(kernel, "kernel", 1, MAX_VALUE)
    stride = bounded_int(stride, "stride", 1, MAX_STRIDE)
    dilation = bounded_int(dilation, "dilation", 1, MAX_STRIDE)
    if not isinstance(transposed, bool):
        raise ArchcountError(f"must be True or False, got {transposed!r}", argument="transposed")
    if output_padding is not None:
        output_padding = bounded_int(output_padding, "output_padding", 0, MAX_STRIDE)
    value = _parse_padding_claim(claimed)
    if value is not None:
        p, op = value
        if output_padding is not None:
            if op is not None and op != output_padding:
                raise ArchcountError(f"output_padding {output_padding} contradicts the claim {claimed!r}",
                                     argument="output_padding")
            op = output_padding
        op = 0 if op is None else op
        if op and not transposed:
            raise ArchcountError("output_padding applies only to transposed convs (pass transposed=True)",
                                 argument="output_padding")
        if not symbolic:
            return _value_check(p, op, kernel_v, stride, dilation, transposed, scale)
        from ..parsing import Chain
        chains = [Chain((P, sp.Integer(p)), ("p", str(p)))] + \
            ([Chain((OP, sp.Integer(op)), ("op", str(op)))] if transposed else [])
        return _relation_check(str(claimed), "value", chains, kernel_v, stride, dilation, transposed, scale)
    from ..parsing import parse_answer
    try:
        answer = parse_answer(claimed, unknowns=UNKNOWNS)
    except ArchcountError as exc:
        raise exc.with_context(argument="padding") from None
    alts = answer.alternatives
    if output_padding is not None:
        from ..parsing import Chain
        alts = tuple(alt + (Chain((OP, sp.Integer(output_padding)), ("op", str(output_padding))),) for alt in alts)
    if len(alts) == 1:
        chains = list(alts[0])
        if all(len(c.sides) == 1 for c in chains) and len(chains) == 1:   # a bare formula: the padding
            from ..parsing import Chain
            chains = [Chain((P, chains[0].sides[0]), ("p", chains[0].texts[0]))]
        form = answer.form if answer.form != "expression" else "value"
        return _one(claimed, form, chains, kernel_v, stride, dilation, transposed, scale)
    results = [_one(", ".join(c.text for c in alt), "relation", list(alt), kernel_v, stride, dilation, transposed,
                    scale) for alt in alts]
    judged = tuple(Alternative(r.answer, r.ok, r.verdict, r.explanation) for r in results)
    wrong = [(i, a, r) for i, (a, r) in enumerate(zip(judged, results), start=1) if not a.ok]
    first = results[0]
    union = sorted({x for r in results for x in r.admitted})
    if wrong:
        explanations = [f"alternative {i} ({a.text}) is wrong: {r.explanations[0]}" for i, a, r in wrong]
        slips = tuple(dict.fromkeys(["alternative-wrong"] + [s for _, _, r in wrong for s in r.slips]))
    else:
        explanations = [f"every alternative is right ({_sols_text(union, transposed)})" if union else
                        "every alternative is right"]
        slips = ()
    return PaddingCheck(first.claimed, first.kernel, stride, dilation, transposed, first.goal, not wrong,
                        "right" if not wrong else "wrong", first.solutions, (), (), tuple(explanations),
                        "alternatives", claimed, judged, tuple(union),
                        tuple(sorted({kv for r in results for kv in r.failing_kernels})), slips)


def _direct(chains: Sequence[Any]) -> tuple[int | None, int | None, bool]:
    """(p, op, only assignments): the numbers a claim assigns directly, as in ``p = 1, op = 0``."""
    p = op = None
    plain = True
    for chain in chains:
        if len(chain.sides) == 2 and chain.sides[0] in (P, OP) and chain.sides[1].is_Integer:
            value = int(chain.sides[1])
            if chain.sides[0] == P:
                plain = plain and p in (None, value)
                p = value
            else:
                plain = plain and op in (None, value)
                op = value
        else:
            plain = False
    return p, op, plain


def _one(text: str, form: str, chains: Sequence[Any], kernel: Any, stride: int, dilation: int, transposed: bool,
         scale: Any) -> PaddingCheck:
    """One alternative: a direct value (the detailed value check) or a relation."""
    from dataclasses import replace
    p, op, plain = _direct(chains)
    if plain and ((p is not None and p < 0) or (op is not None and op < 0)):
        name, value = ("padding", p) if p is not None and p < 0 else ("output_padding", op)
        raise ArchcountError(f"must be >= 0, got {value}", argument=name)
    if plain and p is not None and not isinstance(kernel, sp.Basic):
        if op and not transposed:
            raise ArchcountError("output_padding applies only to transposed convs (pass transposed=True)",
                                 argument="output_padding")
        r = _value_check(p, op or 0, kernel, stride, dilation, transposed, scale)
        return replace(r, form=form, answer=text, admitted=((p, op or 0),))
    return _relation_check(text, form, chains, kernel, stride, dilation, transposed, scale)


__all__ = ["INFINITE", "KERNELS_CHECKED", "MAX_STRIDE", "OP", "P", "UNKNOWNS", "admitted", "check_padding"]
