"""Rendering of the checker's results: terminal text, Markdown, LaTeX and HTML (notebooks), batch tables.

The result classes in :mod:`analysis.checker` carry data only; everything shown to a person is made here.

>>> from analysis.checker import check
>>> r = check("9 NIC NF + 27 NF^2 + 9 NF NC + 9 NC^2", "pool_upsample", "weights")
>>> print(explain(r).splitlines()[1])
verdict: wrong
>>> print(term_table(r).splitlines()[0])
term    expected (weighted)  given     from layers
"""
from __future__ import annotations

import html as _html
import json
from typing import Any, Iterable, Sequence

import sympy as sp

from analysis.checker.common import formula_str, summarize_matches


def _coef(c: Any) -> str:
    return sp.sstr(c)


# ============================================================================================ terminal text

def term_table(result: Any) -> str:
    """The per-term table of a formula check (expected against given coefficients) as fixed-width text."""
    if not result.terms:
        return "(no terms)"
    head = ("term", f"expected ({result.reference})", "given", "", "from layers")
    rows = [(t.term, _coef(t.expected), _coef(t.given), "x" if t.differs else "", ", ".join(t.layers))
            for t in result.terms]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def explain(result: Any) -> str:
    """Everything about one result, for the terminal or an assertion message."""
    kind = getattr(result, "kind", None)
    fn = {"formula": _explain_formula, "shape": _explain_shape, "padding": _explain_padding,
          "scaled": _explain_scaled}.get(kind)
    if fn is None:
        raise TypeError(f"not a checker result: {type(result).__name__}")
    return fn(result)


def _bullets(title: str, items: Iterable[str]) -> list[str]:
    items = list(items)
    return [title] + [f"  - {e}" for e in items] if items else []


def _explain_formula(r: Any) -> str:
    size = "H x W" if r.input_size is None else f"{r.input_size[0]}x{r.input_size[1]}"
    hp = ", ".join(f"{key}={v}" for key, v in r.hparams.items())
    lines = [f"check {r.model} {r.quantity} (input {size}{', ' + hp if hp else ''}): {r.formula}",
             f"verdict: {r.verdict}"]
    if r.steps:
        lines.append("working:")
        for s in r.steps:
            mark = "holds" if s.holds else f"does NOT hold (off by {formula_str(s.difference)})"
            lines.append(f"  step {s.index}: {s.left} = {s.right}   {mark}")
    if r.alternatives:
        lines.append("alternatives:")
        lines += [f"  {i}. {a.text}: {a.verdict}" for i, a in enumerate(r.alternatives, start=1)]
    if r.matches:
        lines.append(f"right under: {summarize_matches(r.matches, r.quantity)}"
                     + (f" ({r.condition})" if r.condition else ""))
    lines.append(f"expected ({r.reference}): {formula_str(r.expected)}")
    if r.difference != 0:
        lines.append(f"given:    {formula_str(r.given)}")
        lines.append(f"difference (given - expected): {formula_str(r.difference)}")
    lines += _bullets("explanation:", r.explanations)
    if r.slips:
        lines.append("slips: " + "; ".join(f"{s.name} ({', '.join(s.layers)})" if s.layers else s.name
                                           for s in r.slips))
    if r.difference != 0 and r.terms:
        lines.append("per-term table:")
        lines += ["  " + line for line in term_table(r).splitlines()]
    if r.assumptions:
        lines.append("assumptions: " + "; ".join(r.assumptions))
    return "\n".join(lines)


def _explain_shape(r: Any) -> str:
    from analysis.checker.shape import shape_text
    from analysis.layertext import format_shape
    lines = [f"check shape: {r.layer} on {format_shape(r.input_shape)} -> claimed {shape_text(r.claimed)}",
             f"verdict: {r.verdict}", f"expected: {format_shape(r.expected)}"]
    lines += [f"  {a}" for a in r.arithmetic]
    lines += _bullets("explanation:", r.explanations)
    return "\n".join(lines)


def _explain_padding(r: Any) -> str:
    what = f"{'transposed conv' if r.transposed else 'conv'} k={r.kernel} s={r.stride}" + \
        (f" d={r.dilation}" if r.dilation != 1 else "")
    if r.form == "value" and not r.answer:
        claim = f"p={r.claimed[0]}" + (f", op={r.claimed[1]}" if r.transposed else "")
    else:
        claim = r.answer
    sols = ", ".join((f"p={p}, op={o}" if r.transposed else f"p={p}") for p, o in r.solutions) or "none"
    lines = [f"check padding: {claim} for {what}, goal {r.goal}", f"verdict: {r.verdict}", f"solutions: {sols}"]
    lines += [f"  {g}" for g in r.gives]
    if r.failures:
        lines.append("  e.g. " + ", ".join(f"in {n} -> {o} (wanted {w})" for n, o, w in r.failures))
    if r.alternatives:
        lines.append("alternatives:")
        lines += [f"  {i}. {a.text}: {a.verdict}" for i, a in enumerate(r.alternatives, start=1)]
    lines += _bullets("explanation:", r.explanations)
    return "\n".join(lines)


def _ratio_text(v: Any) -> str:
    return v if isinstance(v, str) else sp.sstr(v)


def _explain_scaled(r: Any) -> str:
    lines = [f"check scaling: {r.model} {r.quantity} with the input {r.factor}x larger: {r.claim}",
             f"verdict: {r.verdict}", f"actual ratio ({r.reference}): {_ratio_text(r.ratio)}"]
    if r.holds_under:
        lines.append("holds under: " + ", ".join(r.holds_under[:8]) +
                     (f" ... ({len(r.holds_under)} in all)" if len(r.holds_under) > 8 else ""))
    if r.fails_under:
        lines.append("fails under: " + ", ".join(f"{c} (ratio {_ratio_text(x)})" for c, x in r.fails_under[:6]) +
                     (f" ... ({len(r.fails_under)} in all)" if len(r.fails_under) > 6 else ""))
    lines += _bullets("explanation:", r.explanations)
    if r.formula_check is not None:
        lines += ["", explain(r.formula_check)]
    if r.assumptions:
        lines.append("assumptions: " + "; ".join(r.assumptions))
    return "\n".join(lines)


# ================================================================================ notebooks: md, LaTeX, HTML

def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(result: Any) -> str:
    """A result as Markdown: the verdict, the explanations and (for formulas) the per-term table."""
    kind = getattr(result, "kind", "")
    head = {"formula": lambda r: f"**{r.model} {r.quantity}**: `{r.formula}`",
            "shape": lambda r: f"**shape** of `{r.layer}`: claimed `{'x'.join(map(str, r.claimed))}`",
            "padding": lambda r: f"**padding** `{r.answer or r.claimed[0]}` for k={r.kernel}, s={r.stride}",
            "scaled": lambda r: f"**{r.model} {r.quantity}** with the input {r.factor}x larger: `{r.claim}`"}
    if kind not in head:
        raise TypeError(f"not a checker result: {type(result).__name__}")
    lines = [head[kind](result), "", f"verdict: **{_md(result.verdict)}**", ""]
    if kind == "formula":
        lines += [f"expected ({result.reference}): ${sp.latex(sp.sympify(result.expected))}$", ""]
    elif kind == "shape":
        lines += ["expected: `" + "x".join(map(str, result.expected)) + "`", ""]
        lines += [f"- {_md(a)}" for a in result.arithmetic] + [""]
    lines += [f"- {_md(e)}" for e in result.explanations]
    if kind == "formula" and result.difference != 0 and result.terms:
        lines += ["", f"| term | expected ({result.reference}) | given | from layers |", "|---|---|---|---|"]
        for t in result.terms:
            mark = "**" if t.differs else ""
            lines.append(f"| {t.term} | {_coef(t.expected)} | {mark}{_coef(t.given)}{mark} | {', '.join(t.layers)} |")
    return "\n".join(lines).rstrip() + "\n"


def latex(result: Any) -> str:
    """A result as LaTeX (the expected formula and, when wrong, the given one)."""
    kind = getattr(result, "kind", "")
    if kind == "formula":
        out = rf"\text{{{result.verdict}}}:\quad {sp.latex(sp.sympify(result.expected))}"
        if result.difference != 0:
            out += rf"\quad\text{{given: }}{sp.latex(sp.sympify(result.given))}"
        return f"${out}$"
    if kind == "shape":
        dims = r" \times ".join(map(str, result.expected))
        return rf"$\text{{{result.verdict}}}:\ {dims}$"
    if kind == "padding":
        sols = ", ".join(f"p={sp.latex(sp.sympify(p))}" for p, _ in result.solutions) or r"\text{none}"
        return rf"$\text{{{result.verdict}}}:\ {sols}$"
    if kind == "scaled":
        ratio = result.ratio if isinstance(result.ratio, str) else sp.latex(sp.sympify(result.ratio))
        return rf"$\text{{{result.verdict}}}:\ \text{{ratio }} {ratio}$"
    raise TypeError(f"not a checker result: {type(result).__name__}")


def html(result: Any) -> str:
    """A result as HTML: the explanation in a preformatted block (the per-term table included)."""
    return f"<pre>{_html.escape(explain(result))}</pre>"


# ====================================================================================== batch (check --file)

BATCH_COLUMNS = ["#", "id", "student", "kind", "check", "answer", "verdict", "convention", "explanation"]
_CELL = 300   #: longest cell shown in a table (answers are echoed)


def _clip(text: Any, width: int = _CELL) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def batch_table(batch: Any, fmt: str = "md") -> str:
    """The rows of :func:`analysis.checker.batch.check_many` as md, csv, json or text, then the
    conventions per student (md and text) when answers are grouped by student."""
    rows = [_batch_row(e) for e in batch.entries]
    cols = [c for c in BATCH_COLUMNS if c != "student" or any(r["student"] for r in rows)]
    if fmt == "json":
        return json.dumps(batch.to_dict(), indent=2)
    if fmt == "csv":
        from .formatting import csv_text
        return csv_text(rows, cols)
    if fmt == "text":
        from .formatting import text_table
        body = text_table(rows, cols, max_width=120)
        extra = consistency_text(batch)
        return body + ("\n\n" + extra if extra else "")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_md(r[c]) for c in cols) + " |")
    extra = consistency_text(batch, markdown=True)
    return "\n".join(lines) + ("\n\n" + extra if extra else "")


def _batch_row(e: Any) -> dict[str, Any]:
    return {"#": e.index, "id": e.id, "student": e.student, "kind": e.kind, "check": _clip(e.what, 80),
            "answer": _clip(e.answer, 120), "verdict": e.verdict, "convention": e.convention,
            "explanation": _clip(e.explanation)}


def consistency_text(batch: Any, markdown: bool = False) -> str:
    """One line per student with several answers: the conventions, and a flag for mixed conventions."""
    lines = []
    for s in batch.students:
        if len(s.answers) < 2:
            continue
        per = ", ".join(f"{a.question or a.quantity}: {a.convention or ('wrong' if not a.right_somewhere else '-')}"
                        for a in s.answers)
        if s.mixed:
            flag = (f"MIXED conventions ({per}); no single convention makes all {s.right_somewhere} right; "
                    f"{s.best} makes {s.best_count} of {len(s.answers)} right")
        elif s.best:
            flag = f"consistent: {s.best} makes {s.best_count} of {len(s.answers)} right ({per})"
        else:
            flag = f"no answer right under any convention ({per})"
        lines.append(f"- **{s.student}**: {flag}" if markdown else f"{s.student}: {flag}")
    if not lines:
        return ""
    return ("**Conventions per student**\n\n" if markdown else "conventions per student:\n") + "\n".join(lines)


__all__ = ["batch_table", "consistency_text", "explain", "html", "latex", "markdown", "term_table"]
