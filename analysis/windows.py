"""Closed-form counts over sliding windows: taps that read the input, rows that some window reads.

A 1-D window layer has windows ``o = 0..out-1`` starting at ``o*s - pl`` with taps ``j = 0..K-1``
at ``o*s - pl + j*d``.  Every count archcount needs (taps that read the input, rows that some
window reads, inputs of a transposed conv whose targets survive the cropping) reduces to one
primitive, :func:`clamped_sum`, a sum of clamped ceilings of a linear function, which
:func:`floor_sum` evaluates in O(log) steps of Euclid's algorithm.  Nothing is enumerated, so
sizes, kernels, strides, paddings and dilations up to :data:`analysis.bounds.MAX_INT` answer in
microseconds.

>>> conv_taps(10**12, 10**12 // 2, 3, 2, 1, 1)      # stride-2 k=3 p=1 conv on 10^12 rows
1499999999999
>>> conv_read_rows(10**12 + 1, 5 * 10**11, 2, 2, 0, 1)   # k=2 s=2: the last row is never read
1000000000000
>>> conv_read_rows(9, 3, 2, 3, 0, 1)                      # k=2 s=3: windows {0,1} {3,4} {6,7}
6
"""
from __future__ import annotations


# --------------------------------------------------------------------------- the primitives

def floor_sum(n: int, m: int, a: int, b: int) -> int:
    """``sum(floor((a*i + b) / m) for i in range(n))`` in O(log m) steps (any sign of a, b).

    >>> floor_sum(6, 3, 2, -7), sum((2 * i - 7) // 3 for i in range(6))
    (-6, -6)
    >>> floor_sum(10**15, 1, 3, 1) == 3 * 10**15 * (10**15 - 1) // 2 + 10**15
    True
    """
    if n <= 0:
        return 0
    total = 0
    if a < 0 or a >= m:
        total += n * (n - 1) // 2 * (a // m)
        a %= m
    if b < 0 or b >= m:
        total += n * (b // m)
        b %= m
    while True:  # Euclid-like reduction on non-negative a, b < m
        if a >= m:
            total += n * (n - 1) // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        y_max = a * n + b
        if y_max < m:
            return total
        n, b = divmod(y_max, m)
        m, a = a, m


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def clamped_sum(A: int, N: int, s: int, d: int, K: int) -> int:
    """``sum(min(K, max(0, ceil((A - o*s) / d))) for o in range(N))``, in closed form.

    It is the number of pairs ``(o, j)`` with ``0 <= o < N``, ``0 <= j < K`` and ``o*s + j*d < A``:
    the taps of the first ``N`` windows that fall left of ``A``.

    >>> clamped_sum(7, 4, 2, 1, 3), sum(1 for o in range(4) for j in range(3) if o * 2 + j < 7)
    (10, 10)
    """
    if N <= 0 or K <= 0:
        return 0
    # the summand is K for o < o_full, 0 for o >= o_zero, ceil((A - o*s)/d) in between
    o_full = min(max(_ceil_div(A - (K - 1) * d, s), 0), N)
    o_zero = min(max(_ceil_div(A, s), 0), N)
    count = o_zero - o_full
    # sum of ceil((A - o*s)/d) = -sum floor((o*s - A)/d) over o = o_full .. o_zero-1
    return K * o_full - floor_sum(count, d, s, o_full * s - A)


def pairs_below(C: int, N: int, M: int, s: int, d: int) -> int:
    """Pairs ``0 <= o < N``, ``0 <= j < M`` with ``o*s + j*d < C``.

    >>> pairs_below(10, 3, 4, 3, 2), sum(1 for o in range(3) for j in range(4) if 3 * o + 2 * j < 10)
    (10, 10)
    """
    return clamped_sum(C, N, s, d, M)


# --------------------------------------------------------------------------- the counts

def conv_taps(n: int, out: int, K: int, s: int, pl: int, d: int) -> int:
    """(window, tap) pairs whose tap reads an input row: ``0 <= o*s - pl + j*d < n``.

    ``out`` windows are counted whatever their number (a ceil-mode pool's last window may
    overhang the input).

    >>> conv_taps(5, 5, 3, 1, 1, 1)          # k=3 p=1: 3*5 taps minus one on each side
    13
    """
    if n <= 0 or out <= 0:
        return 0
    return pairs_below(pl + n, out, K, s, d) - pairs_below(pl, out, K, s, d)


def conv_read_rows(n: int, out: int, K: int, s: int, pl: int, d: int) -> int:
    """Input rows ``0 <= x < n`` that some tap reads (``x = o*s - pl + j*d``).

    Distinct positions, not pairs: ``y = o*s + j*d`` has the representations ``(o + t*d', j - t*s')``
    (``s' = s/g``, ``d' = d/g``, ``g = gcd(s, d)``), and those inside the window rectangle form one
    run of ``t``.  Counting each position once, by its representation with the largest ``j``,
    leaves every pair except those with ``o >= d'`` and ``j < K - s'``; so
    ``rows = pairs(rectangle) - pairs([d', out) x [0, K - s'))``, each a :func:`pairs_below`
    difference.

    >>> conv_read_rows(10, 4, 1, 3, 0, 1), conv_read_rows(10, 4, 3, 3, 0, 1)  # k=1 s=3 reads 4; k=3 all
    (4, 10)
    """
    if n <= 0 or out <= 0:
        return 0
    import math
    g = math.gcd(s, d)
    s1, d1 = s // g, d // g
    rows = pairs_below(pl + n, out, K, s, d) - pairs_below(pl, out, K, s, d)
    if out > d1 and K > s1:
        shift = d1 * s  # the pairs (o + d', j) start d'*s further on
        rows -= (pairs_below(pl + n - shift, out - d1, K - s1, s, d)
                 - pairs_below(pl - shift, out - d1, K - s1, s, d))
    return rows


def transposed_taps(n: int, K: int, s: int, p: int, op: int, d: int) -> int:
    """(input, tap) pairs of a transposed conv whose target ``i*s - p + j*d`` survives the cropping.

    The output has ``out = (n-1)*s - 2p + d(K-1) + op + 1`` positions.  The pairs cut on the left
    are those with ``i*s + j*d < p``; reflecting ``(i, j) -> (n-1-i, K-1-j)`` turns the pairs cut on
    the right into those with ``i*s + j*d < p - op``.

    >>> transposed_taps(4, 3, 2, 1, 1, 1)     # k=3 s=2 p=1 op=1: 12 pairs, one cropped
    11
    """
    out = (n - 1) * s - 2 * p + d * (K - 1) + op + 1
    if n <= 0 or out <= 0:
        return 0
    return n * K - pairs_below(p, n, K, s, d) - pairs_below(p - op, n, K, s, d)


def transposed_read_inputs(n: int, out: int, K: int, s: int, p: int, d: int) -> int:
    """Inputs ``0 <= i < n`` of a transposed conv with a target ``i*s - p + j*d`` in ``[0, out)``.

    Input ``i`` hits the output iff ``i >= (p - d(K-1))/s``, ``i <= (out + p - 1)/s`` and a
    multiple of ``d`` lies in ``[p - i*s, p - i*s + out - 1]``, i.e. ``(i*s - p) mod d < out``;
    the last condition is counted with ``[x mod d < r] = floor(x/d) - floor((x - r)/d)``.

    >>> transposed_read_inputs(5, 3, 1, 1, 1, 1)    # k=1 p=1, out = 3: inputs 0 and 4 land in the crop
    3
    """
    if n <= 0 or out <= 0:
        return 0
    lo = max(0, _ceil_div(p - (K - 1) * d, s))
    hi = min(n - 1, (out + p - 1) // s)
    count = hi - lo + 1
    if count <= 0:
        return 0
    if out >= d:
        return count
    start = lo * s - p
    return floor_sum(count, d, s, start) - floor_sum(count, d, s, start - out)


__all__ = ["clamped_sum", "conv_read_rows", "conv_taps",
           "floor_sum", "pairs_below", "transposed_read_inputs", "transposed_taps"]
