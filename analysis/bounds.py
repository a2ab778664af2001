"""Bounds on the integers and numbers a user types: every accepted value is answered in closed form.

Sizes, kernels, strides, paddings and dilations may be as large as :data:`MAX_INT` (10^18; torch's
sizes are int64, below 9.3e18).  Larger ones are refused with an error that names the argument,
so no arithmetic on a 5000-digit integer (or a string that expands to one) ever starts.

>>> parse_exact_number("1.5e3", "target")
1500
>>> parse_exact_number("1e999999999", "target")
Traceback (most recent call last):
...
analysis.errors.ArchcountError: argument target: the exponent of '1e999999999' is too large (at most 100)
"""
from __future__ import annotations

import numbers
import re
from fractions import Fraction
from typing import Any

import sympy as sp

from .errors import ArchcountError

#: The largest size, kernel, stride, padding or dilation accepted (torch's sizes are int64, < 9.3e18).
MAX_INT = 10 ** 18
MAX_INT_TEXT = "10^18"


def bounded_int(value: Any, argument: str, *, minimum: int | None = None, maximum: int = MAX_INT) -> int:
    """``value`` as an int in ``[minimum, maximum]``, or an ArchcountError naming ``argument``.

    Accepts ints, integral numbers and numeric integer sympy values; rejects bools, floats,
    symbols and text.

    >>> bounded_int(sp.Integer(7), "kernel", minimum=1)
    7
    >>> bounded_int(10**30, "stride")
    Traceback (most recent call last):
    ...
    analysis.errors.ArchcountError: argument stride: must be at most 10^18, got 1000000000000000000000000000000
    """
    if isinstance(value, bool):
        raise ArchcountError(f"must be an integer, got {value!r}", argument=argument)
    if isinstance(value, sp.Basic):
        if not (value.is_number and value.is_integer):
            raise ArchcountError(f"must be an integer, got {value}", argument=argument)
        value = int(value)
    elif isinstance(value, numbers.Integral):
        value = int(value)
    else:
        raise ArchcountError(f"must be an integer, got {_short(value)}", argument=argument)
    check_bounds(value, argument, minimum=minimum, maximum=maximum)
    return value


def check_bounds(value: int, argument: str, *, minimum: int | None = None, maximum: int = MAX_INT) -> None:
    """Raise an ArchcountError naming ``argument`` unless ``minimum <= value <= maximum`` (and > -maximum)."""
    if minimum is not None and value < minimum:
        raise ArchcountError(f"must be >= {minimum}, got {_short(value)}", argument=argument)
    if abs(value) > maximum:
        bound = MAX_INT_TEXT if maximum == MAX_INT else str(maximum)
        raise ArchcountError(f"must be at most {bound}{' in size' if value < 0 else ''}, got {_short(value)}",
                             argument=argument)


def _short(value: Any) -> str:
    """``repr`` of a value, shortened (huge integers by their number of digits, never str()-ed whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 40:
        return f"a number of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."



_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?\d+/\d+$")


def parse_exact_number(text: str, argument: str, *, max_exponent: int = 100, max_length: int = 1000) -> sp.Rational:
    """An exact rational from ``12``, ``-3/4``, ``0.25``, ``1e6`` or ``1_000`` (nothing else is evaluated).

    The text's length and decimal exponent are bounded before any arithmetic.

    >>> parse_exact_number("3/4", "scale"), parse_exact_number("1_000", "target")
    (3/4, 1000)
    """
    if not isinstance(text, str):
        raise ArchcountError(f"must be a number written as text, got {_short(text)}", argument=argument)
    body = text.strip().replace("_", "")
    if len(body) > max_length:
        raise ArchcountError(f"is {len(body)} characters long; write a number of at most {max_length} characters",
                             argument=argument)
    if not _NUMBER.match(body):
        raise ArchcountError(f"must be a number such as 12, 3/4, 0.25 or 1e6, got {_short(text)}",
                             argument=argument)
    exponent = re.search(r"[eE]([+-]?\d+)$", body)
    if exponent and abs(int(exponent.group(1))) > max_exponent:
        raise ArchcountError(f"the exponent of {_short(text)} is too large (at most {max_exponent})",
                             argument=argument)
    try:
        value = Fraction(body)
    except (ValueError, ZeroDivisionError):
        raise ArchcountError(f"must be a number with a non-zero denominator, got {_short(text)}",
                             argument=argument) from None
    return sp.Rational(value.numerator, value.denominator)


__all__ = ["MAX_INT", "bounded_int", "check_bounds", "parse_exact_number"]
