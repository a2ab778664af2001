r"""Read a written answer, safely: a formula, a relation, chained working or alternatives, on top of
the formula grammar of :mod:`analysis.parsing` (same tokens, same limits, never ``eval``); and
:func:`check_limits`, the parser's limits for a sympy expression passed in instead of text.

>>> import sympy as sp
>>> p, op = sp.symbols("p op")
>>> a = parse_answer(r"2 \cdot p - op = 2 \lor p = 1, op = 0", unknowns={"p": p, "op": op})
>>> a.form, [[c.sides for c in alt] for alt in a.alternatives]
('alternatives', [[(-op + 2*p, 2)], [(p, 1), (op, 0)]])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sympy as sp

from .parsing import (AND, CLOSE, COMMA, END, EQ, FUNCTIONS, IN, MAX_DEPTH, MAX_EXPONENT, MAX_FUNCTIONS,
                      MAX_NUMBER_BITS, MAX_TERMS, OPEN, OR, WORD, _AT, _bits, _check_text, _error, _finish, _Parser,
                      _refusals, _SymbolTable, _Sizer, _strip_delimiters, _table, _Token, _tokenize)

MAX_NODES = 20_000         #: most nodes visited when checking a sympy expression passed in
MAX_SIDES = 16             #: most sides of one chain ``a = b = c ...``
MAX_ALTERNATIVES = 16      #: most alternatives (after ``x ∈ {...}`` is expanded)
MAX_CONJUNCTS = 8          #: most relations joined by ``,``, ``;`` or ``and`` in one alternative


@dataclass(frozen=True)
class Chain:
    """``a = b = c``: the sides (sympy expressions) and their source text; one side is an expression.

    ``label`` is a leading word dropped as a name (``weights = ...``), or None.
    """

    sides: tuple[sp.Expr, ...]
    texts: tuple[str, ...]
    label: str | None = None

    @property
    def text(self) -> str:
        return " = ".join(self.texts)


@dataclass(frozen=True)
class Answer:
    """A written answer: alternatives (``or``), each a conjunction (``,`` ``;`` ``and``) of chains.

    ``form`` is ``expression`` (one formula), ``chain`` (``a = b = c`` without unknowns: worked
    steps), ``relation`` (one condition on the unknowns, such as ``2p - op = 2``), ``system``
    (several conditions, ``p = 1, op = 0``) or ``alternatives`` (``p = 1 or p = 2``, ``p ∈ {1, 2}``).

    >>> parse_answer("32 * 32 * NC = 1024NC").form
    'chain'
    >>> from analysis.symbols import positive_int_symbol
    >>> p = positive_int_symbol("p")
    >>> a = parse_answer("p ∈ {1, 2}", unknowns={"p": p})
    >>> a.form, [alt[0].text for alt in a.alternatives]
    ('alternatives', ['p = 1', 'p = 2'])
    """

    text: str
    alternatives: tuple[tuple[Chain, ...], ...]
    unknowns: tuple[sp.Symbol, ...] = ()

    @property
    def form(self) -> str:
        if len(self.alternatives) > 1:
            return "alternatives"
        conj = self.alternatives[0]
        if len(conj) > 1:
            return "system"
        chain = conj[0]
        if len(chain.sides) == 1:
            return "expression"
        unknown = set(self.unknowns)
        if unknown and any(side.free_symbols & unknown for side in chain.sides):
            return "relation"
        return "chain"

    @property
    def expression(self) -> sp.Expr:
        """The formula of an ``expression`` answer (else the last side of a ``chain``)."""
        return self.alternatives[0][0].sides[-1]


def _split(tokens: list[_Token], kinds: tuple[str, ...], words: tuple[str, ...] = ()) -> list[list[_Token]]:
    """Split at tokens of ``kinds`` (or WORD tokens in ``words``) outside brackets."""
    parts: list[list[_Token]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == OPEN:
            depth += 1
        elif tok.kind == CLOSE:
            depth -= 1
        if depth == 0 and (tok.kind in kinds or (tok.kind == WORD and str(tok.value).lower() in words)):
            parts.append([])
            parts[-1].append(tok)   # the separator leads the next part (for messages)
            continue
        parts[-1].append(tok)
    return parts


def _body(part: list[_Token], first: bool) -> tuple[_Token | None, list[_Token]]:
    """(separator, tokens) of a part made by :func:`_split`."""
    if first:
        return None, part
    return part[0], part[1:]


def _parse_side(tokens: list[_Token], end: int, table: "_SymbolTable", text: str, what: str,
                at: int) -> tuple[sp.Expr, str]:
    if not tokens:
        raise _error(f"nothing {what} {_AT}", at)
    toks = list(tokens) + [_Token(END, "", end)]
    expr = _Parser(toks, table).parse()
    start = tokens[0].pos
    stop = tokens[-1].pos + max(len(tokens[-1].text), 1)
    return expr, " ".join(text[start:stop].split())


def _chain(tokens: list[_Token], table: "_SymbolTable", text: str, unknowns: set[sp.Symbol],
           end: int) -> Chain:
    parts = _split(tokens, (EQ,))
    if len(parts) > MAX_SIDES:
        raise _error(f"more than {MAX_SIDES} '=' in one chain (the {MAX_SIDES}th {_AT})", parts[MAX_SIDES][0].pos)
    label = None
    if len(parts) > 1:
        head = parts[0]
        if len(head) == 1 and head[0].kind == WORD and head[0].value not in FUNCTIONS:
            sym = table.lookup(head[0].value)
            if sym is None or sym not in unknowns:
                label = head[0].text
    sides: list[sp.Expr] = []
    texts: list[str] = []
    for i, part in enumerate(parts):
        sep, body = _body(part, i == 0)
        if i == 0 and label is not None:
            continue
        stop = parts[i + 1][0].pos if i + 1 < len(parts) else end
        where = "before '='" if sep is None else "after '='"
        at = sep.pos if sep is not None else (parts[1][0].pos if len(parts) > 1 else end)
        expr, src = _parse_side(body, stop, table, text, where, at)
        sides.append(expr)
        texts.append(src)
    return Chain(tuple(sides), tuple(texts), label)


def _members(tokens: list[_Token], table: "_SymbolTable", text: str, end: int) -> list[tuple[sp.Expr, str]]:
    """The elements of ``{a, b, ...}`` after ``∈``."""
    if not tokens or tokens[0].kind != OPEN or tokens[-1].kind != CLOSE or tokens[0].value != tokens[-1].value:
        at = tokens[0].pos if tokens else end
        raise _error(f"expected a set such as {{1, 2}} after '∈' {_AT}", at)
    inner = tokens[1:-1]
    out = []
    for i, part in enumerate(_split(inner, (COMMA,))):
        sep, body = _body(part, i == 0)
        at = sep.pos if sep is not None else tokens[0].pos
        out.append(_parse_side(body, tokens[-1].pos, table, text, "in the set", at))
    return out


def parse_answer(text: str, *, symbols: Mapping[str, sp.Symbol] | None = None,
                 unknowns: Mapping[str, sp.Symbol] | None = None, max_length: int = 2000) -> Answer:
    r"""Read a written answer: a formula, a relation, chained working or alternatives (safely).

    ``unknowns`` (name -> symbol, e.g. ``{"p": p, "op": op}``) are the quantities a relation is
    about; they are known names too.  Alternatives are joined by ``or`` (``\lor``, ``∨``), or written
    ``x ∈ {a, b}`` (``\in \{a, b\}``); relations in one alternative by ``,``, ``;`` or ``and``;
    ``=`` may repeat (``a = b = c``).  A single word before the first ``=`` that is not an unknown
    is a label and dropped (``weights = ...``).  Every side is read by the formula grammar of
    :func:`parse_formula`, with its limits.

    >>> a = parse_answer("weights = 9 NIC NF + 18 NF^2 = 9 NF (NIC + 2 NF)")
    >>> a.form, a.alternatives[0][0].label, len(a.alternatives[0][0].sides)
    ('chain', 'weights', 2)
    """
    _check_text(text, max_length, "an answer")
    names = dict(symbols or {})
    names.update(unknowns or {})
    table = _table(names or None)
    unknown_syms = set((unknowns or {}).values())
    tokens = _strip_delimiters(_tokenize(text, table))
    if not tokens:
        raise _error("empty formula")
    end = len(text)
    alternatives: list[tuple[Chain, ...]] = []
    with _refusals():
        for i, part in enumerate(_split(tokens, (OR,), ("or",))):
            sep, body = _body(part, i == 0)
            if not body:
                at = sep.pos if sep is not None else 0
                raise _error(f"nothing {'after' if sep is not None else 'before'} 'or' {_AT}", at)
            stop = end
            options: list[list[Chain]] = [[]]
            conjuncts = _split(body, (AND, COMMA), ("and",))
            if len(conjuncts) > MAX_CONJUNCTS:
                raise _error(f"more than {MAX_CONJUNCTS} relations in one alternative {_AT}",
                             conjuncts[MAX_CONJUNCTS][0].pos)
            for j, cpart in enumerate(conjuncts):
                csep, cbody = _body(cpart, j == 0)
                if not cbody:
                    at = csep.pos if csep is not None else body[0].pos
                    raise _error(f"empty relation {_AT}", at)
                ins = _split(cbody, (IN,))
                cstop = conjuncts[j + 1][0].pos if j + 1 < len(conjuncts) else stop
                if len(ins) == 1:
                    chain = _chain(cbody, table, text, unknown_syms, cstop)
                    options = [opt + [chain] for opt in options]
                    continue
                if len(ins) > 2:
                    raise _error(f"more than one '∈' {_AT}", ins[2][0].pos)
                left_tokens = ins[0]
                lhs, lhs_text = _parse_side(left_tokens, ins[1][0].pos, table, text, "before '∈'", ins[1][0].pos)
                members = _members(ins[1][1:], table, text, cstop)
                options = [opt + [Chain((lhs, m), (lhs_text, m_text))] for opt in options for m, m_text in members]
                if len(options) * (len(alternatives) + 1) > MAX_ALTERNATIVES:
                    raise _error(f"more than {MAX_ALTERNATIVES} alternatives {_AT}", ins[1][0].pos)
            alternatives.extend(tuple(opt) for opt in options)
            if len(alternatives) > MAX_ALTERNATIVES:
                raise _error(f"more than {MAX_ALTERNATIVES} alternatives {_AT}", part[0].pos)
    for alt in alternatives:
        for chain in alt:
            for side in chain.sides:
                _finish(side)
    return Answer(text, tuple(alternatives), tuple(dict.fromkeys((unknowns or {}).values())))


def check_limits(expr: Any) -> None:
    """Apply the parser's limits to an expression built elsewhere (a sympy object passed in).

    The same bounds as for text: exponents, number sizes, nesting, the function budget and the
    estimated size of the expanded formula; a formula too large is refused before anything
    expands it.  The walk itself is bounded (``MAX_NODES`` visits), so shared subtrees cannot
    make it slow.

    >>> from analysis.symbols import NIC, NF, NC, k, H, W
    >>> check_limits(9 * NIC * NF + 36 * NF**2)
    >>> check_limits((NIC + NF + NC + k + H + W)**64)
    Traceback (most recent call last):
        ...
    analysis.errors.ArchcountError: formula too large: expanding it could give more than 512 terms. write ...
    """
    if not isinstance(expr, sp.Basic):
        return
    sizer = _Sizer()
    stack: list[tuple[sp.Basic, int]] = [(expr, 1)]
    visits = 0
    funcs: set[sp.Basic] = set()
    cost = 0
    while stack:
        node, depth = stack.pop()
        visits += 1
        if visits > MAX_NODES:
            raise _error(f"formula too large: more than {MAX_NODES} nodes")
        if depth > 4 * MAX_DEPTH:
            raise _error(f"formula nested more than {4 * MAX_DEPTH} levels deep")
        if node.is_Rational and _bits(node) > MAX_NUMBER_BITS:
            raise _error(f"a number in the formula has more than {MAX_NUMBER_BITS} bits")
        if node.is_Pow and node.exp.is_Rational and (abs(node.exp.p) > MAX_EXPONENT or node.exp.q > MAX_EXPONENT):
            raise _error(f"exponent {_shorten(sp.sstr(node.exp))} is too large: at most {MAX_EXPONENT} is allowed")
        if isinstance(node, (sp.Function, sp.Min, sp.Max)) and node not in funcs:
            funcs.add(node)
            n = len(node.args)
            cost += n * (n - 1) // 2 if isinstance(node, (sp.Min, sp.Max)) else 1
            if cost > MAX_FUNCTIONS:
                raise _error(f"too many different function applications (floor, ceil, min, max, mod): "
                             f"more than {MAX_FUNCTIONS}")
        stack.extend((a, depth + 1) for a in node.args)
    if sizer.terms(expr) > MAX_TERMS or sizer.inner > MAX_TERMS:
        raise _error(f"formula too large: expanding it could give more than {MAX_TERMS} terms",
                     hint="write the count as a sum of products of the symbols")


def _shorten(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


__all__ = ["MAX_ALTERNATIVES", "MAX_CONJUNCTS", "MAX_NODES", "MAX_SIDES", "Answer", "Chain", "check_limits",
           "parse_answer"]
