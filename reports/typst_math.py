"""Print sympy expressions as Typst math (and as LaTeX with upright multi-letter names).

Typst reads a multi-letter word in math as a *variable* (``$NIC$`` fails with
"unknown variable"), so every multi-letter name is printed as upright letters,
``NIC`` -> ``upright(N I C)``, ``N_IC`` -> ``N_(upright(I C))`` (tight, like one
symbol: "2NF", where a quoted ``"NF"`` would get text spacing, "2 NF"); names
with other characters become quoted strings (``"conv-out"``).  Single letters
(``k``, ``H``, ``W``) and Greek names (``alpha``) stay as they are.

Conventions
-----------
* products: juxtaposition between a leading number and anything, and between
  single letters / parenthesised sums (``2 k H``, ``k (H + 1)``); ``dot`` next
  to an upright word, a function (floor, max, ...) or a second number
  (``k^2 dot "NIC" dot "NF"``, ``floor(H/2) dot floor(W/2)``);
* fractions: ``(num)/(den)`` (Typst drops the outer parentheses), atoms bare:
  ``H/2``, ``(H - 1)/2``, ``(3 k)/4``; inline math (:func:`typst_inline`) uses slashed
  fractions instead, ``(H - 1) slash 2``, so nested floors stay legible at text size;
* powers: ``x^2``, ``x^(a + b)``; ``x^(1/2)`` -> ``sqrt(x)``, ``x^(1/q)`` -> ``root(q, x)``;
* ``floor(x)`` / ``ceil(x)`` (Typst functions drawing the brackets);
* ``Mod(a, b)`` -> ``a mod b``, parenthesised inside sums, products and powers;
* ``Max``/``Min`` -> ``max(a, b)`` / ``min(a, b)``; ``Abs`` -> ``abs(x)``;
* ``Piecewise`` -> ``cases(a & "if" cond, b & "otherwise")``;
* relations ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``; ``And``/``Or`` as words;
* anything unknown is printed as a quoted string of its ``sstr`` (it always compiles).

>>> from analysis.symbols import NIC, NF, k, H
>>> import sympy as sp
>>> typst_math(k**2 * NIC * NF)
'upright(N F) dot upright(N I C) dot k^2'
>>> typst_math(sp.floor((H - 1) / 2) + 1)
'floor((H - 1)/2) + 1'
>>> latex_math(k**2 * NIC)
'\\\\mathrm{NIC} \\\\cdot k^{2}'
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.core.mul import _keep_coeff
from sympy.printing.conventions import split_super_sub
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.printer import Printer

from analysis.errors import ArchcountError

__all__ = ["TypstMathPrinter", "typst_math", "typst_inline", "typst_display", "typst_string",
           "latex_math", "to_sympy"]

#: Greek letter names Typst knows in math (lower and upper case).
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda",
    "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
}
_GREEK |= {g.capitalize() for g in _GREEK}

#: Functions printed as Typst's upright operators, e.g. ``sin(x)``.
_TYPST_OPS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "sinh", "cosh", "tanh", "coth", "arcsin", "arccos",
    "arctan", "exp", "log", "ln", "lg", "gcd", "lcm", "det", "dim", "deg", "arg",
}
_SYMPY_FUNC_NAMES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "sign": "sgn", "log": "ln"}

# Precedences for the Typst layout (sympy's, with two additions).
_PREC_MOD = PRECEDENCE["Relational"] + 1        # parenthesised in +, *, ^; bare in relations
_PREC_PIECEWISE = PRECEDENCE["Relational"] + 2  # parenthesised in +, *, ^; bare at top level

_ATOM_RE = re.compile(r'^(?:\d+|[^\W\d_]|[A-Za-z]+|"(?:[^"\\]|\\.)*"|upright\((?:[A-Za-z] )+[A-Za-z]\))$')


def _together(arg: sp.Basic) -> sp.Basic:
    """``H/2 - 1/2`` -> ``(H - 1)/2`` for the argument of floor/ceiling (sympy expands it)."""
    if arg.is_Add:
        joined = sp.together(arg)
        if joined != arg:
            return joined
    return arg


def typst_string(text: str) -> str:
    """A Typst string literal (usable in markup via ``#``, in code and in math).

    >>> typst_string('a "b" \\\\ c')
    '"a \\\\"b\\\\" \\\\\\\\ c"'
    """
    out = ['"']
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _name_part(part: str) -> str:
    """One piece of a symbol name (base, sub- or superscript) in Typst math."""
    part = part.strip()
    if part.startswith("{") and part.endswith("}"):
        part = part[1:-1]
    if not part:
        return '""'
    if len(part) == 1 and part.isalpha():
        return part
    if part in _GREEK:
        return part
    if part.isdigit() and part.isascii():
        return part
    if part.isascii() and part.isalpha():
        # upright letters: tight like a single symbol ("2NF", "NF^2"), where a string "NF"
        # gets text spacing around it
        return "upright(" + " ".join(part) + ")"
    return typst_string(part)


def _attach(s: str) -> str:
    """Content for ``_`` or ``^``: bare when one character or one string, else in parentheses
    (which Typst does not draw around an attachment)."""
    if len(s) == 1 and s.isalnum() or (s.startswith('"') and _ATOM_RE.match(s)):
        return s
    if s.startswith("upright(") and _ATOM_RE.match(s):
        return f"({s})"  # parentheses around an attachment are not drawn
    return f"({s})"


def _is_atom(s: str) -> bool:
    """Whether a printed piece is one token that needs no parentheses as an operand."""
    return bool(_ATOM_RE.match(s))


class TypstMathPrinter(Printer):
    """sympy -> Typst math source (the text between ``$`` and ``$``)."""

    printmethod = "_typst"
    #: ``fractions``: "stack" (``a/b``, built-up) or "slash" (``a slash b``, for inline math:
    #: nested floors stay legible at text size).
    _default_settings: dict[str, Any] = {"order": None, "fractions": "stack"}

    # ------------------------------------------------------------------ helpers
    def emptyPrinter(self, expr: Any) -> str:  # noqa: N802 - sympy's name
        """Anything without a dedicated method: its sstr as upright text (always valid Typst)."""
        return typst_string(sp.sstr(expr) if isinstance(expr, sp.Basic) else str(expr))

    def _prec(self, expr: Any) -> int:
        if isinstance(expr, sp.Mod):
            return _PREC_MOD
        if isinstance(expr, sp.Piecewise):
            return _PREC_PIECEWISE
        return precedence(expr)

    def parenthesize(self, item: Any, level: int, strict: bool = False) -> str:
        prec = self._prec(item)
        s = self._print(item)
        if prec < level or (strict and prec <= level):
            return f"({s})"
        return s

    def _frac(self, num: str, den: str, *, num_sum: bool = True, den_compound: bool = True) -> str:
        """``num/den`` built up; with slash fractions the parentheses that stay visible are
        only those a sum numerator (``num_sum``) or a sum/product denominator need."""
        if self._settings["fractions"] == "slash":
            num = f"({num})" if num_sum and not _is_atom(num) else num
            den = f"({den})" if den_compound and not _is_atom(den) else den
            return f"{num} slash {den}"
        num = num if _is_atom(num) else f"({num})"
        den = den if _is_atom(den) else f"({den})"
        return f"{num}/{den}"

    def _kind(self, factor: sp.Basic) -> str:
        """Classify a product factor for the separator rule: num, letter, word, group or func."""
        if factor.is_Number:
            return "num"
        if factor.is_Pow:
            if factor.exp.is_Rational and factor.exp.p == 1 and factor.exp.q != 1:
                return "func"  # sqrt(...) / root(q, ...)
            return "num" if factor.base.is_Number else self._kind(factor.base)
        if isinstance(factor, sp.Symbol):
            base = split_super_sub(factor.name)[0]
            return "letter" if (len(base) == 1 and base.isalpha()) or base in _GREEK else "word"
        if factor.is_Add or isinstance(factor, sp.Mod):
            return "group"
        if isinstance(factor, sp.NumberSymbol) or factor in (sp.I, sp.E):
            return "letter"
        return "func"

    @staticmethod
    def _sep(a: str, b: str) -> str:
        if b == "num":
            return " dot "
        if a == "num":
            return " "
        if a == "word" or b == "word":
            return " dot "
        if a in ("letter", "group") and b in ("letter", "group"):
            return " "
        return " dot "

    # ------------------------------------------------------------------ atoms
    def _print_Symbol(self, expr: sp.Symbol) -> str:
        name, sups, subs = split_super_sub(expr.name)
        out = _name_part(name)
        if subs:
            out += "_" + _attach(" ".join(_name_part(s) for s in subs))
        if sups:
            out += "^" + _attach(" ".join(_name_part(s) for s in sups))
        return out

    _print_Dummy = _print_Symbol

    def _print_Integer(self, expr: sp.Integer) -> str:
        return str(int(expr))

    def _print_int(self, expr: int) -> str:
        return str(expr)

    def _print_Rational(self, expr: sp.Rational) -> str:
        if expr.q == 1:
            return str(expr.p)
        sign = "-" if expr.p < 0 else ""
        return sign + self._frac(str(abs(expr.p)), str(expr.q))

    def _print_Float(self, expr: Any) -> str:
        value = float(expr)
        if math.isnan(value):
            return '"NaN"'
        if math.isinf(value):
            return "infinity" if value > 0 else "-infinity"
        text = repr(value)
        if "e" in text:
            mant, exp = text.split("e")
            return f"{mant} dot 10^({int(exp)})"
        return text

    _print_float = _print_Float

    def _print_Infinity(self, expr: Any) -> str:
        return "infinity"

    def _print_NegativeInfinity(self, expr: Any) -> str:
        return "-infinity"

    def _print_ComplexInfinity(self, expr: Any) -> str:
        return "tilde(infinity)"

    def _print_NaN(self, expr: Any) -> str:
        return '"NaN"'

    def _print_Pi(self, expr: Any) -> str:
        return "pi"

    def _print_Exp1(self, expr: Any) -> str:
        return "e"

    def _print_ImaginaryUnit(self, expr: Any) -> str:
        return "i"

    def _print_BooleanTrue(self, expr: Any) -> str:
        return '"true"'

    def _print_BooleanFalse(self, expr: Any) -> str:
        return '"false"'

    def _print_bool(self, expr: bool) -> str:
        return '"true"' if expr else '"false"'

    # ------------------------------------------------------------------ arithmetic
    def _print_Add(self, expr: sp.Add) -> str:
        terms = self._as_ordered_terms(expr, order=None)
        out: list[str] = []
        for i, term in enumerate(terms):
            s = self.parenthesize(term, PRECEDENCE["Add"])
            if s.startswith("-"):
                out.append(("-" if i == 0 else " - ") + s[1:].lstrip())
            else:
                out.append(s if i == 0 else " + " + s)
        return "".join(out)

    def _print_Mul(self, expr: sp.Mul) -> str:
        coeff, rest = expr.as_coeff_Mul()
        sign = ""
        if coeff.is_negative:
            sign = "-"
            expr = _keep_coeff(-coeff, rest)
            if expr == 1:
                return "-1"
            if not expr.is_Mul:
                return sign + self.parenthesize(expr, PRECEDENCE["Mul"])
        numer: list[sp.Basic] = []
        denom: list[sp.Basic] = []
        for factor in expr.as_ordered_factors():
            if factor.is_Rational and factor is not sp.S.Infinity:
                if factor.p != 1:
                    numer.append(sp.Integer(factor.p))
                if factor.q != 1:
                    denom.append(sp.Integer(factor.q))
            elif factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative:
                denom.append(factor.base if factor.exp == -1 else sp.Pow(factor.base, -factor.exp, evaluate=False))
            else:
                numer.append(factor)
        num_s = self._product(numer) if numer else "1"
        if not denom:
            return sign + num_s
        num_sum = len(numer) == 1 and self._prec(numer[0]) < PRECEDENCE["Mul"]
        den_compound = len(denom) > 1 or self._prec(denom[0]) < PRECEDENCE["Mul"]
        return sign + self._frac(num_s, self._product(denom), num_sum=num_sum, den_compound=den_compound)

    def _product(self, factors: list[sp.Basic]) -> str:
        out: list[str] = []
        prev = None
        for i, factor in enumerate(factors):
            kind = self._kind(factor)
            if factor.is_Number and i > 0 or (factor.is_Number and factor.is_negative):
                s = f"({self._print(factor)})" if factor.is_negative else self._print(factor)
            else:
                s = self.parenthesize(factor, PRECEDENCE["Mul"], strict=False) if len(factors) > 1 \
                    else self._print(factor)
            if prev is not None:
                out.append(self._sep(prev, kind))
            out.append(s)
            prev = kind
        return "".join(out)

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.base, expr.exp
        if exp is sp.S.Half:
            return f"sqrt({self._print(base)})"
        if exp.is_Rational and exp.is_negative:
            pos = base if exp == -1 else sp.Pow(base, -exp, evaluate=False)
            return self._frac("1", self._print(pos), den_compound=self._prec(pos) <= PRECEDENCE["Mul"])
        if exp.is_Rational and exp.p == 1 and exp.q != 1:
            return f"root({exp.q}, {self._print(base)})"
        if base is sp.E:
            return f"e^{_attach(self._print(exp))}"
        base_s = self.parenthesize(base, PRECEDENCE["Pow"], strict=True)
        if isinstance(base, sp.Float) and not _is_atom(base_s):
            base_s = f"({base_s})"
        return f"{base_s}^{_attach(self._print(exp))}"

    # ------------------------------------------------------------------ functions
    def _print_floor(self, expr: Any) -> str:
        return f"floor({self._print(_together(expr.args[0]))})"

    def _print_ceiling(self, expr: Any) -> str:
        return f"ceil({self._print(_together(expr.args[0]))})"

    def _print_Abs(self, expr: Any) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _print_Mod(self, expr: sp.Mod) -> str:
        a, b = expr.args
        return f"{self.parenthesize(a, PRECEDENCE['Mul'])} mod {self.parenthesize(b, PRECEDENCE['Mul'], strict=True)}"

    def _minmax(self, name: str, expr: Any) -> str:
        return f"{name}(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Max(self, expr: Any) -> str:
        return self._minmax("max", expr)

    def _print_Min(self, expr: Any) -> str:
        return self._minmax("min", expr)

    def _print_exp(self, expr: Any) -> str:
        return f"e^{_attach(self._print(expr.args[0]))}"

    def _print_Function(self, expr: Any) -> str:
        name = getattr(expr.func, "__name__", str(expr.func))
        name = _SYMPY_FUNC_NAMES.get(name, name)
        args = ", ".join(self._print(a) for a in expr.args)
        # Typst's own operators (sin, ln, gcd...) are set upright; any other name prints as a
        # symbol (f, alpha, "conv"_"out"), and Typst keeps the parenthesised arguments as content.
        head = name if name in _TYPST_OPS else self._print_Symbol(sp.Symbol(name))
        return f"{head}({args})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        rows = []
        for value, cond in expr.args:
            v = self._print(value)
            if cond is sp.true:
                rows.append(f'{v} & "otherwise"')
            else:
                rows.append(f'{v} & "if" {self._print(cond)}')
        return "cases(" + ", ".join(rows) + ")"

    # ------------------------------------------------------------------ logic and relations
    _REL = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

    def _print_Relational(self, expr: Any) -> str:
        op = self._REL.get(expr.rel_op)
        if op is None:  # pragma: no cover - every sympy relation is in the table
            return self.emptyPrinter(expr)
        level = PRECEDENCE["Relational"] + 1
        return f"{self.parenthesize(expr.lhs, level)} {op} {self.parenthesize(expr.rhs, level)}"

    def _logic(self, word: str, expr: Any, level: int) -> str:
        args = sorted(expr.args, key=sp.default_sort_key)
        return f' quad "{word}" quad '.join(self.parenthesize(a, level, strict=True) for a in args)

    def _print_And(self, expr: Any) -> str:
        return self._logic("and", expr, PRECEDENCE["And"])

    def _print_Or(self, expr: Any) -> str:
        return self._logic("or", expr, PRECEDENCE["Or"])

    def _print_Not(self, expr: Any) -> str:
        return f'"not" ({self._print(expr.args[0])})'

    # ------------------------------------------------------------------ big operators and containers
    def _bigop(self, op: str, expr: Any) -> str:
        body = self.parenthesize(expr.function, PRECEDENCE["Mul"])
        for lim in reversed(expr.limits):
            if len(lim) == 3:
                var, lo, hi = lim
                body = f"{op}_({self._print(var)} = {self._print(lo)})^{_attach(self._print(hi))} {body}"
            else:
                body = f"{op}_{_attach(self._print(lim[0]))} {body}"
        return body

    def _print_Sum(self, expr: Any) -> str:
        return self._bigop("sum", expr)

    def _print_Product(self, expr: Any) -> str:
        return self._bigop("product", expr)

    def _print_tuple(self, expr: Any) -> str:
        inner = ", ".join(self._print(a) for a in expr)
        return f"lr(({inner}))"

    _print_Tuple = _print_tuple
    _print_list = _print_tuple


def to_sympy(expr: Any) -> sp.Basic:
    """Accept sympy objects and Python numbers (never strings: no parsing of user text)."""
    if isinstance(expr, sp.Basic):
        return expr
    if isinstance(expr, bool):
        return sp.true if expr else sp.false
    if isinstance(expr, Fraction):
        return sp.Rational(expr.numerator, expr.denominator)
    if isinstance(expr, (str, bytes)) or expr is None:
        raise ArchcountError(f"expected a sympy expression or a number, got {expr!r}", argument="expr")
    try:
        return sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError, ValueError):
        raise ArchcountError(f"cannot print {type(expr).__name__} {expr!r} as math", argument="expr") from None


def typst_math(expr: Any, *, fractions: str = "stack") -> str:
    """Typst math source for ``expr`` (the content of ``$...$``).

    ``fractions="slash"`` writes ``a slash b`` instead of built-up ``a/b`` fractions.
    """
    if fractions not in ("stack", "slash"):
        raise ArchcountError(f"fractions must be 'stack' or 'slash', got {fractions!r}", argument="fractions")
    return TypstMathPrinter({"fractions": fractions}).doprint(to_sympy(expr))


def typst_inline(expr: Any) -> str:
    """Inline Typst math, ``$...$``, with slash fractions (``⌊⌊H/2⌋/2⌋`` stays legible in a line or cell)."""
    return f"${typst_math(expr, fractions='slash')}$"


def typst_display(expr: Any) -> str:
    """Display (block) Typst math, ``$ ... $``, with built-up fractions."""
    return f"$ {typst_math(expr)} $"


# ---------------------------------------------------------------------- LaTeX (Markdown)

_LATEX_SPECIAL = {"\\": r"\backslash{}", "{": r"\{", "}": r"\}", "#": r"\#", "$": r"\$", "%": r"\%",
                  "&": r"\&", "_": r"\_", "^": r"\^{}", "~": r"\sim{}"}


class _UprightLatexPrinter(LatexPrinter):
    """sympy's LaTeX printer, with multi-letter names upright (``\\mathrm{NIC}``)."""

    def _latex_name_part(self, part: str) -> str:
        from sympy.printing.latex import translate
        part = part.strip()
        if part.startswith("{") and part.endswith("}"):
            part = part[1:-1]
        if (len(part) == 1 and part.isalpha()) or part in _GREEK or (part.isdigit() and part.isascii()):
            return translate(part)
        return r"\mathrm{" + "".join(_LATEX_SPECIAL.get(c, c) for c in part) + "}"

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        name, sups, subs = split_super_sub(expr.name)
        out = self._latex_name_part(name)
        if subs:
            out += "_{" + " ".join(self._latex_name_part(s) for s in subs) + "}"
        if sups:
            out += "^{" + " ".join(self._latex_name_part(s) for s in sups) + "}"
        return out

    _print_Dummy = _print_Symbol

    def _print_floor(self, expr: Any, exp: Any = None) -> str:
        tex = r"\left\lfloor{%s}\right\rfloor" % self._print(_together(expr.args[0]))
        return tex if exp is None else r"%s^{%s}" % (tex, exp)

    def _print_ceiling(self, expr: Any, exp: Any = None) -> str:
        tex = r"\left\lceil{%s}\right\rceil" % self._print(_together(expr.args[0]))
        return tex if exp is None else r"%s^{%s}" % (tex, exp)


def latex_math(expr: Any) -> str:
    """LaTeX for ``expr`` (no ``$``), multi-letter names upright and products with ``\\cdot``."""
    return _UprightLatexPrinter({"mul_symbol": "dot"}).doprint(to_sympy(expr))
