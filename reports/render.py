"""Rendering machinery of the report: Jinja environments, escaping, tables, atomic writes, Typst -> PDF.

Templates live in the ``templates`` package (``templates/*.j2``, ``templates/_macros.typ``).
There is no autoescaping: user text (model names, paths, messages) must go through
an explicit filter, ``md_escape``/``typ_escape`` (or ``esc``, the one for the
environment's kind).  Filters, available in both kinds of environment:

``md_escape``, ``typ_escape``, ``esc``
    literal user text in Markdown / Typst markup (newlines become spaces);
``typ_str``
    a Typst string literal, for code positions: ``#set document(title: {{ t|typ_str }})``;
``tmath``, ``tdisplay``
    sympy -> inline ``$...$`` / display ``$ ... $`` Typst math, laid out by :mod:`reports.formulas`
    (common factors, layer-flow order; ``flow=`` the per-layer expressions);
``lmath``, ``ldisplay``
    sympy -> inline ``$...$`` LaTeX / a display ``$$ ... $$`` block (Markdown: GitHub and pandoc
    both render it), laid out the same way;
``ftext``
    sympy -> the same layout as Unicode text (``k²(NIC·NF + 4NF²)``);
``md_table(df, columns=None)``, ``typ_table(df, columns=None, ...)``
    a DataFrame as a GitHub table / a Typst ``#table``; cells are escaped, sympy cells become math;
``num(value, digits=None)``
    a number with thousands separators (``1,234,567``).

A sympy object printed without a filter (``{{ expr }}``) becomes inline math of the
environment's kind rather than Python syntax.  Typst templates go through Jinja, so
they must not contain ``{{``, ``{%`` or ``{#`` other than as Jinja syntax.
"""
from __future__ import annotations

import math
import numbers
import os
import re
import traceback
import warnings
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import jinja2
import sympy as sp

from analysis.errors import ArchcountError
from analysis.files import write_atomic  # re-exported as reports.render.write_atomic

from . import formulas
from .typst_math import typst_string

__all__ = [
    "FIXED_TIMESTAMP", "TEMPLATE_DIR", "make_env", "render_template", "render_markdown", "render_pdf",
    "compile_typst", "write_atomic", "md_escape", "typ_escape", "typ_str", "md_table", "typ_table", "num",
    "lmath", "ldisplay", "ftext", "typst_inline", "typst_display",
]

#: The creation date written into every PDF (and Typst's ``datetime.today()``): reproducible output.
FIXED_TIMESTAMP = datetime(2000, 1, 1, tzinfo=timezone.utc)

#: What a missing value (None, NaN) looks like in a table.
MISSING = "—"


def _template_dir() -> Path:
    """The ``templates`` package directory (also when an editable install maps it as a namespace)."""
    import templates

    if getattr(templates, "__file__", None):
        return Path(templates.__file__).resolve().parent
    for entry in getattr(templates, "__path__", []):  # namespace package: the first real directory
        if Path(entry).is_dir():
            return Path(entry).resolve()
    return Path(str(resources.files("templates")))  # pragma: no cover


#: The directory of the installed ``templates`` package.
TEMPLATE_DIR = _template_dir()


# ---------------------------------------------------------------------- escaping

_MD_SPECIAL = set("\\`*_[]<>#|$~&")
_MD_LINE_START = re.compile(r"^(\s*)([-+=>]|\d+(?=[.)]))")


def _one_line(text: Any) -> str:
    return re.sub(r"[\r\n]+", " ", str(text))


def md_escape(text: Any) -> str:
    """User text shown literally in Markdown, inline or in a table cell.

    Backslash-escapes the characters Markdown (GitHub flavour) reads as markup,
    ``|`` included (tables), and a list/heading marker at the start.

    >>> md_escape("unet_[v2] | *a* <b> #1 $x$")
    'unet\\\\_\\\\[v2\\\\] \\\\| \\\\*a\\\\* \\\\<b\\\\> \\\\#1 \\\\$x\\\\$'
    """
    text = _one_line(text)
    out = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)
    m = _MD_LINE_START.match(out)
    if m:  # "- x", "+ x", "1. x", "=== " at the start would be a list / heading
        if m.group(2).isdigit():
            end = m.end()
            out = out[:end] + "\\" + out[end:]
        else:
            out = out[:m.start(2)] + "\\" + out[m.start(2):]
    return out


_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def typ_escape(text: Any, *, breakable: bool = False) -> str:
    """User text shown literally in Typst markup.

    Every ASCII punctuation character is backslash-escaped (Typst accepts that for all
    of them), so no markup, code (``#``), math (``$``), label (``<``), reference (``@``),
    comment (``//``), smart quote or shorthand (``--``, ``...``, ``~``) can start.
    ``breakable=True`` lets long words (paths) wrap after ``/ _ . -``.

    >>> typ_escape('#read("x") a_b')
    '\\\\#read\\\\(\\\\"x\\\\"\\\\) a\\\\_b'
    """
    text = _one_line(text)
    out: list[str] = []
    for ch in text:
        out.append("\\" + ch if ch in _PUNCT else ch)
        if breakable and ch in "/_.-":
            out.append("\u200b")
    return "".join(out)


def typ_str(text: Any) -> str:
    """A Typst string literal (with quotes), for code positions such as ``title:``."""
    return typst_string(str(text))


# ---------------------------------------------------------------------- numbers and math

def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd
        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover
        return False


def num(value: Any, digits: int | None = None) -> str:
    """A number with thousands separators: ``1234567`` -> ``1,234,567``; ``digits`` for floats.

    >>> num(1234567), num(12345.678, 1), num(None)
    ('1,234,567', '12,345.7', '—')
    """
    if _is_missing(value):
        return MISSING
    if isinstance(value, bool):
        raise ArchcountError(f"num: expected a number, got {value!r}", argument="value")
    if isinstance(value, sp.Basic):
        if not value.is_number:
            raise ArchcountError(f"num: expected a number, got the expression {value}", argument="value")
        value = int(value) if value.is_Integer else float(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:,.{digits}f}" if digits is not None else f"{value:,}"
    raise ArchcountError(f"num: expected a number, got {type(value).__name__} {value!r}", argument="value")


def lmath(expr: Any, flow: Sequence[Any] | None = None) -> str:
    r"""Inline Markdown math: ``$...$`` around the LaTeX of :func:`reports.formulas.latex`.

    >>> from analysis.symbols import NF, k
    >>> print(lmath(4 * NF**2 * k**2 + NF * k**2))
    $k^{2}\left(4\mathrm{NF}^{2} + \mathrm{NF}\right)$
    """
    return f"${formulas.latex(expr, flow=flow)}$"


def ldisplay(expr: Any, flow: Sequence[Any] | None = None, label: str | None = None) -> str:
    r"""Display Markdown math: a ``$$ ... $$`` block on its own lines (GitHub and pandoc render it).

    ``label`` (plain text, e.g. ``weights``) is set upright in front: ``\mathrm{weights} = ...``.
    """
    body = formulas.display_latex(expr, flow=flow)
    if label:
        body = r"\text{" + _latex_text(label) + "} = " + body
    return f"$$\n{body}\n$$"


def _latex_text(text: str) -> str:
    return "".join("\\" + c if c in "#$%&_{}" else c for c in _one_line(text))


def typst_inline(expr: Any, flow: Sequence[Any] | None = None) -> str:
    """Inline Typst math ``$...$`` of :func:`reports.formulas.typst` (slash fractions)."""
    return f"${formulas.typst(expr, flow=flow)}$"


def typst_display(expr: Any, flow: Sequence[Any] | None = None) -> str:
    """Display Typst math ``$ ... $`` with built-up fractions (odd/even k as ``cases``)."""
    return f"$ {formulas.display_typst(expr, flow=flow)} $"


def ftext(expr: Any, flow: Sequence[Any] | None = None) -> str:
    """The formula as Unicode text (CLI, plain contexts)."""
    return formulas.text(expr, flow=flow)


# ---------------------------------------------------------------------- tables

def _select(df: Any, columns: Sequence[Any] | None) -> Any:
    if columns is None:
        return df
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ArchcountError(f"table: unknown column(s) {missing}; have {list(df.columns)}", argument="columns")
    return df[list(columns)]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy.bool_ too


def _is_numeric_cell(value: Any) -> bool:
    if _is_bool(value):
        return False
    if isinstance(value, sp.Basic):
        return bool(value.is_number)
    return isinstance(value, numbers.Real)


def _integral_floats(column: Any) -> bool:
    """A float column holding whole numbers only (pandas turns ints + None into floats)."""
    values = [v for v in column if not _is_missing(v)]
    return bool(values) and all(isinstance(v, float) and v.is_integer() for v in values)


def _cell_text(value: Any, kind: str, floatfmt: str, as_int: bool = False) -> str:
    if _is_missing(value):
        return MISSING
    if isinstance(value, formulas.Formula):  # already laid out (e.g. with numbers substituted)
        return ("$" + value.latex().replace("|", "\\|") + "$") if kind == "md" else "$" + value.typst() + "$"
    if _is_bool(value):
        return "yes" if value else "no"
    if isinstance(value, sp.Basic):
        if value.is_Integer:
            return num(value)
        if value.is_Float:
            return format(float(value), floatfmt)
        if kind == "md":  # a | inside the LaTeX (\left|x\right|) would end the cell
            return lmath(value).replace("|", "\\|")
        return typst_inline(value)
    if isinstance(value, numbers.Integral):
        return num(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isinf(value):
            return num(value)
        return num(int(value)) if as_int else format(value, floatfmt)
    if kind == "md":
        return md_escape(value)
    return typ_escape(value, breakable=len(str(value)) > 24)


def md_table(df: Any, columns: Sequence[Any] | None = None, *, index: bool = False,
             floatfmt: str = ",.4g") -> str:
    """A pandas DataFrame as a GitHub-flavoured Markdown table.

    Text cells are escaped (``|`` included), sympy cells become ``$LaTeX$``, integers get
    thousands separators (so do whole-number float columns, which is what pandas makes of
    ints with a None), floats ``floatfmt``, None/NaN ``—``; numeric columns align right.
    """
    df = _select(df, columns)
    if index:
        df = df.reset_index()
    headers = [md_escape(c) for c in df.columns]
    as_int = [_integral_floats(df.iloc[:, j]) for j in range(len(df.columns))]
    rows = [[_cell_text(v, "md", floatfmt, as_int[j]) for j, v in enumerate(row)]
            for row in df.itertuples(index=False, name=None)]
    numeric = [all(_is_numeric_cell(v) or _is_missing(v) for v in df.iloc[:, j]) and len(df) > 0
               for j in range(len(df.columns))]
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def typ_table(df: Any, columns: Sequence[Any] | None = None, *, index: bool = False,
              widths: Sequence[str] | None = None, floatfmt: str = ",.4g", caption: str | None = None,
              header: bool = True) -> str:
    """A pandas DataFrame as Typst markup: ``#table(...)`` (``#figure(table(...))`` with a caption).

    ``columns`` picks and orders DataFrame columns; ``widths`` are Typst column sizes
    (default ``auto`` each: they shrink and wrap to fit the page).  Cells: text escaped
    (long words may break after ``/ _ . -``), sympy expressions as math, integers with
    thousands separators, floats ``floatfmt``.  The header row repeats on each page.
    """
    df = _select(df, columns)
    if index:
        df = df.reset_index()
    ncol = len(df.columns)
    if ncol == 0:
        raise ArchcountError("typ_table: the table has no columns", argument="df")
    if widths is None:  # a wide table: the row names at their width, the rest share the line
        widths = ["auto"] * ncol if ncol < 10 else ["auto"] + ["1fr"] * (ncol - 1)
    if len(widths) != ncol:
        raise ArchcountError(f"typ_table: {len(widths)} widths for {ncol} columns", argument="widths")
    for w in widths:
        if not re.fullmatch(r"auto|\d+(\.\d+)?(fr|pt|mm|cm|em|%)", str(w)):
            raise ArchcountError(f"typ_table: bad column width {w!r} (auto, 1fr, 3cm, 20%...)",
                                 argument="widths")
    numeric = [all(_is_numeric_cell(v) or _is_missing(v) for v in df.iloc[:, j]) and len(df) > 0
               for j in range(ncol)]
    parts = [f"  columns: ({', '.join(map(str, widths))},),",
             f"  align: ({', '.join('right' if n else 'left' for n in numeric)},),"]
    if header:
        parts.append("  table.header(" + ", ".join(f"[{typ_escape(c)}]" for c in df.columns) + "),")
    as_int = [_integral_floats(df.iloc[:, j]) for j in range(ncol)]
    for row in df.itertuples(index=False, name=None):
        cells = [_cell_text(v, "typ", floatfmt, as_int[j]) for j, v in enumerate(row)]
        if ncol >= 10 and not numeric[0]:  # a wide table's row names (models, layers) stay whole
            cells[0] = f"#text(hyphenate: false)[{cells[0]}]"
        parts.append("  " + ", ".join(f"[{c}]" for c in cells) + ",")
    body = "table(\n" + "\n".join(parts) + "\n)"
    if ncol >= 10:  # a wide table: a smaller font (a show rule inside overrides the document's)
        body = "[#show table: set text(size: 6.5pt)\n#" + body + "]"
    if caption is not None:
        return f"#figure(\n{body},\n  caption: [{typ_escape(caption)}],\n  kind: table,\n)"
    return "#" + body


# ---------------------------------------------------------------------- environments

Kind = Literal["md", "typ"]


def _finalize(kind: str):
    def finalize(value: Any) -> Any:
        if isinstance(value, formulas.Formula):
            return f"${value.latex()}$" if kind == "md" else f"${value.typst()}$"
        if isinstance(value, sp.Basic):
            return lmath(value) if kind == "md" else typst_inline(value)
        return value
    return finalize


def make_env(kind: Kind, *, template_dirs: Iterable[str | os.PathLike] = ()) -> jinja2.Environment:
    """A Jinja environment for ``"md"`` or ``"typ"`` templates.

    ``StrictUndefined`` (a missing variable is an error), no autoescaping (use the
    escape filters), templates from ``template_dirs`` first, then the ``templates`` package.
    """
    if kind not in ("md", "typ"):
        raise ArchcountError(f"unknown template kind {kind!r}; valid: md, typ", argument="kind")
    search = [str(Path(d)) for d in template_dirs] + [str(TEMPLATE_DIR)]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize(kind),
    )
    env.filters.update(
        md_escape=md_escape,
        typ_escape=typ_escape,
        esc=md_escape if kind == "md" else typ_escape,
        typ_str=typ_str,
        tmath=typst_inline,
        tdisplay=typst_display,
        lmath=lmath,
        ldisplay=ldisplay,
        ftext=ftext,
        md_table=md_table,
        typ_table=typ_table,
        num=num,
    )
    env.globals["kind"] = kind
    return env


def _template_line(exc: BaseException, template_name: str) -> tuple[str, int] | None:
    """The (template file, line) where a rendering error happened, from Jinja's rewritten traceback."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        fname = frame.filename or ""
        if fname.endswith((".j2", ".typ", ".md")) or fname == "<template>":
            found = (Path(fname).name if fname != "<template>" else template_name, frame.lineno or 0)
    return found


def render_template(kind: Kind, template_name: str, context: Mapping[str, Any], *,
                    template_dirs: Iterable[str | os.PathLike] = ()) -> str:
    """Render one template to a string; every template problem is an :class:`ArchcountError`."""
    env = make_env(kind, template_dirs=template_dirs)
    try:
        template = env.get_template(template_name)
    except jinja2.TemplateNotFound as exc:
        searched = getattr(env.loader, "searchpath", [])
        raise ArchcountError(f"template {exc.name!r} not found (searched {searched})", argument="template") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ArchcountError(f"template {exc.name or template_name} line {exc.lineno}: syntax error: {exc.message}",
                             argument="template") from None
    try:
        return template.render(**dict(context))
    except jinja2.TemplateSyntaxError as exc:  # in an included template
        raise ArchcountError(f"template {exc.name or template_name} line {exc.lineno}: syntax error: {exc.message}",
                             argument="template") from None
    except jinja2.TemplateNotFound as exc:
        raise ArchcountError(f"template {template_name}: included template {exc.name!r} not found",
                             argument="template") from None
    except (jinja2.UndefinedError, ArchcountError) as exc:
        where = _template_line(exc, template_name)
        loc = f"template {where[0]} line {where[1]}" if where else f"template {template_name}"
        what = f"undefined variable: {exc}" if isinstance(exc, jinja2.UndefinedError) else str(exc)
        raise ArchcountError(f"{loc}: {what}", argument="template") from exc


# ---------------------------------------------------------------------- files



def render_markdown(template_name: str, context: Mapping[str, Any], out_path: str | os.PathLike, *,
                    template_dirs: Iterable[str | os.PathLike] = ()) -> Path:
    """Render a Markdown template and write it atomically; returns the path."""
    text = render_template("md", template_name, context, template_dirs=template_dirs)
    return write_atomic(out_path, text)


# ---------------------------------------------------------------------- Typst

def _typst_failure(exc: Exception, source: str) -> ArchcountError:
    message = getattr(exc, "message", None) or str(exc)
    diagnostic = getattr(exc, "diagnostic", "") or ""
    hints = list(getattr(exc, "hints", None) or [])
    reason = f"Typst compilation failed: {message}"
    m = re.search(r"__typst_py_bytes__\.typ:(\d+):(\d+)", diagnostic)
    if m:
        line_no = int(m.group(1))
        lines = source.splitlines()
        line = lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""
        reason += f" (generated source line {line_no}, column {m.group(2)}: {line[:200]!r})"
    elif diagnostic.strip():
        reason += "\n" + diagnostic.strip()
    if hints:
        reason += "; hint: " + "; ".join(hints)
    return ArchcountError(reason)


def compile_typst(source: str, out_pdf: str | os.PathLike, *, root: str | os.PathLike,
                  timestamp: datetime = FIXED_TIMESTAMP) -> Path:
    """Compile Typst ``source`` to ``out_pdf`` (atomically) and return the path.

    Only the fonts embedded in Typst are used (system fonts are ignored), so output
    does not depend on the machine; ``timestamp`` (fixed by default) is the PDF's
    creation date and ``datetime.today()``, so the same source gives the same bytes.
    Files the source reads (``image("diagram.png")``) resolve against ``root``, and
    nothing outside ``root`` can be read.  On failure an :class:`ArchcountError` with
    Typst's message and the offending line is raised and ``out_pdf`` is not touched.
    Typst warnings are re-issued as Python ``UserWarning``\\ s.
    """
    import typst

    root = Path(root)
    if not root.is_dir():
        raise ArchcountError(f"Typst root {root} is not a directory", argument="root")
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    try:
        pdf, typst_warnings = typst.compile_with_warnings(
            source.encode("utf-8"), output=None, root=str(root), font_paths=[], ignore_system_fonts=True,
            format="pdf", timestamp=timestamp)
    except typst.TypstError as exc:
        raise _typst_failure(exc, source) from None
    except RuntimeError as exc:  # other failures of the compiler binding
        raise ArchcountError(f"Typst compilation failed: {exc}") from None
    for w in typst_warnings:
        warnings.warn(f"typst: {getattr(w, 'message', w)}", UserWarning, stacklevel=2)
    if isinstance(pdf, list):  # pragma: no cover - only for multi-page image formats
        raise ArchcountError("Typst returned several outputs for a PDF")
    return write_atomic(out_pdf, pdf)


def render_pdf(template_name: str, context: Mapping[str, Any], out_pdf: str | os.PathLike, *,
               root: str | os.PathLike, template_dirs: Iterable[str | os.PathLike] = (),
               keep_source: bool = False, timestamp: datetime = FIXED_TIMESTAMP) -> Path:
    """Render a Typst template and compile it to ``out_pdf``.

    ``keep_source=True`` also writes the generated Typst next to the PDF (``.typ``),
    even when compilation fails, which helps to find the offending line.
    """
    source = render_template("typ", template_name, context, template_dirs=template_dirs)
    if keep_source:
        write_atomic(Path(out_pdf).with_suffix(".typ"), source)
    return compile_typst(source, out_pdf, root=root, timestamp=timestamp)
