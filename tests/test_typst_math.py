"""The sympy -> Typst math printer: exact strings, and every formula shape archcount emits compiles."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import sympy as sp
from pypdf import PdfReader

from analysis.errors import ArchcountError
from analysis.symbols import NC, NF, NIC, H, W, k, positive_int_symbol
from reports.render import compile_typst, make_env
from reports.typst_math import latex_math, typst_display, typst_inline, typst_math

N = positive_int_symbol("N")
x = sp.Symbol("x")


# ---------------------------------------------------------------------- exact strings

@pytest.mark.parametrize("expr, expected", [
    (NIC * NF, 'upright(N F) dot upright(N I C)'),
    (k**2 * NIC * NF, 'upright(N F) dot upright(N I C) dot k^2'),
    (k**2 * NIC * NF + NF, 'upright(N F) dot upright(N I C) dot k^2 + upright(N F)'),
    (2 * H * W, "2 H W"),
    (k * (H + 1), "k (H + 1)"),
    (NF * (H + 1), 'upright(N F) dot (H + 1)'),
    (sp.floor(H / 2), "floor(H/2)"),
    (sp.floor((H - 1) / 2) + 1, "floor((H - 1)/2) + 1"),
    (sp.ceiling((H - k + 1) / 2), "ceil((H - k + 1)/2)"),
    (sp.floor(sp.floor(H / 2) / 2), "floor((floor(H/2))/2)"),
    (NF * sp.floor(H / 2) * sp.floor(W / 2), 'upright(N F) dot floor(H/2) dot floor(W/2)'),
    (sp.Mod(H + 1, 2), "(H + 1) mod 2"),
    (2 * sp.Mod(H, 2), "2 (H mod 2)"),
    (sp.Max(0, H - k), "max(0, H - k)"),
    (sp.Min(H, W), "min(H, W)"),
    (sp.Rational(3, 4), "3/4"),
    (sp.Rational(3, 4) * k, "(3 k)/4"),
    (-sp.Rational(3, 4) * NF, '-(3 upright(N F))/4'),
    (NC / 2, 'upright(N C)/2'),
    (-H * W + k, "-H W + k"),
    (NF**2, 'upright(N F)^2'),
    (H**(k + 1), "H^(k + 1)"),
    ((H + 1)**2, "(H + 1)^2"),
    (1 / H, "1/H"),
    (sp.sqrt(H), "sqrt(H)"),
    (sp.Symbol("N_IC"), "N_(upright(I C))"),
    (sp.Symbol("N_{IC}") * k, "N_(upright(I C)) k"),
    (sp.Symbol("conv-out") * k, '"conv-out" dot k'),
    (sp.Symbol("alpha") * k, "alpha k"),
    (sp.Eq(sp.Symbol("weights"), k**2 * NIC * NF), "upright(w e i g h t s) = upright(N F) dot upright(N I C) dot k^2"),
    (sp.Piecewise((H / 2, sp.Eq(sp.Mod(H, 2), 0)), ((H + 1) / 2, True)),
     'cases(H/2 & "if" H mod 2 = 0, H/2 + 1/2 & "otherwise")'),
    (sp.Integer(123456789012345678901234567890), "123456789012345678901234567890"),
    (sp.Float(1.5e-5) * H, "1.5 dot 10^(-5) H"),
    (sp.Function("f")(H, W), "f(H, W)"),
])
def test_exact_strings(expr, expected):
    assert typst_math(expr) == expected


def test_multi_letter_symbols_are_never_bare():
    out = typst_math(NIC * NF)
    assert "NIC" not in out and "NF" not in out  # Typst would read them as variables


def test_inline_uses_slash_fractions_display_stacks():
    nested = NF * sp.floor(sp.floor(H / 2) / 2)
    assert typst_inline(nested) == "$upright(N F) dot floor(floor(H slash 2) slash 2)$"
    assert typst_display(nested) == "$ upright(N F) dot floor((floor(H/2))/2) $"
    assert typst_inline(NF / (H * W)) == "$upright(N F) slash (H W)$"
    assert typst_inline((H + 1) / (W - 1)) == "$(H + 1) slash (W - 1)$"
    assert typst_inline(sp.Rational(3, 4) * k) == "$3 k slash 4$"
    assert typst_inline(1 / (H + 1)) == "$1 slash (H + 1)$"
    assert typst_inline(NF) == "$upright(N F)$"
    with pytest.raises(ArchcountError):
        typst_math(H, fractions="diagonal")


def test_latex():
    assert latex_math(k**2 * NIC) == r"\mathrm{NIC} \cdot k^{2}"
    assert latex_math(sp.Symbol("N_IC")) == r"N_{\mathrm{IC}}"
    assert latex_math(sp.floor((H - 1) / 2)) == r"\left\lfloor{\frac{H - 1}{2}}\right\rfloor"


@pytest.mark.parametrize("bad", ["NIC*NF", None, b"x", object()])
def test_non_expressions_are_rejected(bad):
    with pytest.raises(ArchcountError):
        typst_math(bad)


# ---------------------------------------------------------------------- everything compiles

def _formulas() -> list[sp.Basic]:
    """Every shape of formula the counters emit (and some they might)."""
    conv = sp.floor((H + 2 - k) / 2) + 1           # stride-2 conv, padding 1
    half = sp.floor(H / 2)
    quarter = sp.floor(sp.floor(H / 2) / 2)
    out = [
        NIC, NF, NC, k, H, W, N, sp.Integer(0), sp.Integer(1), sp.Integer(-7), sp.Integer(10**30),
        NIC * NF, k**2 * NIC * NF, k**2 * NIC * NF + NF, k**2 * NF * NC + NC, 2 * k**2 * NF**2 + 2 * NF,
        NIC * NF * k**2 * H * W, H * W * NF * (k**2 * NIC + 1), sp.Rational(3, 4) * H * W * NF,
        sp.Rational(3, 4), -sp.Rational(3, 4), sp.Rational(1, 2) * NF - sp.Rational(5, 3) * NC,
        NF**2, 4 * NF**2, (2 * NF)**2 * k**2, N * NF**2, N**2 * NF, 2**k, 3 * 2**k, H**(k + 1),
        half, sp.floor((H - 1) / 2) + 1, sp.ceiling(H / 2), sp.ceiling((H - k + 1) / 2),
        conv, conv**2, conv * sp.floor((W + 2 - k) / 2 + 1), quarter, sp.floor(quarter / 2),
        half * sp.floor(W / 2) * NF, NF * quarter * sp.floor(sp.floor(W / 2) / 2) * 4,
        sp.Mod(H + 1, 2), sp.Mod(H, 2) * NF * W, sp.Mod(2 * H, 3)**2, half + sp.Mod(H, 2),
        sp.Max(0, H - k), sp.Max(0, H - k + 1) * NF, sp.Min(H, W), sp.Min(H, W, k) + sp.Max(1, N),
        sp.Piecewise((H / 2, sp.Eq(sp.Mod(H, 2), 0)), ((H + 1) / 2, True)),
        sp.Piecewise((NF * H, sp.And(H > 1, sp.Ne(W, 3))), (0, sp.Or(H < 2, W >= 5)), (1, True)),
        1 + sp.Piecewise((k, H >= k), (0, True)),
        -H * W + k, -NF, -2 * NF * half, NF - NC * NIC, -(H + 1) / 2,
        sp.Eq(sp.Symbol("weights"), k**2 * NIC * NF + NF), sp.Le(k, H), sp.Gt(H, 2 * k), sp.Lt(1, N),
        sp.Symbol("N_IC") * k**2, sp.Symbol("N_{F}")**2, sp.Symbol("H_in") - k + 1,
        sp.Symbol("x1") + sp.Symbol("x_2^3"),
        sp.Symbol("alpha") * k + sp.Symbol("Lambda"), sp.Symbol("conv_out") * 2, sp.Symbol('we"ird\\name'),
        1 / H, NF / (H * W), (H + 1) / (W - 1), sp.sqrt(H), H**sp.Rational(1, 3), H**sp.Rational(2, 3),
        sp.Float(2.5) * H, sp.Float(1.5e-5) * H, sp.Float("nan"), sp.oo, -sp.oo, sp.zoo, sp.pi * k, sp.E**H,
        sp.exp(H), sp.log(H), sp.Abs(x - 1), sp.sign(x), sp.sin(x), sp.Function("f")(H, W),
        sp.Function("conv_out")(H, k), sp.Sum(k * N, (N, 1, H)), sp.Product(N, (N, 1, H)),
        sp.Tuple(H, W), sp.Derivative(sp.Function("f")(x), x), sp.Integral(x, (x, 0, 1)),
        sp.Matrix([[1, 2], [3, 4]]), sp.true, sp.Not(H > 1), sp.floor(sp.Max(H, W) / 2),
        sp.Piecewise((sp.Max(0, H - k), sp.Eq(sp.Mod(H, 2), 0)), (sp.floor(H / 2), True)) * NF,
    ]
    return out


def test_every_formula_compiles(tmp_path: Path):
    formulas = _formulas()
    env = make_env("typ")
    tpl = env.from_string(
        '{% include "_macros.typ" %}\n'
        "{% for f in formulas %}\n"
        "{{ loop.index }}: {{ f|tmath }}\n"
        "{{ f|tdisplay }}\n"
        "{% endfor %}\n")
    source = tpl.render(formulas=formulas)
    pdf = tmp_path / "formulas.pdf"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compile_typst(source, pdf, root=tmp_path)
    except ArchcountError as exc:
        m = re.search(r"source line (\d+)", str(exc))
        line = source.splitlines()[int(m.group(1)) - 1] if m else "?"
        pytest.fail(f"{exc}\n  line: {line}")
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "NIC" in text and "NF" in text
    assert "⌊" in text and "⌈" in text
    assert "NF2" in text                     # NF^2: pypdf gives the superscript as a plain 2
    assert "mod" in text and "max" in text and "otherwise" in text
    assert str(len(formulas)) + ":" in text  # nothing was dropped
    for f in formulas:  # the LaTeX printer copes with all of them too
        assert latex_math(f)


def test_multi_letter_names_are_quoted_in_every_formula():
    """Outside string literals only Typst names (functions, symbols) may be multi-letter."""
    allowed = {"floor", "ceil", "mod", "max", "min", "dot", "cases", "sqrt", "root", "abs", "sum", "product",
               "infinity", "quad", "lr", "pi", "ln", "sin", "tilde", "alpha", "Lambda", "upright", "slash"}
    for f in _formulas():
        for out in (typst_math(f), typst_inline(f)):
            bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', out)
            words = set(re.findall(r"[A-Za-z]{2,}", bare))
            assert words <= allowed, (f, out, words - allowed)
