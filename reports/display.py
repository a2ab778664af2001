"""Notebook display of archcount results: count tables and receptive fields as rendered tables.

``CountTable`` and ``ReceptiveField`` have ``_repr_markdown_``, ``_repr_latex_`` and
``_repr_html_`` methods that call these functions, so that Jupyter and Colab show a table
with typeset formulas instead of a repr string.  The formulas are laid out by
:mod:`reports.formulas` (HTML: Unicode text, readable without MathJax; Markdown: ``$...$``
LaTeX; LaTeX: a ``tabular``).

>>> from analysis import count
>>> md = count("pool_upsample").simplified()._repr_markdown_()
>>> print(md.splitlines()[0])
**pool\\_upsample**, convention *weighted*, input [BS, NIC, H, W]
>>> "k^{2}\\\\left(" in md
True
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import sympy as sp

from . import formulas
from .formatting import fmt_shape
from .render import md_escape

__all__ = ["count_markdown", "count_html", "count_latex", "receptive_markdown", "receptive_html",
           "receptive_latex"]

QUANTITIES = ("weights", "outputs", "connections")


def _md_math(v: Any, flow: Sequence[Any] | None = None) -> str:
    if isinstance(v, sp.Basic) and not v.is_number:
        return "$" + formulas.latex(v, flow=flow).replace("|", r"\|") + "$"
    return _num(v)


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, sp.Basic) and v.is_Integer:
        v = int(v)
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else md_escape(v)


def _text(v: Any, flow: Sequence[Any] | None = None) -> str:
    if isinstance(v, sp.Basic) and not v.is_number:
        return formulas.text(v, flow=flow)
    if isinstance(v, sp.Basic) and v.is_Integer:
        v = int(v)
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _tex(v: Any, flow: Sequence[Any] | None = None) -> str:
    if isinstance(v, sp.Basic) and not v.is_number:
        return "$" + formulas.latex(v, flow=flow) + "$"
    if isinstance(v, sp.Basic) and v.is_Integer:
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}".replace(",", "{,}")
    return "".join("\\" + c if c in "#$%&_{}" else c for c in str(v))


def _count_head(table: Any) -> str:
    hp = ", ".join(f"{k}={v}" for k, v in table.hparams.items() if not isinstance(v, sp.Symbol))
    return (f"**{md_escape(table.model)}**, convention *{md_escape(table.convention.label)}*"
            f"{', ' + md_escape(hp) if hp else ''}, input {fmt_shape(table.input_shape, fmt=formulas.text)}")


def _notes(table: Any) -> list[str]:
    out = [f"assumption: {a}" for a in table.active_assumptions]
    if table.unsupported:
        out.append(f"PARTIAL: {len(table.unsupported)} unsupported layer(s) not counted: "
                   + "; ".join(f"{u.path} ({u.type}): {u.reason}" for u in table.unsupported))
    return out


def count_markdown(table: Any) -> str:
    """A ``CountTable`` as Markdown: a head line, the per-layer table with a total row, notes."""
    rows = table.counted_rows()
    lines = [_count_head(table), "",
             "| layer | type | output shape | weights | outputs | connections |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {md_escape(r.path)} | {md_escape(r.type)} | {md_escape(fmt_shape(r.out_shape, r.batched, formulas.text))} | "
                     + " | ".join(_md_math(getattr(r, q)) for q in QUANTITIES) + " |")
    lines.append("| **total** | | | " + " | ".join(
        _md_math(table.total(q), [getattr(r, q) for r in rows]) for q in QUANTITIES) + " |")
    notes = _notes(table)
    if notes:
        lines += [""] + [f"- {md_escape(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def count_html(table: Any) -> str:
    """A ``CountTable`` as an HTML table (formulas as Unicode text: no MathJax needed)."""
    e = html.escape
    rows = table.counted_rows()
    hp = ", ".join(f"{k}={v}" for k, v in table.hparams.items() if not isinstance(v, sp.Symbol))
    out = [f"<p><b>{e(str(table.model))}</b>, convention <i>{e(table.convention.label)}</i>"
           f"{', ' + e(hp) if hp else ''}, input {e(fmt_shape(table.input_shape, fmt=formulas.text))}</p>",
           "<table>", "<thead><tr><th>layer</th><th>type</th><th>output shape</th><th>weights</th>"
           "<th>outputs</th><th>connections</th></tr></thead>", "<tbody>"]
    for r in rows:
        cells = [r.path, r.type, fmt_shape(r.out_shape, r.batched, formulas.text)] + [_text(getattr(r, q)) for q in QUANTITIES]
        out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    totals = [_text(table.total(q), [getattr(r, q) for r in rows]) for q in QUANTITIES]
    out.append("<tr><td><b>total</b></td><td></td><td></td>" + "".join(f"<td><b>{e(t)}</b></td>" for t in totals)
               + "</tr>")
    out += ["</tbody>", "</table>"]
    out += [f"<p><small>{e(n)}</small></p>" for n in _notes(table)]
    return "\n".join(out)


def count_latex(table: Any) -> str:
    """A ``CountTable`` as a LaTeX ``tabular`` (for nbconvert to PDF)."""
    rows = table.counted_rows()
    lines = [r"\begin{tabular}{llrrr}", r"\hline", r"layer & type & weights & outputs & connections \\", r"\hline"]
    for r in rows:
        lines.append(" & ".join([_tex(r.path), _tex(r.type)] + [_tex(getattr(r, q)) for q in QUANTITIES]) + r" \\")
    lines.append(r"\hline")
    lines.append(r"\textbf{total} & & " + " & ".join(_tex(table.total(q), [getattr(r, q) for r in rows])
                                                    for q in QUANTITIES) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------- receptive fields

def _first(t: Any) -> Any:
    return None if t is None else t[0]


def _rf_rows(rf: Any) -> list[tuple[str, str, Any, Any, str]]:
    return [(r.path, r.type_name, _first(r.size), _first(r.jump), "yes" if r.varies else "no")
            for r in rf.layers if r.op != "identity"]


def _rf_head(rf: Any) -> str:
    size = _first(rf.size)
    where = " (largest; it varies with the output position)" if rf.varies else ""
    return f"{rf.model}: output receptive field {formulas.text(size) if size is not None else '—'} pixels per axis{where}"


def receptive_markdown(rf: Any) -> str:
    """A ``ReceptiveField`` as Markdown: the output's field, then one row per layer."""
    lines = [f"**{md_escape(_rf_head(rf))}**", "", "| layer | type | receptive field | jump | varies with position |",
             "| --- | --- | ---: | ---: | --- |"]
    for path, typ, size, jump, varies in _rf_rows(rf):
        lines.append(f"| {md_escape(path)} | {md_escape(typ)} | {_md_math(size)} | {_md_math(jump)} | {varies} |")
    lines += [""] + [f"- {md_escape(a)}" for a in rf.assumptions] if rf.assumptions else []
    return "\n".join(lines) + "\n"


def receptive_html(rf: Any) -> str:
    """A ``ReceptiveField`` as an HTML table."""
    e = html.escape
    out = [f"<p><b>{e(_rf_head(rf))}</b></p>", "<table>",
           "<thead><tr><th>layer</th><th>type</th><th>receptive field</th><th>jump</th>"
           "<th>varies with position</th></tr></thead>", "<tbody>"]
    for path, typ, size, jump, varies in _rf_rows(rf):
        out.append("<tr>" + "".join(f"<td>{e(_text(c))}</td>" for c in (path, typ, size, jump, varies)) + "</tr>")
    out += ["</tbody>", "</table>"] + [f"<p><small>{e(a)}</small></p>" for a in rf.assumptions]
    return "\n".join(out)


def receptive_latex(rf: Any) -> str:
    """A ``ReceptiveField`` as a LaTeX ``tabular``."""
    lines = [r"\begin{tabular}{llrrl}", r"\hline", r"layer & type & receptive field & jump & varies \\", r"\hline"]
    for row in _rf_rows(rf):
        lines.append(" & ".join(_tex(c) for c in row) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)
