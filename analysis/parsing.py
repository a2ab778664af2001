r"""Read a formula a person typed (plain text or common LaTeX) into a sympy expression, safely.

Nothing here ever calls ``eval``, ``exec``, :func:`sympy.sympify` or :func:`sympy.parse_expr`
on the text.  A hand-written tokenizer turns the text into a small set of whitelisted tokens,
and a recursive-descent parser builds the sympy objects directly (``sympy.Add``, ``Mul``,
``Pow``, ``floor``, ...).  Names resolve only to the symbols declared once in
:mod:`analysis.symbols` (and to extra symbols the caller passes), so the result compares equal
to archcount's own formulas.

>>> from analysis.parsing import parse_formula
>>> parse_formula("9 NIC NF + 18NF²")
18*NF**2 + 9*NF*NIC
>>> parse_formula(r"$$k^{2} \left(N_{IC} \cdot N_F\right)$$")
NF*NIC*k**2
>>> parse_formula(r"\left\lfloor \frac{H-1}{2} \right\rfloor + 1")
floor(H/2 - 1/2) + 1
>>> parse_formula("weights = 0.5 NF")
NF/2
>>> parse_formula("9 NIC NX")
Traceback (most recent call last):
    ...
analysis.errors.ArchcountError: unknown symbol 'NX' at position 7; known: NIC, NF, NC, k, H, W

Grammar
=======

==========================  ==================================================================
Written                     Read as
==========================  ==================================================================
``12``, ``0.5``, ``.25``    exact integers / Rationals (``0.5`` is ``1/2``); at most 40 digits
``+ - * /``                 the usual operators; ``−`` (U+2212) is minus, ``÷`` is ``/``
``× · ⋅ ∗``                 ``*``
``^``, ``**``               power, right-associative: ``2^3^2`` is ``2^9``; ``-2^2`` is ``-4``
``NF²``, ``k³``, ``x⁻¹``    superscript digits (and ``⁻``) are a power
``a b``, ``2(NF+1)``        implicit multiplication, same precedence as ``*`` and ``/`` (left to
                            right): ``3/4 NF`` is ``(3/4)*NF``.  Two bare numbers in a row
                            (``2 3``) are an error, not ``6``.
``( )``, ``[ ]``, ``{ }``   grouping; each opener must be closed by its own closer
``//``                      floor division: ``a // b`` is ``floor(a/b)``
``%``, ``mod``              ``a % b``, ``a mod b``, ``mod(a, b)``, ``Mod(a, b)`` → ``sympy.Mod``
``floor(x)``, ``⌊x⌋``       ``sympy.floor``
``ceil(x)``, ``⌈x⌉``        ``sympy.ceiling`` (also ``ceiling(x)``)
``min(a, b, ...)``          ``sympy.Min`` / ``sympy.Max`` (2 to 8 arguments; also ``Min``/``Max``)
Names                       NIC, NF, NC, k, H, W and every alias in ``symbols.ALIASES`` (``N_IC``,
                            ``N_{IC}``, ``Nic``, ``C_in``, ``N_F``, ``K``, ...), plus the extra
                            symbols passed in.  Subscripts may be braced and wrapped:
                            ``N_{\mathrm{IC}}``.  Unknown names are an error that lists the known
                            ones.
Run-together names          a word that is not a name is split into known names, longest first:
                            ``NICNF`` → ``NIC*NF``, ``kNF`` → ``k*NF``, ``HW`` → ``H*W``; a power
                            binds to the last name only (``NICNFk^2`` is ``NIC*NF*k^2``).  An exact
                            name always wins over a split.  Digits do not split off: ``NF2`` is an
                            unknown name (write ``NF^2`` or ``2NF``).
``name = formula``          a single word left of one ``=`` (``weights = ...``) is dropped, whatever
                            the word (``W = 3 NF`` reads ``3 NF``); anything else before ``=`` is
                            an error
``$ $$ \( \[``              surrounding math delimiters (``$..$``, ``$$..$$``, ``\(..\)``,
                            ``\[..\]``) are dropped
``\times \cdot \ast \div``  operators; ``\bmod``, ``\mod`` are ``mod``
``\frac{a}{b}``             also ``\dfrac``, ``\tfrac``, ``\cfrac``, and ``\frac12`` (one-digit args)
``\left \right \big ...``   size commands are ignored (a delimiter must follow)
``\lfloor \rfloor``         floor brackets; ``\lceil \rceil`` ceiling; ``\{ \}``, ``\lbrace``,
                            ``\lbrack`` grouping
``\mathrm{..} \text{..}``   a name (also ``\operatorname``, ``\textrm``, ``\mathit``, ``\mathsf``)
``\min \max``               functions
``\, \; \: \! \  \quad ~``  spacing, ignored; so is ``\displaystyle``
==========================  ==================================================================

Anything else is an :class:`~analysis.errors.ArchcountError` that names the offending token and
its 1-based character position in the text as given (also on the error as ``.position``).

Limits (module constants), checked before sympy computes anything:

* ``max_length`` characters of text (default 2000);
* ``MAX_DIGITS`` digits per number literal;
* ``MAX_EXPONENT``: a numeric exponent ``p/q`` needs ``|p| <= 64`` and ``q <= 64``; symbolic
  exponents (``2^N`` for an extra symbol ``N``) are allowed.  The finished formula may not hold
  a power with an integer exponent beyond the limit either (``NF^40 NF^40`` is rejected);
* ``MAX_NUMBER_BITS``: no exact number (a power such as ``9^64`` included) beyond 10,000 bits;
* ``MAX_DEPTH`` levels of nesting (brackets, function arguments, exponents);
* ``MAX_TERMS``: an upper estimate of the number of terms that ``sympy.expand`` would produce
  (``(NIC+NF+NC+k+H+W)^64`` would give 11 million) — callers expand and simplify what this
  returns, so a formula too big to expand is refused here;
* ``Mod`` is evaluated by sympy only for a number as divisor and a small dividend (sympy's
  ``Mod`` factors and expands its arguments, which can take minutes); others stay unevaluated;
* ``MAX_FUNCTIONS``: a budget of distinct function applications (one unit per floor, ceil, mod,
  ``//``; one per pair of min/max arguments), as sympy spends milliseconds evaluating each.
"""
from __future__ import annotations

import contextlib
import difflib
import math
import re
import unicodedata
from fractions import Fraction
from typing import Any, Mapping

import sympy as sp

from .errors import ArchcountError
from .symbols import ALIASES, STANDARD

__all__ = [
    "MAX_DEPTH", "MAX_DIGITS", "MAX_EXPONENT", "MAX_FUNCTION_ARGS", "MAX_FUNCTIONS",
    "MAX_NUMBER_BITS", "MAX_TERMS", "MAX_SIDES", "MAX_ALTERNATIVES", "MAX_CONJUNCTS",
    "Answer", "Chain", "FUNCTIONS", "check_limits", "parse_answer", "parse_formula", "parse_number_or_formula",
]

MAX_EXPONENT = 64          #: largest |numerator| and denominator of a numeric exponent
MAX_DIGITS = 40            #: largest number of digits in one number literal
MAX_DEPTH = 50             #: deepest nesting of brackets / arguments / exponents
MAX_NUMBER_BITS = 10_000   #: largest exact number (numerator or denominator), in bits
MAX_TERMS = 512            #: largest estimated size of the expanded formula
MAX_FUNCTION_ARGS = 8      #: most arguments of min / max
MAX_FUNCTIONS = 32         #: budget of distinct function applications per formula (see _Parser.apply)
_MOD_EVAL_TERMS = 16       #: Mod is evaluated only for a numeric divisor and a dividend this small

#: function name -> (sympy builder name, min args, max args)
FUNCTIONS: dict[str, tuple[str, int, int]] = {
    "floor": ("floor", 1, 1), "ceil": ("ceiling", 1, 1), "ceiling": ("ceiling", 1, 1),
    "min": ("Min", 2, MAX_FUNCTION_ARGS), "max": ("Max", 2, MAX_FUNCTION_ARGS),
    "Min": ("Min", 2, MAX_FUNCTION_ARGS), "Max": ("Max", 2, MAX_FUNCTION_ARGS),
    "mod": ("Mod", 2, 2), "Mod": ("Mod", 2, 2),
}
_FUNCTION_LIST = "floor, ceil, ceiling, min, max, mod"

# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

NUM, WORD, OP, SUP, OPEN, CLOSE, FRAC, COMMA, EQ, DELIM, END = (
    "number", "word", "operator", "superscript", "open", "close", "frac", "comma", "=", "delimiter",
    "end")
#: answer-level connectives (read by :func:`parse_answer`; an error inside a single formula)
OR, AND, IN = "or", "and", "in"


class _Token:
    __slots__ = ("kind", "text", "pos", "value")

    def __init__(self, kind: str, text: str, pos: int, value: Any = None) -> None:
        self.kind = kind      # one of the kinds above
        self.text = text      # the source text of the token (for messages)
        self.pos = pos        # 0-based offset into the original text
        self.value = value    # number / operator / bracket class / name / exponent

    def describe(self) -> str:
        return "end of formula" if self.kind == END else _q(self.text)

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"_Token({self.kind}, {self.text!r}, {self.pos}, {self.value!r})"


def _q(text: str) -> str:
    """Quote source text for a message: 'as typed' when printable, else Python's escapes."""
    return f"'{text}'" if text.isprintable() and "'" not in text else repr(text)


_AT = "\ue000"  # placeholder for "at position N" in messages (a character no formula can hold)


def _error(reason: str, pos: int | None = None, hint: str | None = None) -> ArchcountError:
    """An ArchcountError; ``pos`` (0-based) is rendered 1-based and kept as ``.position``."""
    if pos is not None:
        reason = reason.replace(_AT, f"at position {pos + 1}")
    else:
        reason = reason.replace(" " + _AT, "")
    err = ArchcountError(reason, hint=hint)
    err.position = None if pos is None else pos + 1  # type: ignore[attr-defined]
    return err


_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_SUBRUN_RE = re.compile(r"[A-Za-z0-9]+")
_COMMAND_RE = re.compile(r"\\([A-Za-z]+)")
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")
_WRAPPER_RE = re.compile(r"\\(?:mathrm|text|textrm|mathit|mathsf|textit|operatorname|rm|it)\b\s*")

_SUPERSCRIPTS = {"⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7",
                 "⁸": "8", "⁹": "9"}
_UNICODE_OPS = {"×": "*", "·": "*", "⋅": "*", "∗": "*", "−": "-", "÷": "/"}
_PLAIN_OPS = {"+": "+", "-": "-", "^": "^", "%": "%"}
_BRACKETS = {"(": (OPEN, "paren"), ")": (CLOSE, "paren"), "[": (OPEN, "bracket"),
             "]": (CLOSE, "bracket"), "{": (OPEN, "brace"), "}": (CLOSE, "brace"),
             "⌊": (OPEN, "floor"), "⌋": (CLOSE, "floor"), "⌈": (OPEN, "ceil"), "⌉": (CLOSE, "ceil")}
_CLOSER_TEXT = {"paren": ")", "bracket": "]", "brace": "}", "floor": "⌋ or \\rfloor",
                "ceil": "⌉ or \\rceil"}

_CMD_OPS = {"times": "*", "cdot": "*", "ast": "*", "div": "/", "bmod": "mod", "mod": "mod"}
_CMD_CONNECTIVES = {"lor": OR, "vee": OR, "land": AND, "wedge": AND, "in": IN}
_CHAR_CONNECTIVES = {"∨": OR, "∧": AND, "∈": IN, ";": AND}
_CMD_FRAC = {"frac", "dfrac", "tfrac", "cfrac"}
_CMD_BRACKETS = {"lfloor": (OPEN, "floor"), "rfloor": (CLOSE, "floor"),
                 "lceil": (OPEN, "ceil"), "rceil": (CLOSE, "ceil"),
                 "lbrack": (OPEN, "bracket"), "rbrack": (CLOSE, "bracket"),
                 "lbrace": (OPEN, "brace"), "rbrace": (CLOSE, "brace")}
_CMD_WRAPPERS = {"mathrm", "text", "textrm", "mathit", "mathsf", "textit", "operatorname"}
_CMD_FUNCS = {"min": "min", "max": "max"}
_CMD_SPACE = {"quad", "qquad", "displaystyle", "textstyle", "scriptstyle"}
_CMD_SIZERS = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
               "biggl", "biggr", "Biggl", "Biggr"}
_CMD_SINGLE = {",": None, ";": None, ":": None, "!": None, " ": None, ">": None,
               "{": (OPEN, "brace"), "}": (CLOSE, "brace"),
               "(": (DELIM, "\\("), ")": (DELIM, "\\)"), "[": (DELIM, "\\["), "]": (DELIM, "\\]")}


def _read_braced(text: str, i: int, what: str) -> tuple[str, int]:
    """``text[i] == '{'``: the content up to the matching ``}`` and the index after it."""
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
            if depth > 4:
                raise _error(f"{what} nested too deeply {_AT}", j)
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j], j + 1
    raise _error(f"missing '}}' to close the '{{' {_AT} ({what})", i)


def _flatten_name(content: str) -> str:
    """``\\mathrm{IC}`` / ``{IC}`` / ``N_{IC}`` content -> a plain name such as ``IC`` or ``N_IC``."""
    flat = _WRAPPER_RE.sub("", content)
    flat = re.sub(r"_\{([^{}]*)\}", r"_\1", flat)
    flat = "".join(flat.replace("{", "").replace("}", "").split())
    return flat


def _tokenize(text: str, table: "_SymbolTable") -> list[_Token]:
    tokens: list[_Token] = []
    n = len(text)
    i = 0
    need_delimiter: _Token | None = None   # after \left, \right, \big...: a delimiter must follow

    def add(tok: _Token) -> None:
        nonlocal need_delimiter
        if need_delimiter is not None:
            if tok.kind not in (OPEN, CLOSE):
                raise _error(f"{_q(need_delimiter.text)} {_AT} must be followed by a bracket, "
                             f"not {tok.describe()}", need_delimiter.pos)
            need_delimiter = None
        tokens.append(tok)

    while i < n:
        ch = text[i]
        if ch.isspace() or ch == "~":
            i += 1
            continue
        if "0" <= ch <= "9" or (ch == "." and i + 1 < n and "0" <= text[i + 1] <= "9"
                                and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_)]}"))):
            m = _NUMBER_RE.match(text, i)
            assert m is not None
            lit = m.group()
            digits = len(lit) - lit.count(".")
            if digits > MAX_DIGITS:
                raise _error(f"number {lit[:12]}... {_AT} has {digits} digits; "
                             f"at most {MAX_DIGITS} are allowed", i)
            if "." in lit:
                whole, frac = lit.split(".")
                value = sp.Rational(int((whole or "0") + frac), 10 ** len(frac))
            else:
                value = sp.Integer(int(lit))
            add(_Token(NUM, lit, i, value))
            i = m.end()
            continue
        if ("A" <= ch <= "Z") or ("a" <= ch <= "z"):
            m = _WORD_RE.match(text, i)
            assert m is not None
            i = _finish_word(text, i, m.group(), m.end(), add, table)
            continue
        if ch == "\\":
            m = _COMMAND_RE.match(text, i)
            if m is None:
                nxt = text[i + 1] if i + 1 < n else ""
                if nxt in _CMD_SINGLE:
                    spec = _CMD_SINGLE[nxt]
                    if spec is not None:
                        add(_Token(spec[0], text[i:i + 2], i, spec[1]))
                    i += 2
                    continue
                shown = ("\\" + nxt) if nxt else "\\"
                raise _error(f"unsupported backslash sequence {_q(shown)} {_AT}", i,
                             hint="LaTeX commands understood: \\frac, \\cdot, \\times, \\left, "
                                  "\\right, \\lfloor, \\lceil, \\mathrm, \\text, \\min, \\max, \\bmod")
            name = m.group(1)
            end = m.end()
            src = m.group()
            if name in _CMD_OPS:
                add(_Token(OP, src, i, _CMD_OPS[name]))
            elif name in _CMD_CONNECTIVES:
                add(_Token(_CMD_CONNECTIVES[name], src, i))
            elif name in _CMD_FRAC:
                add(_Token(FRAC, src, i, name))
            elif name in _CMD_BRACKETS:
                kind, cls = _CMD_BRACKETS[name]
                add(_Token(kind, src, i, cls))
            elif name in _CMD_FUNCS:
                add(_Token(WORD, src, i, _CMD_FUNCS[name]))
            elif name in _CMD_SPACE:
                pass
            elif name in _CMD_SIZERS:
                if need_delimiter is None:
                    need_delimiter = _Token(WORD, src, i)
            elif name in _CMD_WRAPPERS:
                j = end
                while j < n and text[j].isspace():
                    j += 1
                if j >= n or text[j] != "{":
                    raise _error(f"expected '{{' after {_q(src)} {_AT}", i)
                content, after = _read_braced(text, j, src)
                base = _flatten_name(content)
                if not _NAME_RE.fullmatch(base):
                    raise _error(f"{_q((src + '{' + content + '}'))} {_AT} is not a name", i,
                                 hint="only names such as \\mathrm{NIC} or \\text{NF} are understood")
                i = _finish_word(text, i, base, after, add, table)
                continue
            else:
                raise _error(f"unsupported LaTeX command {_q(src)} {_AT}", i,
                             hint="LaTeX commands understood: \\frac, \\cdot, \\times, \\left, "
                                  "\\right, \\lfloor, \\lceil, \\mathrm, \\text, \\min, \\max, \\bmod")
            i = end
            continue
        if ch in _BRACKETS:
            kind, cls = _BRACKETS[ch]
            add(_Token(kind, ch, i, cls))
            i += 1
            continue
        if ch == "*":
            if text.startswith("**", i):
                add(_Token(OP, "**", i, "^"))
                i += 2
            else:
                add(_Token(OP, "*", i, "*"))
                i += 1
            continue
        if ch == "/":
            if text.startswith("//", i):
                add(_Token(OP, "//", i, "//"))
                i += 2
            else:
                add(_Token(OP, "/", i, "/"))
                i += 1
            continue
        if ch in _PLAIN_OPS:
            add(_Token(OP, ch, i, _PLAIN_OPS[ch]))
            i += 1
            continue
        if ch in _UNICODE_OPS:
            add(_Token(OP, ch, i, _UNICODE_OPS[ch]))
            i += 1
            continue
        if ch in _SUPERSCRIPTS or ch == "⁻":
            j = i + 1 if ch == "⁻" else i
            while j < n and text[j] in _SUPERSCRIPTS:
                j += 1
            digits = "".join(_SUPERSCRIPTS[c] for c in text[i:j] if c != "⁻")
            if not digits:
                raise _error(f"'⁻' {_AT} must be followed by superscript digits", i)
            if len(digits) > MAX_DIGITS:
                raise _error(f"superscript exponent {_AT} has {len(digits)} digits", i)
            value = int(digits) * (-1 if ch == "⁻" else 1)
            add(_Token(SUP, text[i:j], i, sp.Integer(value)))
            i = j
            continue
        if ch == ",":
            add(_Token(COMMA, ch, i))
            i += 1
            continue
        if ch == "=":
            add(_Token(EQ, ch, i))
            i += 1
            continue
        if ch in _CHAR_CONNECTIVES:
            add(_Token(_CHAR_CONNECTIVES[ch], ch, i))
            i += 1
            continue
        if ch == "$":
            if text.startswith("$$", i):
                add(_Token(DELIM, "$$", i, "$$"))
                i += 2
            else:
                add(_Token(DELIM, "$", i, "$"))
                i += 1
            continue
        code = f"U+{ord(ch):04X}"
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise _error(f"control or invisible character {code} {_AT}", i)
        raise _error(f"unexpected character {ch!r} ({code}) {_AT}", i)

    if need_delimiter is not None:
        raise _error(f"{_q(need_delimiter.text)} {_AT} must be followed by a bracket",
                     need_delimiter.pos)
    return tokens


def _finish_word(text: str, start: int, base: str, i: int, add: Any, table: "_SymbolTable") -> int:
    """Read the subscripts after a name's ``base`` (``_F``, ``_{IC}``); emit the word token, or
    one token per name when the word is run-together names (``NICNF``), so that a following
    power binds to the last name only: ``NICNFk^2`` is ``NIC*NF*k^2``."""
    n = len(text)
    name = base
    while i < n and text[i] == "_":
        if i + 1 < n and text[i + 1] == "{":
            content, after = _read_braced(text, i + 1, "subscript")
            sub = _flatten_name(content)
            if not _NAME_RE.fullmatch(sub) and not _SUBRUN_RE.fullmatch(sub):
                raise _error(f"subscript {_q(('_{' + content + '}'))} {_AT} is not a name", i)
            name += "_" + sub
            i = after
        else:
            m = _SUBRUN_RE.match(text, i + 1)
            if m is None:
                raise _error(f"'_' {_AT} must be followed by a subscript", i)
            name += "_" + m.group()
            i = m.end()
    raw = text[start:i]
    if name not in FUNCTIONS and table.lookup(name) is None:
        pieces = table.split(name)
        if pieces is not None:
            flat = _normal(name)
            for offset, length in pieces:
                key = flat[offset:offset + length]
                add(_Token(WORD, key, start + offset if raw == flat else start, key))
            return i
    add(_Token(WORD, raw, start, name))
    return i


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

def _normal(name: str) -> str:
    return name.replace("{", "").replace("}", "").replace("_", "")


class _SymbolTable:
    """Names -> the symbol objects: exact (braces dropped) and normalized (underscores dropped)."""

    def __init__(self, extra: Mapping[str, sp.Symbol] | None) -> None:
        self.exact: dict[str, sp.Symbol] = {}
        self.normal: dict[str, sp.Symbol] = {}
        for name, sym in ALIASES.items():
            self._add(name, sym)
        self.known = [s.name for s in STANDARD]
        if extra:
            if not isinstance(extra, Mapping):
                raise _error(f"symbols must be a mapping of name to sympy Symbol, "
                             f"got {type(extra).__name__}")
            for name, sym in extra.items():
                if not isinstance(name, str) or not _NAME_RE.fullmatch(_flatten_name(name)):
                    raise _error(f"extra symbol name {name!r} is not a plain name "
                                 f"(letters, digits, subscripts)")
                if not isinstance(sym, sp.Symbol):
                    raise _error(f"extra symbol {name!r} must be a sympy Symbol, "
                                 f"got {type(sym).__name__}")
                if name in FUNCTIONS or _normal(name) in FUNCTIONS:
                    raise _error(f"extra symbol {name!r} clashes with the function of that name")
                self._add(name, sym)
                if name not in self.known and sym.name not in self.known:
                    self.known.append(name)
        self.max_len = max(len(key) for key in self.normal)

    def _add(self, name: str, sym: sp.Symbol) -> None:
        exact = _flatten_name(name)
        for table, key in ((self.exact, exact), (self.normal, _normal(exact))):
            old = table.get(key)
            if old is not None and old is not sym:
                what = "the standard symbol" if old in STANDARD else "the symbol"
                raise _error(f"extra symbol {name!r} clashes with {what} {old} "
                             f"(both would be written {key!r})")
            table[key] = sym

    def lookup(self, name: str) -> sp.Symbol | None:
        sym = self.exact.get(name)
        return sym if sym is not None else self.normal.get(_normal(name))

    def split(self, name: str) -> list[tuple[int, int]] | None:
        """Split a run-together word (underscores dropped) into known names, preferring the
        longest name at each point: ``(offset, length)`` of each, or None if it cannot be."""
        s = _normal(name)
        n = len(s)
        step = [0] * (n + 1)       # step[i]: length of the name starting at i (0: no split)
        ok = [False] * (n + 1)
        ok[n] = True
        for i in range(n - 1, -1, -1):
            for length in range(min(self.max_len, n - i), 0, -1):
                if ok[i + length] and s[i:i + length] in self.normal:
                    ok[i] = True
                    step[i] = length
                    break
        if not ok[0]:
            return None
        out: list[tuple[int, int]] = []
        i = 0
        while i < n:
            out.append((i, step[i]))
            i += step[i]
        return out

    def unknown(self, tok: _Token, as_function: bool) -> ArchcountError:
        name = tok.value
        known = ", ".join(self.known)
        close = difflib.get_close_matches(name, list(self.exact) + list(FUNCTIONS), n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}?" if close else None
        stem = re.fullmatch(r"([A-Za-z_{}]+?)([0-9]+)", name)
        if stem and (self.lookup(stem.group(1)) is not None):
            hint = (f"write '{stem.group(1)}^{stem.group(2)}' for a power or "
                    f"'{stem.group(2)}{stem.group(1)}' for a product")
        if as_function:
            return _error(f"unknown function or symbol {_q(tok.text)} {_AT}; functions: "
                          f"{_FUNCTION_LIST}; symbols: {known}", tok.pos, hint)
        return _error(f"unknown symbol {_q(tok.text)} {_AT}; known: {known}", tok.pos, hint)


_STANDARD_TABLE: _SymbolTable | None = None


def _table(extra: Mapping[str, sp.Symbol] | None) -> _SymbolTable:
    global _STANDARD_TABLE
    if extra:
        return _SymbolTable(extra)
    if _STANDARD_TABLE is None:
        _STANDARD_TABLE = _SymbolTable(None)
    return _STANDARD_TABLE


# ---------------------------------------------------------------------------------------------
# Size guards
# ---------------------------------------------------------------------------------------------

def _bits(x: sp.Rational) -> int:
    return max(int(x.p).bit_length(), int(x.q).bit_length())


class _Sizer:
    """Upper estimates of the number of terms ``sympy.expand`` gives, memoized per node."""

    def __init__(self) -> None:
        self.memo: dict[sp.Basic, int] = {}
        self.inner = 0               # summed sizes of all function arguments seen
        self.seen_funcs: set[sp.Basic] = set()
        self.cap = MAX_TERMS + 1

    def terms(self, e: sp.Basic) -> int:
        got = self.memo.get(e)
        if got is not None:
            return got
        cap = self.cap
        if e.is_Atom:
            r = 1
        elif e.is_Add:
            r = min(cap, sum(self.terms(a) for a in e.args))
        elif e.is_Mul:
            r = 1
            for a in e.args:
                r = min(cap, r * self.terms(a))
        elif e.is_Pow:
            base, ex = e.args
            tb = self.terms(base)
            if ex.is_Integer and tb > 1:
                m = abs(int(ex))
                r = cap if m > 4 * MAX_TERMS else min(cap, math.comb(tb + m - 1, m))
            else:
                r = min(cap, tb + self.terms(ex) - 1)
        else:  # floor, ceiling, Min, Max, Mod: one term outside, its arguments expanded inside
            if e not in self.seen_funcs:
                self.seen_funcs.add(e)
                self.inner = min(cap, self.inner + sum(self.terms(a) for a in e.args))
            r = 1
        self.memo[e] = r
        return r


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------

_CLOSES = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}


class _Parser:
    def __init__(self, tokens: list[_Token], table: _SymbolTable) -> None:
        self.toks = tokens
        self.i = 0
        self.depth = 0
        self.table = table
        self.sizer = _Sizer()
        self.calls: set[tuple[Any, ...]] = set()
        self.cost = 0

    # -- helpers --------------------------------------------------------------------------
    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(f"formula nested more than {MAX_DEPTH} levels deep {_AT} "
                         f"({tok.describe()})", tok.pos)

    def leave(self) -> None:
        self.depth -= 1

    def unexpected(self, tok: _Token, expected: str | None = None) -> ArchcountError:
        if tok.kind in (OR, AND, IN):
            return _error(f"unexpected character {tok.describe()} {_AT}: one formula is expected here "
                          f"('or', ',', ';' and '∈' join the parts of an answer, not of a formula)", tok.pos)
        if tok.kind == END:
            msg = f"unexpected end of formula {_AT}"
            return _error(msg + (f"; expected {expected}" if expected else ""), tok.pos)
        return _error(f"unexpected {tok.describe()} {_AT}" + (f"; expected {expected}" if expected else ""),
                      tok.pos)

    def guard(self, expr: sp.Expr, tok: _Token) -> sp.Expr:
        """Reject huge numbers and formulas too big to expand (zeros are refused where divided)."""
        if expr.is_Rational and _bits(expr) > MAX_NUMBER_BITS:
            raise _error(f"the number made {_AT} ({tok.describe()}) has more than "
                         f"{MAX_NUMBER_BITS} bits", tok.pos)
        if self.sizer.terms(expr) > MAX_TERMS or self.sizer.inner > MAX_TERMS:
            raise _error(f"formula too large {_AT} ({tok.describe()}): expanding it could give more "
                         f"than {MAX_TERMS} terms", tok.pos,
                         hint="write the count as a sum of products of the symbols")
        return expr

    # -- arithmetic -----------------------------------------------------------------------
    def divide(self, a: sp.Expr, b: sp.Expr, tok: _Token) -> sp.Expr:
        if b.is_zero:
            raise _error(f"division by zero {_AT} ({tok.describe()})", tok.pos)
        return self.guard(sp.Mul(a, sp.Pow(b, sp.Integer(-1))), tok)

    def power(self, base: sp.Expr, ex: sp.Expr, tok: _Token) -> sp.Expr:
        if ex.is_number:
            if not ex.is_Rational:
                raise _error(f"the exponent {_AT} ({tok.describe()}) is {ex}, not a rational number",
                             tok.pos)
            if abs(ex.p) > MAX_EXPONENT or ex.q > MAX_EXPONENT:
                shown = str(ex) if len(str(ex)) <= 30 else str(ex)[:27] + "..."
                raise _error(f"exponent {shown} {_AT} ({tok.describe()}) is too large: "
                             f"at most {MAX_EXPONENT} is allowed", tok.pos)
            if base.is_zero and ex.is_negative:
                raise _error(f"division by zero {_AT} ({tok.describe()}): 0 to a negative power",
                             tok.pos)
            if base.is_Rational and ex.is_Integer and abs(int(ex.p)) * _bits(base) > MAX_NUMBER_BITS:
                raise _error(f"{base}^{ex} {_AT} is too large a number (more than "
                             f"{MAX_NUMBER_BITS} bits)", tok.pos)
        elif base.is_Rational and _bits(base) > 64:
            raise _error(f"the base {_AT} of a symbolic power ({tok.describe()}) is too large",
                         tok.pos)
        return self.guard(sp.Pow(base, ex), tok)

    def apply(self, fn: Any, args: list[sp.Expr], tok: _Token, **kwargs: Any) -> sp.Expr:
        """``fn(*args)``, metered: sympy evaluates each new function call (assumption queries,
        comparisons between min/max arguments), which costs milliseconds each, so a formula gets
        a budget of ``MAX_FUNCTIONS`` units: one per distinct floor / ceil / mod / ``//``, and one
        per pair of arguments of a min / max.  Repeats of the same call are free (cached)."""
        key = (fn, tuple(args))
        if key not in self.calls:
            self.calls.add(key)
            n = len(args)
            self.cost += n * (n - 1) // 2 if fn in (sp.Min, sp.Max) else 1
            if self.cost > MAX_FUNCTIONS:
                raise _error(f"too many different function applications (floor, ceil, min, max, "
                             f"mod, //): the budget of {MAX_FUNCTIONS} runs out {_AT} "
                             f"({tok.describe()})", tok.pos,
                             hint="each min/max costs one unit per pair of arguments")
        for a in args:
            self.guard(a, tok)
        return self.guard(fn(*args, **kwargs), tok)

    def mod(self, a: sp.Expr, b: sp.Expr, tok: _Token) -> sp.Expr:
        if b.is_zero:
            raise _error(f"modulo by zero {_AT} ({tok.describe()})", tok.pos)
        self.guard(a, tok)
        self.guard(b, tok)
        # sympy's Mod.eval factors and expands: cheap only for a numeric divisor and a small dividend
        small = b.is_Number and self.sizer.terms(a) <= _MOD_EVAL_TERMS
        return self.apply(sp.Mod, [a, b], tok, evaluate=small)

    # -- grammar --------------------------------------------------------------------------
    def parse(self) -> sp.Expr:
        expr = self.expr()
        tok = self.peek()
        if tok.kind != END:
            if tok.kind == CLOSE:
                raise _error(f"unexpected {tok.describe()} {_AT}: nothing to close", tok.pos)
            raise self.unexpected(tok)
        return expr

    def expr(self) -> sp.Expr:
        """Terms joined by + and -, summed in one ``sympy.Add`` (pairwise sums are quadratic)."""
        items = [self.term()]
        size = self.sizer.terms(items[0])
        bits = _bits(items[0]) if items[0].is_Rational else 0
        while True:
            tok = self.peek()
            if not (tok.kind == OP and tok.value in ("+", "-")):
                break
            self.take()
            right = self.term()
            if tok.value == "-":
                right = sp.Mul(sp.Integer(-1), right)
            size += self.sizer.terms(right)
            bits += _bits(right) if right.is_Rational else 0
            self.check_size(size, bits, tok)
            items.append(right)
        return items[0] if len(items) == 1 else self.guard(sp.Add(*items), self.toks[self.i - 1])

    def check_size(self, terms: int, bits: int, tok: _Token) -> None:
        if bits > MAX_NUMBER_BITS:
            raise _error(f"the numbers combined {_AT} ({tok.describe()}) would have more than "
                         f"{MAX_NUMBER_BITS} bits", tok.pos)
        if terms > MAX_TERMS:
            raise _error(f"formula too large {_AT} ({tok.describe()}): expanding it could give more "
                         f"than {MAX_TERMS} terms", tok.pos,
                         hint="write the count as a sum of products of the symbols")

    def _starts_factor(self, tok: _Token) -> bool:
        if tok.kind in (NUM, OPEN, FRAC):
            return True
        return tok.kind == WORD and tok.value != "mod"

    def term(self) -> sp.Expr:
        """Factors joined by * / (and implicit multiplication), multiplied in one ``sympy.Mul``;
        ``//``, ``%`` and ``mod`` apply to everything on their left (left to right)."""
        factors = [self.unary()]
        size = self.sizer.terms(factors[0])
        bits = _bits(factors[0]) if factors[0].is_Rational else 0

        def push(x: sp.Expr, tok: _Token) -> None:
            nonlocal size, bits
            size = min(self.sizer.cap, size * self.sizer.terms(x))
            bits += _bits(x) if x.is_Rational else 0
            self.check_size(size, bits, tok)
            factors.append(x)

        def product(tok: _Token) -> sp.Expr:
            return factors[0] if len(factors) == 1 else self.guard(sp.Mul(*factors), tok)

        while True:
            tok = self.peek()
            if tok.kind == OP and tok.value in ("*", "/", "//", "%", "mod") or (
                    tok.kind == WORD and tok.value == "mod"):
                self.take()
                right = self.unary()
                op = tok.value
                if op == "*":
                    push(right, tok)
                elif op == "/":
                    if right.is_zero:
                        raise _error(f"division by zero {_AT} ({tok.describe()})", tok.pos)
                    push(sp.Pow(right, sp.Integer(-1)), tok)
                elif op == "//":
                    quotient = self.divide(product(tok), right, tok)
                    factors = [self.apply(sp.floor, [quotient], tok)]
                    size, bits = 1, 0
                else:
                    factors = [self.mod(product(tok), right, tok)]
                    size, bits = 1, 0
            elif self._starts_factor(tok):
                prev = self.toks[self.i - 1]
                if tok.kind == NUM and prev.kind == NUM:
                    raise _error(f"two numbers in a row, {_q(prev.text)} and {_q(tok.text)} {_AT}",
                                 tok.pos, hint=f"write '{prev.text}*{tok.text}' for a product")
                push(self.power_expr(), tok)
            else:
                return product(self.toks[self.i - 1])

    def unary(self) -> sp.Expr:
        negative = False
        first = self.peek()
        while self.peek().kind == OP and self.peek().value in ("+", "-"):
            if self.take().value == "-":
                negative = not negative
        value = self.power_expr()
        return self.guard(sp.Mul(sp.Integer(-1), value), first) if negative else value

    def power_expr(self) -> sp.Expr:
        base = self.postfix()
        tok = self.peek()
        if tok.kind == OP and tok.value == "^":
            self.take()
            self.enter(tok)
            ex = self.unary()          # right-associative; allows 2^-1
            self.leave()
            return self.power(base, ex, tok)
        return base

    def postfix(self) -> sp.Expr:
        value = self.primary()
        while self.peek().kind == SUP:
            tok = self.take()
            value = self.power(value, tok.value, tok)
        return value

    def group(self, opener: _Token) -> sp.Expr:
        """After ``opener``: an expression and the matching closer."""
        self.enter(opener)
        if self.peek().kind == CLOSE and self.peek().value == opener.value:
            raise _error(f"empty brackets {_AT} ({opener.text}{self.peek().text})", opener.pos)
        value = self.expr()
        self.close(opener)
        self.leave()
        return value

    def close(self, opener: _Token) -> None:
        tok = self.peek()
        want = _CLOSER_TEXT[opener.value]
        if tok.kind == CLOSE and tok.value == opener.value:
            self.take()
            return
        if tok.kind == CLOSE:
            raise _error(f"mismatched {tok.describe()} {_AT}: expected '{want}' to close "
                         f"{_q(opener.text)} at position {opener.pos + 1}", tok.pos)
        if tok.kind == END:
            raise _error(f"missing '{want}' to close {_q(opener.text)} {_AT}", opener.pos)
        raise self.unexpected(tok, f"'{want}' to close {_q(opener.text)} at position {opener.pos + 1}")

    def primary(self) -> sp.Expr:
        tok = self.peek()
        if tok.kind == NUM:
            self.take()
            return tok.value
        if tok.kind == WORD:
            self.take()
            return self.word(tok)
        if tok.kind == OPEN:
            self.take()
            inner = self.group(tok)
            if tok.value == "floor":
                return self.apply(sp.floor, [inner], tok)
            if tok.value == "ceil":
                return self.apply(sp.ceiling, [inner], tok)
            return inner
        if tok.kind == FRAC:
            self.take()
            self.enter(tok)
            num = self.latex_arg(tok)
            den = self.latex_arg(tok)
            self.leave()
            return self.divide(num, den, tok)
        if tok.kind == CLOSE:
            raise _error(f"unexpected {tok.describe()} {_AT}; expected a number, a name or '('",
                         tok.pos)
        raise self.unexpected(tok, "a number, a name or '('")

    def latex_arg(self, frac: _Token) -> sp.Expr:
        tok = self.peek()
        if tok.kind == OPEN and tok.value == "brace":
            self.take()
            return self.group(tok)
        if tok.kind == NUM and tok.text.isdigit():
            self.take()
            if len(tok.text) > 1:   # \frac12: one digit per argument
                rest = tok.text[1:]
                self.i -= 1
                self.toks[self.i] = _Token(NUM, rest, tok.pos + 1, sp.Integer(int(rest)))
            return sp.Integer(int(tok.text[0]))
        if tok.kind == WORD and len(tok.text) == 1:
            self.take()
            return self.word(tok)
        raise _error(f"expected '{{' after {_q(frac.text)} at position {frac.pos + 1}, "
                     f"found {tok.describe()} {_AT}", tok.pos)

    def word(self, tok: _Token) -> sp.Expr:
        name = tok.value
        nxt = self.peek()
        if name in FUNCTIONS:
            if nxt.kind != OPEN or nxt.value not in ("paren", "bracket", "brace"):
                raise _error(f"expected '(' after the function {_q(tok.text)} {_AT}", tok.pos)
            return self.call(tok)
        sym = self.table.lookup(name)
        if sym is not None:
            return sym
        raise self.table.unknown(tok, as_function=(nxt.kind == OPEN and nxt.value == "paren"))

    def call(self, name_tok: _Token) -> sp.Expr:
        builder, lo, hi = FUNCTIONS[name_tok.value]
        opener = self.take()
        self.enter(opener)
        args: list[sp.Expr] = []
        while True:
            args.append(self.expr())
            if len(args) > hi:
                raise _error(f"{_q(name_tok.text)} {_AT} takes at most {hi} argument"
                             f"{'s' if hi > 1 else ''}", name_tok.pos)
            if self.peek().kind == COMMA:
                self.take()
                continue
            break
        self.close(opener)
        self.leave()
        if len(args) < lo:
            raise _error(f"{_q(name_tok.text)} {_AT} takes "
                         f"{'exactly' if lo == hi else 'at least'} {lo} argument{'s' if lo > 1 else ''}, "
                         f"got {len(args)}", name_tok.pos)
        if builder == "Mod":
            return self.mod(args[0], args[1], name_tok)
        fn = {"floor": sp.floor, "ceiling": sp.ceiling, "Min": sp.Min, "Max": sp.Max}[builder]
        return self.apply(fn, args, name_tok)


def _strip_delimiters(tokens: list[_Token]) -> list[_Token]:
    if tokens and tokens[0].kind == DELIM:
        first = tokens[0]
        want = _CLOSES.get(first.value)
        if want is None:
            raise _error(f"unexpected {first.describe()} {_AT}", first.pos)
        if len(tokens) < 2 or tokens[-1].kind != DELIM or tokens[-1].value != want:
            raise _error(f"unbalanced {_q(first.text)} {_AT}: the formula must end with {_q(want)}",
                         first.pos)
        tokens = tokens[1:-1]
    for tok in tokens:
        if tok.kind == DELIM:
            raise _error(f"unexpected {tok.describe()} {_AT}", tok.pos)
    return tokens


def _strip_lhs(tokens: list[_Token]) -> list[_Token]:
    eqs = [i for i, t in enumerate(tokens) if t.kind == EQ]
    if not eqs:
        return tokens
    if len(eqs) > 1:
        second = tokens[eqs[1]]
        raise _error(f"more than one '=' (the second {_AT})", second.pos,
                     hint="write a single formula, optionally as 'name = formula'")
    i = eqs[0]
    if i != 1 or tokens[0].kind != WORD:
        raise _error(f"'=' {_AT}: only a single name may stand on its left (as in 'weights = ...')",
                     tokens[i].pos)
    if i + 1 == len(tokens):
        raise _error(f"nothing after '=' {_AT}", tokens[i].pos)
    return tokens[i + 1:]


def _check_text(text: Any, max_length: Any, what: str) -> None:
    """The text is a string of at most ``max_length`` characters (refused before it is read)."""
    if not isinstance(text, str):
        raise _error(f"{what} must be text, got {type(text).__name__}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise _error(f"max_length must be a positive integer, got {max_length!r}")
    if len(text) > max_length:
        raise _error(f"formula too long: {len(text)} characters, at most {max_length} are allowed")


def parse_formula(text: str, *, symbols: Mapping[str, sp.Symbol] | None = None,
                  max_length: int = 2000) -> sp.Expr:
    """Read ``text`` (plain text or LaTeX; see the module docstring) into a sympy expression.

    ``symbols`` adds names (such as ``{"N": N}``) to the standard NIC, NF, NC, k, H, W and their
    aliases; a name that already means a different standard symbol is an error.  Text longer
    than ``max_length`` characters is refused before it is read.  Every failure is an
    :class:`~analysis.errors.ArchcountError` naming the offending token and its 1-based position.

    >>> parse_formula("k^2 (NIC NF + NF NC)")
    k**2*(NC*NF + NF*NIC)
    >>> from analysis.symbols import positive_int_symbol
    >>> parse_formula("NF 2^N", symbols={"N": positive_int_symbol("N")})
    2**N*NF
    """
    _check_text(text, max_length, "a formula")
    table = _table(symbols)
    tokens = _tokenize(text, table)
    tokens = _strip_delimiters(tokens)
    tokens = _strip_lhs(tokens)
    tokens = _strip_delimiters(tokens)
    if not tokens:
        raise _error("empty formula")
    tokens.append(_Token(END, "", len(text)))
    parser = _Parser(tokens, table)
    with _refusals():
        expr = parser.parse()
    _finish(expr)
    return expr


@contextlib.contextmanager
def _refusals() -> Any:
    """sympy refusing to build something (or a recursion limit) as an ArchcountError."""
    try:
        yield
    except ArchcountError:
        raise
    except RecursionError:
        raise _error("formula nested too deeply") from None
    except (ArithmeticError, TypeError, ValueError, AttributeError) as exc:  # sympy refusing
        raise _error(f"cannot build the formula: {type(exc).__name__}: {exc}") from None


def _finish(expr: sp.Expr) -> None:
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):  # pragma: no cover - zeros are caught on the way
        raise _error("the formula is not finite (division by zero)")
    _check_exponents(expr)


def _check_exponents(expr: sp.Expr) -> None:
    """No power in the finished formula beyond the limit (``NF^40 NF^40`` becomes ``NF^80``)."""
    for p in expr.atoms(sp.Pow):
        ex = p.exp
        if ex.is_Rational and (abs(ex.p) > MAX_EXPONENT or ex.q > MAX_EXPONENT):
            shown = sp.sstr(p)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise _error(f"the formula contains {shown}: exponents are limited to {MAX_EXPONENT} "
                         f"(after like factors are combined)")


def parse_number_or_formula(value: Any, *, symbols: Mapping[str, sp.Symbol] | None = None,
                            max_length: int = 2000) -> sp.Expr:
    """A number or a formula: ints, Fractions, finite floats (read as written: ``0.1`` is
    ``1/10``), sympy expressions (returned as they are) and text (:func:`parse_formula`).

    >>> parse_number_or_formula(0.25), parse_number_or_formula("3 NF")
    (1/4, 3*NF)
    """
    if isinstance(value, bool):
        raise _error(f"expected a number or a formula, got {value!r}")
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _error(f"not a finite number: {value!r}")
        fr = Fraction(repr(value))
        return sp.Rational(fr.numerator, fr.denominator)
    if isinstance(value, sp.Expr):
        return value
    if isinstance(value, str):
        return parse_formula(value, symbols=symbols, max_length=max_length)
    raise _error(f"expected a number or a formula, got {type(value).__name__}")


# the answer forms (relations, alternatives, chains) and the limits for sympy input live in
# analysis.answers, on top of this parser; they are re-exported here (on first use)
_ANSWERS = ("MAX_ALTERNATIVES", "MAX_CONJUNCTS", "MAX_SIDES", "Answer", "Chain", "check_limits", "parse_answer")


def __getattr__(name: str) -> Any:
    if name in _ANSWERS:
        from . import answers
        return vars(answers)[name]
    raise AttributeError(f"module 'analysis.parsing' has no attribute {name!r}")
