"""``archcount padding``: the paddings that keep, halve or double a size, exactly."""
from __future__ import annotations

import argparse
import json
import re
from typing import Any

import sympy as sp

from analysis.errors import ArchcountError
from analysis.layertext import LayerText, arithmetic
from analysis.shapes import (PaddingSolution, general_padding_formulas, output_size, padding_table,
                             solve_padding)
from analysis.symbols import k as K_SYMBOL

EPILOG = """\
examples:
  archcount padding                               table for k = 1..7 and the general formulas
  archcount padding --kernel 4 --stride 2         stride-2 conv halving: p = 1, and only that
  archcount padding --kernel 4 --stride 2 --transposed
                                                  doubling: (padding, output_padding) = (1, 0)
  archcount padding --kernel k --stride 2 --transposed
                                                  symbolic k: by parity, and as one formula
  archcount padding --kernel 3 --stride 2 --scale 1/2 --dilation 2

--scale is out/in and defaults to 1/stride (conv) or stride (transposed); no other scale can
hold for every input size.  Solutions for a conv hold for every input divisible by the stride."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "padding", help="paddings that keep, halve or double the size (table, one kernel, or symbolic k)",
        description="Every integer (padding, output_padding) for which a conv or transposed conv gives "
                    "out = scale*in for all input sizes of a class, or why there is none.  Without "
                    "--kernel: the table for k = 1..7 and the general formulas.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernel", metavar="K", help="kernel size, or the letter k for the symbolic answer")
    p.add_argument("--stride", type=int, metavar="S", help="stride (default 1)")
    p.add_argument("--dilation", type=int, metavar="D", help="dilation (default 1)")
    p.add_argument("--transposed", action="store_true", help="a transposed conv (ConvTranspose2d)")
    p.add_argument("--scale", metavar="R", help="out/in, e.g. 2, 1/2 or 0.5 (default: stride or 1/stride)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


#: Solutions listed one by one; a longer family shows its first three and last two.
SHOWN = 12


def _flag_errors(exc: ArchcountError) -> ArchcountError:
    """The same error with the argument written as its command-line flag."""
    flags = {"kernel": "--kernel", "stride": "--stride", "dilation": "--dilation", "scale": "--scale"}
    if exc.argument in flags:
        return ArchcountError(exc.reason, argument=flags[exc.argument], layer=exc.layer, model=exc.model,
                              shapes=exc.shapes, hint=exc.hint)
    return exc


def _parse_kernel(text: str) -> Any:
    text = text.strip()
    if text in ("k", "K"):
        return K_SYMBOL
    if re.fullmatch(r"[+-]?\d{20,}", text):
        raise ArchcountError(f"must be at most 10^18, got a {len(text.lstrip('+-'))}-digit number",
                             argument="--kernel")
    try:
        return int(text)
    except ValueError:
        raise ArchcountError(f"must be an integer >= 1 or the letter k (symbolic), got {text!r}",
                             argument="--kernel") from None


def pretty(expr: Any) -> str:
    """A formula in k, written the way people write it: ``floor((k-1)/2)``, ``k mod 2``.

    >>> pretty(sp.floor((K_SYMBOL - 1) / 2)), pretty(K_SYMBOL - 2 * sp.floor(K_SYMBOL / 2)), pretty(3)
    ('floor((k-1)/2)', 'k mod 2', '3')
    """
    if not isinstance(expr, sp.Basic) or expr.is_number:
        return str(expr)
    k = K_SYMBOL
    known = [("floor((k-1)/2)", sp.floor((k - 1) / 2)), ("floor(k/2)", sp.floor(k / 2)),
             ("k mod 2", k - 2 * sp.floor(k / 2)), ("(k-1)/2", (k - 1) / 2), ("k/2 - 1", k / 2 - 1),
             ("k/2", k / 2), ("k - 1", k - 1)]
    for text, form in known:
        if all(sp.simplify(expr.subs(k, v) - form.subs(k, v)) == 0 for v in range(1, 13)):
            return text
    return sp.sstr(expr)


def _title(sol: PaddingSolution) -> str:
    what = f"stride-{sol.stride} {'transposed conv' if sol.transposed else 'conv'}"
    kern = f"kernel {sol.kernel}" + (" (symbolic)" if isinstance(sol.kernel, sp.Basic) else "")
    dil = f", dilation {sol.dilation}" if sol.dilation != 1 else ""
    num, den = sp.fraction(sol.scale)
    scale = ("" if num == 1 else f"{num}*") + "in" + ("" if den == 1 else f"/{den}")
    return f"{what}, {kern}{dil}: out = {scale}"


def _example(sol: PaddingSolution, padding: int, op: int) -> str:
    n = 16 if sol.transposed else 8 * sol.stride
    kind = "transposed" if sol.transposed else "conv"
    res = output_size(kind, n, sol.kernel, sol.stride, padding, sol.dilation, op)
    layer = LayerText(kind, kind, kernel=sol.kernel, stride=sol.stride, padding=padding, dilation=sol.dilation,
                      output_padding=op)
    return arithmetic(layer, n, res, sol.kernel, sol.stride, padding, sol.dilation, op)


def _pair(p: Any, op: Any, transposed: bool) -> str:
    return f"padding = {pretty(p)}, output_padding = {pretty(op)}" if transposed else f"padding = {pretty(p)}"


def _print_solution(sol: PaddingSolution) -> None:
    print(_title(sol))
    print(f"valid for: {sol.valid_for}")
    symbolic = isinstance(sol.kernel, sp.Basic)
    if symbolic:
        for parity in ("odd", "even"):
            forms = sol.by_parity.get(parity, ())
            text = "; ".join(_pair(p, op, sol.transposed) for p, op in forms) or "no solution"
            print(f"  {parity} k: {text}")
        if sol.solutions:
            for p, op in sol.solutions:
                print(f"  any k: {_pair(p, op, sol.transposed)}")
    elif sol.solutions:
        count = len(sol.solutions)
        print(f"{count} solutions:" if count > 1 else "the only solution:")
        shown = range(count) if count <= SHOWN else (0, 1, 2, count - 2, count - 1)
        for i in shown:
            p, op = sol.solutions[i]
            value = f"(padding, output_padding) = ({p}, {op})" if sol.transposed else f"padding = {p}"
            print(f"  {value}   e.g. {_example(sol, p, op)}")
            if count > SHOWN and i == 2:
                gap = ("padding by 1 and output_padding by 2" if sol.transposed else "padding by 1")
                print(f"  ... {count - 5} more in between, each step adding {gap}")
    if sol.reason:
        print(f"{'no solution' if not sol.ok else 'note'}: {sol.reason}")


def _symbolic_rows() -> dict[str, PaddingSolution]:
    return {"stride-1 conv keeping size": solve_padding(K_SYMBOL, stride=1),
            "stride-2 conv halving": solve_padding(K_SYMBOL, stride=2),
            "stride-2 transposed doubling": solve_padding(K_SYMBOL, stride=2, transposed=True)}


def _print_table() -> None:
    rows = padding_table()
    heads = ["k", "stride-1 conv keeping size", "stride-2 conv halving (even in)",
             "stride-2 transposed doubling (p, op)"]
    keys = ["kernel", "stride-1 conv keeping size", "stride-2 conv halving", "stride-2 transposed doubling"]

    def cell(key: str, value: Any) -> str:
        if key == "kernel":
            return str(value)
        if not value:
            return "none"
        if key == "stride-2 transposed doubling":
            return ", ".join(f"({p}, {op})" for p, op in value)
        return ", ".join(f"p={p}" for p in value)

    cells = [[cell(key, row[key]) for key in keys] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = lambda values: " | ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    print("Paddings that keep, halve or double the size (dilation 1):")
    print(line(heads))
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(line(c))
    print()
    print("Symbolic kernel k:")
    for name, sol in _symbolic_rows().items():
        if sol.solutions:
            text = "; ".join(_pair(p, op, sol.transposed) for p, op in sol.solutions)
        else:
            parts = []
            for parity in ("odd", "even"):
                forms = sol.by_parity.get(parity, ())
                parts.append(f"{parity} k: " + ("; ".join(_pair(p, op, sol.transposed) for p, op in forms)
                                                or "none"))
            text = ", ".join(parts)
        print(f"  {name}: {text}")
        if sol.reason:
            print(f"    ({sol.reason})")
    print()
    print("General formulas:")
    for formula in general_padding_formulas():
        print(f"  - {formula}")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ArchcountError as exc:
        raise _flag_errors(exc) from None


def _run(args: argparse.Namespace) -> int:
    if args.kernel is None:
        given = [f for f, v in (("--stride", args.stride), ("--dilation", args.dilation), ("--scale", args.scale))
                 if v is not None] + (["--transposed"] if args.transposed else [])
        if given:
            raise ArchcountError(f"needed with {', '.join(given)}: give a number, or k for the symbolic answer "
                                 f"(without any option the table for k = 1..7 is printed)", argument="--kernel")
        if args.json:
            print(json.dumps({"table": padding_table(),
                              "symbolic": {n: s.to_dict() for n, s in _symbolic_rows().items()},
                              "general": list(general_padding_formulas())}, indent=2))
        else:
            _print_table()
        return 0
    kernel = _parse_kernel(args.kernel)
    sol = solve_padding(kernel, stride=1 if args.stride is None else args.stride,
                        dilation=1 if args.dilation is None else args.dilation, transposed=args.transposed,
                        scale=args.scale)
    if args.json:
        data = sol.to_dict()
        data["ok"] = sol.ok
        print(json.dumps(data, indent=2))
    else:
        _print_solution(sol)
    return 0
