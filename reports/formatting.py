"""Plain-text, CSV, LaTeX and JSON formatting of archcount results (formatting lives here, not on results)."""
from __future__ import annotations

import csv
import io
import json
import warnings
from typing import Any, Iterable, Mapping, Sequence

import sympy as sp


def fmt_value(v: Any) -> str:
    """A value for a text table: ints with thousands separators, formulas as sympy strings."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int) or (isinstance(v, sp.Basic) and v.is_Integer):
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, sp.Basic):
        return sp.sstr(v)
    return str(v)


def fmt_shape(shape: Sequence[Any], batch: bool = True, fmt: Any = None) -> str:
    """``[BS, NF, ⌊H/4⌋, ⌊W/4⌋]``: symbolic sizes laid out by :mod:`reports.formulas` (or by ``fmt``);
    without a batch axis ``[NF]``, and ``-`` for no shape at all (a parameter's input)."""
    if not batch and not shape:
        return "-"
    inner = ", ".join(fmt(s) if fmt else fmt_formula(s) if isinstance(s, sp.Basic) else str(s) for s in shape)
    return f"[BS, {inner}]" if batch else f"[{inner}]"


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               max_width: int = 60) -> str:
    """A fixed-width text table; long cells are wrapped at ``max_width``."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_clip(fmt_value(r.get(c)), max_width) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: (sp.sstr(v) if isinstance(v, sp.Basic) else v) for c, v in r.items()})
    return buf.getvalue()


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=lambda v: sp.sstr(v) if isinstance(v, sp.Basic) else str(v))


# --------------------------------------------------------------------------- count tables

def count_rows(table: Any, *, all_rows: bool = False) -> list[dict[str, Any]]:
    rows = table.rows if all_rows else table.counted_rows()
    return [{"layer": r.path, "type": r.type, "input": fmt_shape(r.in_shape if r.batched else (), r.batched),
             "output": fmt_shape(r.out_shape, r.batched),
             "weights": r.weights, "outputs": r.outputs, "connections": r.connections} for r in rows]


def fmt_formula(v: Any, flow: Sequence[Any] | None = None) -> str:
    """A value for reading: formulas laid out as a person writes them (:mod:`reports.formulas`).

    >>> from analysis.symbols import NF, NIC, k
    >>> fmt_formula(NF * NIC * k**2 + 4 * NF**2 * k**2), fmt_formula(1234)
    ('k²(NIC·NF + 4NF²)', '1,234')
    """
    if isinstance(v, sp.Basic) and not v.is_number:
        from . import formulas
        return formulas.text(v, flow=flow)
    return fmt_value(v)


def count_text(table: Any, *, all_rows: bool = False, wide: bool = False) -> str:
    """The text rendering of a CountTable used by ``archcount count`` (formulas as a person writes them)."""
    hp = ", ".join(f"{k}={fmt_value(v)}" for k, v in table.hparams.items())
    head = [f"model: {table.model}   convention: {table.convention.label}",
            f"  ({table.convention.describe()})",
            f"hyperparameters: {hp or '-'}   input: {fmt_shape(table.input_shape)}"]
    rows = [{c: (fmt_formula(v) if c in ("weights", "outputs", "connections") else v) for c, v in r.items()}
            for r in count_rows(table, all_rows=all_rows)]
    body = text_table(rows, max_width=200 if wide else 60)
    counted = table.counted_rows()
    mark = " (PARTIAL)" if table.partial else ""
    with warnings.catch_warnings():  # a partial table's totals carry their own PARTIAL mark
        warnings.simplefilter("ignore")
        totals = [f"total {q}{mark}: {fmt_formula(v, [getattr(r, q) for r in counted])}"
                  for q, v in table.totals().items()]
    products = table.activation_products
    if products and not table.convention.products:
        totals.append(f"activation x activation products (not in the connections; counted under all-layers): "
                      f"{fmt_formula(products)}")
    tail = []
    if table.active_assumptions:
        tail.append("assumptions: " + "; ".join(table.active_assumptions))
    if table.unsupported:
        tail.append(f"PARTIAL: {len(table.unsupported)} unsupported operation(s), not counted:")
        tail.extend(f"  {u.path} ({u.type}): {u.reason}" + (f" [{u.source}]" if u.source else "")
                    for u in table.unsupported)
    return "\n".join(head + ["", body, ""] + totals + tail)


def count_latex(table: Any) -> str:
    """A LaTeX tabular of a CountTable (per-layer rows and totals)."""
    lines = [r"\begin{tabular}{llll}", r"\hline", r"layer & weights & outputs & connections \\", r"\hline"]
    for r in table.counted_rows():
        cells = [r.path.replace("_", r"\_")] + [f"${sp.latex(sp.sympify(getattr(r, q)))}$"
                                                for q in ("weights", "outputs", "connections")]
        lines.append(" & ".join(cells) + r" \\")
    lines.append(r"\hline")
    totals = table.totals()
    lines.append("total & " + " & ".join(f"${sp.latex(sp.sympify(totals[q]))}$"
                                         for q in ("weights", "outputs", "connections")) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


def count_csv(table: Any, *, all_rows: bool = False) -> str:
    return csv_text(count_rows(table, all_rows=all_rows))


def records(items: Iterable[Any]) -> list[dict[str, Any]]:
    return [i.to_dict() if hasattr(i, "to_dict") else dict(i) for i in items]
