"""The model and input arguments shared by ``count``, ``rf`` and ``verify``.

A model is a zoo name, ``path/to/file.py:NAME`` or ``package.module:NAME`` (that imports and runs
the user's code); ``--input 3x224x224`` (repeatable for several inputs, symbols allowed:
``3xHxW``) describes the input.
"""
from __future__ import annotations

import argparse
import re
from typing import Any

from analysis.errors import ArchcountError

MODEL_HELP = ("a zoo model (see 'archcount models'), path/to/file.py:NAME or package.module:NAME "
              "(NAME: an nn.Module class, a factory or an instance; this imports and runs that code)")


def add_model_arg(p: argparse.ArgumentParser, *, positional: bool = True) -> None:
    if positional:
        p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--model", dest="model_opt", metavar="MODEL", help="the same as the positional MODEL")


def add_input_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", action="append", default=[], metavar="CxHxW",
                   help="input shape per sample, e.g. 3x224x224 or 3xHxW (repeat for several inputs); "
                        "the channels are inferred only when no shape is given")


def model_from(args: argparse.Namespace, required: bool = True) -> tuple[str, Any]:
    """(label, model) from the positional MODEL or --model; user code is imported here."""
    from models.user import resolve_model
    pos = getattr(args, "model", None)
    opt = getattr(args, "model_opt", None)
    if pos and opt:
        raise ArchcountError("give the model once: as MODEL or as --model", argument="--model")
    text = pos or opt
    if not text:
        if required:
            raise ArchcountError("a model is required: a zoo name, path/to/file.py:NAME or package.module:NAME",
                                 argument="--model")
        return "", None
    return resolve_model(text)


_DIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_input(text: str) -> tuple[Any, ...]:
    """``3x224x224`` -> (3, 224, 224); ``3xHxW`` -> (3, H, W) with positive-integer symbols.

    >>> parse_input("3xHxW")
    (3, H, W)
    """
    from analysis.counting import MAX_SIZE
    from analysis.symbols import ALIASES, positive_int_symbol
    body = text.strip().lower().replace("×", "x") if text else ""
    parts = [p.strip() for p in re.split(r"[x,*]", text.strip().replace("×", "x"))] if body else []
    if not parts or any(not p for p in parts):
        raise ArchcountError(f"expected a shape like 3x224x224 or 3xHxW, got {text!r}", argument="--input")
    dims: list[Any] = []
    for part in parts:
        if part.isdigit():
            if len(part) > 19 or int(part) > MAX_SIZE:
                raise ArchcountError(f"dimensions must be at most 10^18, got {part[:40]}", argument="--input")
            value = int(part)
            if value < 1:
                raise ArchcountError(f"dimensions must be >= 1, got {value}", argument="--input")
            dims.append(value)
        elif _DIM.match(part) and len(part) <= 16:
            dims.append(ALIASES.get(part, positive_int_symbol(part)))
        else:
            raise ArchcountError(f"cannot read dimension {part!r} of {text!r}", argument="--input")
    return tuple(dims)


def input_shape_from(args: argparse.Namespace) -> Any:
    items = getattr(args, "input", None) or []
    if not items:
        return None
    shapes = [parse_input(t) for t in items]
    return shapes[0] if len(shapes) == 1 else shapes
