"""Exact tap counts: (output, tap) pairs that read a real input position, per spatial axis.

Closed forms (:mod:`analysis.windows`), never an enumeration of positions: a numeric size of
10^12 with a kernel of 10^12 answers in microseconds.

>>> exact_taps_1d(10**12, 5 * 10**11, 3, 2, 1, 1, 1)
(1499999999999, None)
>>> from analysis.symbols import H
>>> exact_taps_1d(H, H, 3, 1, 1, 1, 1)
(3*H - 2, 3)
>>> exact_transposed_taps_1d(H, 4, 2, 1, 0, 1)
(4*H - 2, 2)
"""
from __future__ import annotations

from typing import Any

import sympy as sp

from ..bounds import MAX_INT, bounded_int
from ..windows import clamped_sum, conv_taps, transposed_taps
from .core import _is_num

#: With a symbolic size, the taps lost on the right depend on ``Mod(span, stride)``: one branch per
#: residue.  Beyond this many branches (a stride above it with a right padding above it) the exact
#: count is left unknown (``None``), as for a symbolic kernel.
MAX_RESIDUE_BRANCHES = 256


def window_taps(n: int, out: int, K: int, s: int, pl: int, d: int) -> int:
    """(window, tap) pairs reading an input row, for ``out`` windows of ``K`` taps (any ``out``).

    >>> window_taps(2, 1, 3, 3, 0, 1)      # a ceil-mode pool window overhanging a 2-row input
    2
    """
    n, out, K, s, pl, d = _checked(n=n, out=out, kernel=K, stride=s, padding=pl, dilation=d)
    return conv_taps(n, out, K, s, pl, d)


#: Kept for :mod:`analysis.rules.layers`, which imports this name; a closed form, not an enumeration.
_brute_taps = window_taps


def _checked(**values: Any) -> tuple[int, ...]:
    """The numeric window parameters as ints, each bounded by :data:`analysis.windows.MAX_INT`."""
    minimum = {"n": 1, "out": 0, "kernel": 1, "stride": 1, "dilation": 1, "padding": 0, "right_padding": 0,
               "output_padding": 0}
    return tuple(bounded_int(v, name if name != "n" else "size", minimum=minimum[name], maximum=MAX_INT)
                 for name, v in values.items())


def _lost_left(pl: int, K: int, s: int, d: int) -> int:
    """Taps of all windows that fall left of the input: pairs ``o*s + j*d < pl``, ``o >= 0``."""
    return clamped_sum(pl, max(0, -((-pl) // s)), s, d, K)


def exact_taps_1d(n: Any, out: Any, K: Any, s: Any, pl: Any, pr: Any, d: Any) -> tuple[Any, int | None]:
    """Number of (output, tap) pairs whose tap reads an input position (not padding), floor mode.

    Returns ``(count, n_min)``; ``count`` is exact for all ``n >= n_min`` (``n_min`` is None when
    ``n`` is numeric, where the count is exact, or when no bound beyond "the window fits" is
    needed).  ``None`` count when a parameter other than the size is symbolic.

    With a symbolic ``n``: ``count = out*K - left - right``, where ``left`` sums the taps the
    first windows lose to the left padding and ``right`` those the last windows lose to the right
    padding, which depends on ``Mod(n + pl + pr - d(K-1) - 1, s)`` (a Piecewise over residues).

    >>> exact_taps_1d(5, 3, 3, 2, 1, 1, 1)
    (7, None)
    """
    if not all(_is_num(v) for v in (K, s, pl, pr, d)):
        return None, None
    K, s, pl, pr, d = _checked(kernel=K, stride=s, padding=pl, right_padding=pr, dilation=d)
    if _is_num(n) and _is_num(out):
        n, out = _checked(n=n, out=out)
        return conv_taps(n, out, K, s, pl, d), None
    left = _lost_left(pl, K, s, d)
    n_left = max(0, -((-pl) // s))
    m = n + pl + pr - d * (K - 1) - 1
    # the window ending at residue r = Mod(m, s) overshoots the input by pr - r; the t-th one
    # before it by pr - r - t*s: reflected, these are the pairs t*s + j*d < pr - r
    n_right = max(0, -((-pr) // s))
    if pr == 0:
        right: Any = 0
    elif s <= MAX_RESIDUE_BRANCHES:
        residues = [_lost_left(pr - r, K, s, d) for r in range(s)]
        if len(set(residues)) == 1:
            right = residues[0]
        else:
            mod = sp.Mod(m, s)
            right = sp.Piecewise(*[(residues[r], sp.Eq(mod, r)) for r in range(s - 1)], (residues[-1], True))
    elif pr <= MAX_RESIDUE_BRANCHES:
        # residues r >= pr lose nothing: one branch per r < pr, then 0
        mod = sp.Mod(m, s)
        right = sp.Piecewise(*[(_lost_left(pr - r, K, s, d), sp.Eq(mod, r)) for r in range(pr)], (0, True))
    else:
        return None, None
    # exact once the left- and right-cropped windows are distinct and the windows fit
    n_min = max(1, (n_left + n_right) * s + d * (K - 1) + 1 - pl - pr)
    # only worth stating when it is stricter than "the window fits in the padded input"
    return out * K - left - right, (n_min if n_min > max(1, d * (K - 1) + 1 - pl - pr) else None)


def exact_transposed_taps_1d(n: Any, K: Any, s: Any, p: Any, op: Any, d: Any) -> tuple[Any, int | None]:
    """(input, tap) pairs of a transposed conv whose target survives the cropping.

    Returns ``(count, n_min)`` as :func:`exact_taps_1d`; for a symbolic ``n`` the count is
    ``n*K - left - right`` with ``left`` the pairs ``i*s + j*d < p`` and ``right`` (reflected) the
    pairs ``i*s + j*d < p - op``, exact for ``n >= n_min``.

    >>> exact_transposed_taps_1d(4, 3, 2, 1, 1, 1)
    (11, None)
    """
    if not all(_is_num(v) for v in (K, s, p, op, d)):
        return None, None
    K, s, p, op, d = _checked(kernel=K, stride=s, padding=p, output_padding=op, dilation=d)
    if _is_num(n):
        (n,) = _checked(n=n)
        return transposed_taps(n, K, s, p, op, d), None
    left = _lost_left(p, K, s, d)
    right = _lost_left(p - op, K, s, d)
    t = max(0, -((op - p) // s))  # windows cut on the right: t*s < p - op
    n_min = max(1, p // s + 1 + t)
    return n * K - left - right, n_min
