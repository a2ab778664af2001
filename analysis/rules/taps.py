"""Exact tap counts: (output, tap) pairs that read a real input position, per spatial axis."""
from __future__ import annotations

from typing import Any

import sympy as sp

from .core import _is_num


def _brute_taps(n: int, out: int, K: int, s: int, pl: int, d: int) -> int:
    total = 0
    for o in range(out):
        base = o * s - pl
        for j in range(K):
            if 0 <= base + j * d < n:
                total += 1
    return total


def _loss(v: int, K: int, d: int) -> int:
    """Taps lost by a window overshooting the input edge by v positions."""
    if v <= 0:
        return 0
    return min(K, -((-v) // d))


def exact_taps_1d(n: Any, out: Any, K: Any, s: Any, pl: Any, pr: Any, d: Any) -> tuple[Any, int | None]:
    """Number of (output, tap) pairs whose tap reads an input position (not padding), floor mode.

    Returns ``(count, n_min)``; ``count`` is exact for all ``n >= n_min`` (``n_min`` is None when
    ``n`` is numeric and the count was enumerated).  ``None`` count when a parameter is symbolic.
    """
    if not all(_is_num(v) for v in (K, s, pl, pr, d)):
        return None, None
    K, s, pl, pr, d = (int(v) for v in (K, s, pl, pr, d))
    if _is_num(n) and _is_num(out):
        return _brute_taps(int(n), int(out), K, s, pl, d), None
    left = 0
    o = 0
    while o * s < pl:
        left += _loss(pl - o * s, K, d)
        o += 1
    n_left = o
    m = n + pl + pr - d * (K - 1) - 1
    residues = []
    n_right = 0
    for r in range(s):
        v = pr - r
        lost, t = 0, 0
        while v - t * s > 0:
            lost += _loss(v - t * s, K, d)
            t += 1
        n_right = max(n_right, t)
        residues.append(lost)
    if len(set(residues)) == 1:
        right: Any = residues[0]
    else:
        mod = sp.Mod(m, s)
        right = sp.Piecewise(*[(residues[r], sp.Eq(mod, r)) for r in range(s - 1)], (residues[-1], True))
    # exact once the left- and right-cropped windows are distinct and the windows fit
    n_min = max(1, (n_left + n_right) * s + d * (K - 1) + 1 - pl - pr)
    # only worth stating when it is stricter than "the window fits in the padded input"
    return out * K - left - right, (n_min if n_min > max(1, d * (K - 1) + 1 - pl - pr) else None)


def exact_transposed_taps_1d(n: Any, K: Any, s: Any, p: Any, op: Any, d: Any) -> tuple[Any, int | None]:
    """(input, tap) pairs of a transposed conv whose target survives the cropping."""
    if not all(_is_num(v) for v in (K, s, p, op, d)):
        return None, None
    K, s, p, op, d = (int(v) for v in (K, s, p, op, d))
    out = (n - 1) * s - 2 * p + d * (K - 1) + op + 1
    if _is_num(n):
        n = int(n)
        total = sum(1 for i in range(n) for j in range(K) if 0 <= i * s + j * d - p < out)
        return total, None
    left = sum(1 for i in range(p // s + 1) for j in range(K) if i * s + j * d < p)
    right, t = 0, 0
    while True:
        lost = sum(1 for j in range(K) if j * d > d * (K - 1) + op - p + t * s)
        if lost == 0:
            break
        right += lost
        t += 1
    n_min = max(1, p // s + 1 + t)
    return n * K - left - right, n_min
