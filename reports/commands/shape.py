"""``archcount shape``: the exact output shape of a layer (or a chain of layers) written as text."""
from __future__ import annotations

import argparse
import json
import re

from analysis.bounds import MAX_INT_TEXT
from analysis.errors import ArchcountError
from analysis.layertext import SYNTAX_HELP, chain_output_shape, format_shape, format_value, parse_shape

EPILOG = SYNTAX_HELP + """

examples:
  archcount shape "conv k=5 s=2 p=1 out=16" --input 3x1024x768
  archcount shape "conv k=3 s=2 p=1 out=16 -> relu -> maxpool k=2" --input 3x64x64
  archcount shape "tconv k=4 s=2 p=1 out=8" "upsample x1.5" --input 16x32x32 --json
  archcount shape "conv k=3 out=NF" --input NICxHxW

Each axis shows the formula with the numbers put in, and how many input rows/columns the
floor division leaves unread (no window covers them)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shape", help="exact output shape of a layer or chain written as text, with the floor shown",
        description="The exact output shape of one layer, or of several chained with ';' or '->', for an "
                    "input shape; each spatial axis shows the formula with its numbers and any rows the "
                    "floor division drops.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("layers", nargs="+", metavar="LAYER",
                   help="a layer such as \"conv k=5 s=2 p=1 out=16\"; several arguments (or ';'/'->') chain")
    p.add_argument("--input", required=True, metavar="SHAPE", help="input shape: HxW, CxHxW or NxCxHxW")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


#: A run of this many digits is far beyond the largest size (10^18): refused before any parsing, since
#: Python will not even convert a 4301-digit string to an int.
_LONG_NUMBER = re.compile(r"(?:(\w+)\s*=\s*)?[+-]?\d{40,}")


def _refuse_long_numbers(args: argparse.Namespace) -> None:
    """An error naming ``--input`` or the layer key whose number has far more digits than 10^18."""
    for text in [args.input, *args.layers]:
        match = _LONG_NUMBER.search(text)
        if match is None:
            continue
        digits = sum(ch.isdigit() for ch in match.group(0)[len(match.group(1) or ""):])
        reason = f"a {digits}-digit number; every size and layer parameter must be at most {MAX_INT_TEXT}"
        if text is args.input:
            raise ArchcountError(reason, argument="--input")
        raise ArchcountError(reason, argument=f"{match.group(1)}=" if match.group(1) else "LAYER",
                             layer=text if len(text) <= 80 else text[:77] + "...")


def run(args: argparse.Namespace) -> int:
    _refuse_long_numbers(args)
    try:
        shape = parse_shape(args.input)
        answers = chain_output_shape(" ; ".join(args.layers), shape)
    except ArchcountError as exc:
        if exc.argument == "input":
            raise ArchcountError(exc.reason, argument="--input", layer=exc.layer, shapes=exc.shapes,
                                 hint=exc.hint) from None
        raise
    output = answers[-1].output_shape
    if args.json:
        print(json.dumps({"input": answers[0].to_dict()["input"],
                          "output": answers[-1].to_dict()["output"],
                          "output_text": format_shape(output),
                          "steps": [a.to_dict() for a in answers]}, indent=2))
        return 0
    print(f"input  {format_shape(shape)}")
    for answer in answers:
        print(answer.explain())
    lost = [(a.layer, st.axis, st.dropped) for a in answers for st in a.axes
            if st.dropped is not None and st.dropped != 0]
    print(f"output {format_shape(output)}")
    if lost:
        where = "; ".join(f"{layer} drops {format_value(d)} on {axis}" for layer, axis, d in lost)
        print(f"dropped input (floor loss): {where}")
    else:
        print("dropped input (floor loss): none; every input row and column is read")
    return 0
