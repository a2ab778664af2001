"""Property tests: analysis.shapes against real torch layers.

(1) ``output_size`` equals the shape torch produces, and raises ArchcountError exactly when torch
raises; (2) every ``solve_padding`` solution works in torch on its input class and every rejected
candidate fails; (3) symbolic results substituted equal the integer ones; (4) ``dropped`` equals
a brute-force count made by running the real layer on one-hot inputs.
"""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import sympy as sp
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.errors import ArchcountError
from analysis.shapes import output_size, solve_padding
from analysis.symbols import H

@pytest.fixture(autouse=True, scope="module")
def _plain_cpu_kernels():
    """Shapes do not depend on the backend; oneDNN's per-shape setup only makes tiny layers slow."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def torch_hw(make, h: int, w: int) -> tuple[int, int] | None:
    """(H, W) of the real layer's output on a 1x1xHxW input, or None when torch refuses."""
    try:
        with torch.no_grad():
            layer = make()
            return tuple(layer(torch.zeros(1, 1, h, w)).shape[-2:])
    except (RuntimeError, ValueError):
        return None


def ours_hw(kind: str, h: int, w: int, **kw) -> tuple[int, int] | None:
    try:
        return (int(output_size(kind, h, **kw).size), int(output_size(kind, w, **kw).size))
    except ArchcountError:
        return None


sizes = st.integers(1, 40)


# ----------------------------------------------------------------------------- (1) torch agreement

@FAST
@given(h=sizes, w=sizes, k=st.integers(1, 7), s=st.integers(0, 5), p=st.integers(-1, 5), d=st.integers(0, 3))
def test_conv_matches_torch(h, w, k, s, p, d):
    expected = torch_hw(lambda: nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False), h, w)
    assert ours_hw("conv", h, w, kernel=k, stride=s, padding=p, dilation=d) == expected


@FAST
@given(h=st.integers(1, 20), w=st.integers(1, 20), k=st.integers(1, 6), s=st.integers(1, 4),
       p=st.integers(0, 6), op=st.integers(0, 4), d=st.integers(1, 3))
def test_transposed_matches_torch(h, w, k, s, p, op, d):
    expected = torch_hw(lambda: nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op, dilation=d,
                                                   bias=False), h, w)
    assert ours_hw("transposed", h, w, kernel=k, stride=s, padding=p, dilation=d, output_padding=op) == expected


@FAST
@given(h=sizes, w=sizes, k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3),
       ceil=st.booleans())
def test_maxpool_matches_torch(h, w, k, s, p, d, ceil):
    expected = torch_hw(lambda: nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil), h, w)
    assert ours_hw("maxpool", h, w, kernel=k, stride=s, padding=p, dilation=d, ceil_mode=ceil) == expected


@FAST
@given(h=sizes, w=sizes, k=st.integers(1, 6), s=st.integers(1, 4), p=st.integers(0, 3), ceil=st.booleans())
def test_avgpool_matches_torch(h, w, k, s, p, ceil):
    expected = torch_hw(lambda: nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil), h, w)
    assert ours_hw("avgpool", h, w, kernel=k, stride=s, padding=p, ceil_mode=ceil) == expected


scales = st.one_of(st.integers(1, 4).map(float),
                   st.sampled_from([0.5, 1.5, 2.5, 0.25, 1.25, 1.1, 1.15, 0.7, 2.3, 1 / 3, 2 / 3]),
                   st.floats(0.05, 4.0, allow_nan=False, allow_infinity=False))


@FAST
@given(h=st.integers(1, 200), w=st.integers(1, 60), sf=scales)
def test_upsample_matches_torch(h, w, sf):
    expected = torch_hw(lambda: nn.Upsample(scale_factor=sf, mode="nearest"), h, w)
    assert ours_hw("upsample", h, w, scale_factor=sf) == expected


def test_upsample_float_rounding_is_torchs():
    # 100 * 1.15 is 114.99999999999999 in double: torch gives 114, not the exact 115
    assert torch_hw(lambda: nn.Upsample(scale_factor=1.15), 100, 1) == (114, 1)
    assert output_size("upsample", 100, scale_factor=1.15).size == 114
    assert output_size("upsample", 100, scale_factor=Fraction(23, 20)).size == 115


def test_ceil_mode_pool_window_may_overhang_the_input():
    # torch keeps a window that starts inside the input even when the kernel is larger than it
    assert torch_hw(lambda: nn.MaxPool2d(3, stride=3, ceil_mode=True), 2, 2) == (1, 1)
    assert output_size("maxpool", 2, 3, ceil_mode=True).size == 1
    assert torch_hw(lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True), 1, 1) is None
    with pytest.raises(ArchcountError) as err:
        output_size("maxpool", 1, 3, stride=2, ceil_mode=True)
    assert err.value.argument == "kernel"


# ----------------------------------------------------------------------------- (2) padding solutions

def _torch_outs(transposed: bool, sizes: list[int], k: int, s: int, d: int, p: int, op: int) -> list[int | None]:
    """The real layer's output size for each input size (None where torch refuses)."""
    if transposed:
        layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op, dilation=d, bias=False)
    else:
        layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
    outs = []
    for n in sizes:
        try:
            with torch.no_grad():
                outs.append(layer(torch.zeros(1, 1, n, 1 if transposed else n)).shape[-2])
        except RuntimeError:
            outs.append(None)
    return outs


@FEW
@given(k=st.integers(1, 7), s=st.integers(1, 3), d=st.integers(1, 2), transposed=st.booleans())
def test_solve_padding_solutions_and_rejections_in_torch(k, s, d, transposed):
    sol = solve_padding(k, stride=s, dilation=d, transposed=transposed)
    # the stated class: every size for transposed convs, multiples of the stride for convs
    assert sol.valid_for == ("all input sizes >= 1" if transposed else
                             ("all input sizes" if s == 1 else f"all input sizes divisible by {s} (in >= {s})"))
    sample = [1, 2, 5] if transposed else [s * m for m in (1, 2, 5)]
    target = [s * n for n in sample] if transposed else [n // s for n in sample]
    for p, op in sol.solutions:
        assert _torch_outs(transposed, sample, k, s, d, p, op) == target, (p, op)
    op_range = range(max(s, d)) if transposed else range(1)
    for p in range(k + 3):
        for op in op_range:
            if (p, op) not in sol.solutions:
                assert _torch_outs(transposed, sample, k, s, d, p, op) != target, (p, op)
    assert bool(sol.solutions) == (sol.reason is None)


# ----------------------------------------------------------------------------- (3) symbolic = numeric

configs = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 6), st.integers(1, 4), st.integers(0, 4), st.integers(1, 3),
              st.just(0), st.just(False)),
    st.tuples(st.just("transposed"), st.integers(1, 6), st.integers(1, 4), st.integers(0, 4),
              st.integers(1, 3), st.integers(0, 3), st.just(False)),
    st.tuples(st.sampled_from(["maxpool", "avgpool"]), st.integers(1, 6), st.integers(1, 4), st.integers(0, 3),
              st.just(1), st.just(0), st.booleans()),
)


@FEW
@given(cfg=configs)
def test_symbolic_output_size_substitutes_to_the_integer_one(cfg):
    kind, k, s, p, d, op, ceil = cfg
    if kind == "transposed" and op >= max(s, d):
        op = 0
    if kind in ("maxpool", "avgpool") and 2 * p > k:
        p = k // 2
    kw = dict(kernel=k, stride=s, padding=p, dilation=d, output_padding=op, ceil_mode=ceil)
    sym = output_size(kind, H, **kw)
    checked = 0
    for n in range(1, 41):
        try:
            num = output_size(kind, n, **kw)
        except ArchcountError:
            continue
        assert sym.size.subs(H, n) == num.size, n
        if sym.dropped is not None:
            assert sp.sympify(sym.dropped).subs(H, n) == num.dropped, n
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("sf", [2, 3, Fraction(3, 2), Fraction(1, 2), 0.5, 1.5, 2.5, 0.25])
def test_symbolic_upsample_substitutes(sf):
    sym = output_size("upsample", H, scale_factor=sf)
    for n in range(1, 60):
        if math.floor(n * sf) < 1:
            with pytest.raises(ArchcountError):
                output_size("upsample", n, scale_factor=sf)
            continue
        assert sym.size.subs(H, n) == output_size("upsample", n, scale_factor=sf).size == math.floor(n * sf)


# ----------------------------------------------------------------------------- (4) dropped = brute force

def read_rows(layer: nn.Module, n: int, m: int) -> list[bool]:
    """Row r is read when some output sees the one-hot input that lights only row r.

    Weights are ones, so an output is positive exactly when its window covers a lit element
    (a max pool window that holds only padding gives -inf, not a positive value).
    """
    x = torch.zeros(n, 1, n, m)
    for r in range(n):
        x[r, 0, r, :] = 1.0
    with torch.no_grad():
        y = layer(x)
    return [bool((y[r] > 0).any()) for r in range(n)]


def ones(layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        layer.weight.fill_(1.0)
    return layer


layers_for_dropped = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 5), st.integers(1, 5), st.integers(0, 3), st.integers(1, 3),
              st.just(0), st.just(False)),
    st.tuples(st.just("transposed"), st.integers(1, 5), st.integers(1, 4), st.integers(0, 5), st.integers(1, 3),
              st.integers(0, 3), st.just(False)),
    st.tuples(st.just("maxpool"), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2), st.integers(1, 3),
              st.just(0), st.booleans()),
    st.tuples(st.just("avgpool"), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2), st.just(1),
              st.just(0), st.booleans()),
)


def _make(kind, k, s, p, d, op, ceil):
    if kind == "conv":
        return ones(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False))
    if kind == "transposed":
        return ones(nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op, dilation=d, bias=False))
    if kind == "maxpool":
        return nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    return nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil)


@FAST
@given(cfg=layers_for_dropped, n=st.integers(1, 24))
def test_dropped_equals_rows_never_read_by_the_real_layer(cfg, n):
    kind, k, s, p, d, op, ceil = cfg
    if kind == "transposed" and op >= max(s, d):
        op = 0
    if kind in ("maxpool", "avgpool") and 2 * p > k:
        p = k // 2
    try:
        res = output_size(kind, n, kernel=k, stride=s, padding=p, dilation=d, output_padding=op, ceil_mode=ceil)
    except ArchcountError:
        return
    m = max(n, d * (k - 1) + 1)  # a width every config accepts
    read = read_rows(_make(kind, k, s, p, d, op, ceil), n, m)
    assert res.dropped == read.count(False)


@pytest.mark.parametrize("sf", [1, 2, 3])
def test_integer_upsample_drops_nothing(sf):
    for n in (1, 5, 9):
        assert output_size("upsample", n, scale_factor=sf).dropped == 0
        assert all(read_rows(nn.Upsample(scale_factor=float(sf)), n, 3))


def test_fractional_downsample_drops_rows_so_dropped_is_unknown():
    read = read_rows(nn.Upsample(scale_factor=0.5), 8, 8)
    assert read.count(False) == 4
    assert output_size("upsample", 8, scale_factor=0.5).dropped is None


# ----------------------------------------------------------------------------- (5) closed forms = brute force
#
# The library counts windows in closed form (analysis.windows); these oracles enumerate the
# definitions position by position, on small random parameters.

from analysis.rules.taps import exact_taps_1d, exact_transposed_taps_1d, window_taps  # noqa: E402
from analysis.shapes import MAX_LISTED, SolutionRange, _family  # noqa: E402
from analysis.windows import (clamped_sum, conv_read_rows, conv_taps, floor_sum, transposed_read_inputs,  # noqa: E402
                              transposed_taps)

MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def brute_conv_pairs(n: int, out: int, K: int, s: int, pl: int, d: int) -> list[int]:
    """Every tap position ``o*s - pl + j*d`` of ``out`` windows that lies in ``[0, n)``."""
    return [o * s - pl + j * d for o in range(out) for j in range(K) if 0 <= o * s - pl + j * d < n]


def brute_transposed(n: int, K: int, s: int, p: int, op: int, d: int) -> tuple[int, int]:
    """(pairs whose target survives the crop, inputs with a surviving target), by enumeration."""
    out = (n - 1) * s - 2 * p + d * (K - 1) + op + 1
    hits = [[0 <= i * s + j * d - p < out for j in range(K)] for i in range(n)]
    return sum(map(sum, hits)), sum(1 for row in hits if any(row))


@MANY
@given(n=st.integers(0, 40), m=st.integers(1, 15), a=st.integers(-50, 50), b=st.integers(-50, 50))
def test_floor_sum_is_the_sum_of_floors(n, m, a, b):
    assert floor_sum(n, m, a, b) == sum((a * i + b) // m for i in range(n))


@MANY
@given(A=st.integers(-30, 60), N=st.integers(0, 30), s=st.integers(1, 7), d=st.integers(1, 7), K=st.integers(0, 9))
def test_clamped_sum_counts_pairs_left_of_a_bound(A, N, s, d, K):
    assert clamped_sum(A, N, s, d, K) == sum(1 for o in range(N) for j in range(K) if o * s + j * d < A)


window_params = dict(n=st.integers(1, 40), out=st.integers(0, 40), K=st.integers(1, 9), s=st.integers(1, 8),
                     pl=st.integers(0, 12), d=st.integers(1, 7))


@MANY
@given(**window_params)
def test_conv_taps_and_read_rows_equal_enumeration(n, out, K, s, pl, d):
    hits = brute_conv_pairs(n, out, K, s, pl, d)
    assert conv_taps(n, out, K, s, pl, d) == window_taps(n, out, K, s, pl, d) == len(hits)
    assert conv_read_rows(n, out, K, s, pl, d) == len(set(hits))


@MANY
@given(n=st.integers(1, 30), K=st.integers(1, 9), s=st.integers(1, 8), p=st.integers(0, 14), op=st.integers(0, 7),
       d=st.integers(1, 7))
def test_transposed_counts_equal_enumeration(n, K, s, p, op, d):
    out = (n - 1) * s - 2 * p + d * (K - 1) + op + 1
    pairs, inputs = brute_transposed(n, K, s, p, op, d) if out > 0 else (0, 0)
    assert transposed_taps(n, K, s, p, op, d) == pairs
    assert transposed_read_inputs(n, out, K, s, p, d) == inputs


@MANY
@given(n=st.integers(1, 40), K=st.integers(1, 8), s=st.integers(1, 6), pl=st.integers(0, 8), pr=st.integers(0, 8),
       d=st.integers(1, 5))
def test_exact_taps_1d_numeric_and_symbolic_equal_enumeration(n, K, s, pl, pr, d):
    span = n + pl + pr - d * (K - 1) - 1
    if span < 0:
        return
    out = span // s + 1
    expected = len(brute_conv_pairs(n, out, K, s, pl, d))
    assert exact_taps_1d(n, out, K, s, pl, pr, d) == (expected, None)
    sym_out = sp.floor((H + pl + pr - d * (K - 1) - 1) / s) + 1
    count, n_min = exact_taps_1d(H, sym_out, K, s, pl, pr, d)
    if n >= (n_min or 1):
        assert count.subs(H, n) == expected


@MANY
@given(n=st.integers(1, 30), K=st.integers(1, 8), s=st.integers(1, 6), p=st.integers(0, 10), op=st.integers(0, 5),
       d=st.integers(1, 5))
def test_exact_transposed_taps_1d_numeric_and_symbolic_equal_enumeration(n, K, s, p, op, d):
    if (n - 1) * s - 2 * p + d * (K - 1) + op + 1 < 1:
        return
    expected = brute_transposed(n, K, s, p, op, d)[0]
    assert exact_transposed_taps_1d(n, K, s, p, op, d) == (expected, None)
    count, n_min = exact_transposed_taps_1d(H, K, s, p, op, d)
    if n >= n_min:
        assert count.subs(H, n) == expected


@MANY
@given(kind=st.sampled_from(["conv", "maxpool"]), n=st.integers(1, 40), k=st.integers(1, 8), s=st.integers(1, 7),
       p=st.integers(0, 6), d=st.integers(1, 5), ceil=st.booleans())
def test_dropped_rows_equal_enumeration(kind, n, k, s, p, d, ceil):
    if kind == "conv":
        ceil = False
    elif 2 * p > k:
        p = k // 2
    try:
        res = output_size(kind, n, k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    except ArchcountError:
        return
    assert res.dropped == n - len(set(brute_conv_pairs(n, res.size, k, s, p, d)))


@MANY
@given(n=st.integers(1, 30), k=st.integers(1, 8), s=st.integers(1, 6), p=st.integers(0, 12), op=st.integers(0, 5),
       d=st.integers(1, 5))
def test_dropped_transposed_inputs_equal_enumeration(n, k, s, p, op, d):
    op = op % max(s, d)
    try:
        res = output_size("transposed", n, k, stride=s, padding=p, dilation=d, output_padding=op)
    except ArchcountError:
        return
    assert res.dropped == n - brute_transposed(n, k, s, p, op, d)[1]


def brute_paddings(k: int, s: int, d: int, transposed: bool) -> list[tuple[int, int]]:
    """Every (p, op) for which the output formula equals scale*in on the whole input class (enumerated)."""
    found = []
    for p in range(d * k + s + 2):
        for op in (range(max(s, d)) if transposed else (0,)):
            if transposed:
                ok = all((n - 1) * s - 2 * p + d * (k - 1) + op + 1 == s * n for n in (1, 2, 3))
            else:  # in = s*m: floor((s*m + 2p - d(k-1) - 1)/s) + 1 == m for every m >= 1
                ok = all((s * m + 2 * p - d * (k - 1) - 1) // s + 1 == m and s * m + 2 * p >= d * (k - 1) + 1
                         for m in (1, 2, 3))
            if ok:
                found.append((p, op))
    return found


@MANY
@given(k=st.integers(1, 12), s=st.integers(1, 9), d=st.integers(1, 6), transposed=st.booleans())
def test_padding_solutions_in_closed_form_equal_enumeration(k, s, d, transposed):
    sol = solve_padding(k, stride=s, dilation=d, transposed=transposed)
    assert list(sol.solutions) == brute_paddings(k, s, d, transposed)


@pytest.mark.parametrize("first, step, count", [((0, 0), (1, 0), 7), ((3, 1), (1, 2), 5), ((2, 0), (1, 0), 1)])
def test_solution_range_behaves_like_the_tuple_it_stands_for(first, step, count):
    listed = tuple((first[0] + i * step[0], first[1] + i * step[1]) for i in range(count))
    family = SolutionRange(first, step, count)
    assert family == listed and listed == family and list(family) == list(listed) and len(family) == count
    assert family[-1] == listed[-1] and family[0] == listed[0]
    assert all(pair in family for pair in listed)
    assert (first[0], first[1] + 1) not in family and (first[0] - 1, first[1]) not in family
    with pytest.raises(IndexError):
        family[count]
    assert _family(first, step, count) == listed and isinstance(_family(first, step, count), tuple)
    assert isinstance(_family(first, step, MAX_LISTED + 1), SolutionRange)


# ----------------------------------------------------------------------------- (6) huge sizes, exact values
#
# At 10^12 the oracle cannot enumerate; the symbolic formula (borders and residues) and hand-derived
# closed forms give the expected values through a different path than the numeric one.

BIG = 10 ** 12


@pytest.mark.parametrize("K, s, pl, pr, d", [(3, 1, 1, 1, 1), (3, 2, 1, 1, 1), (5, 3, 2, 2, 2), (4, 2, 1, 2, 1),
                                             (7, 4, 3, 3, 3), (2, 5, 0, 4, 1)])
@pytest.mark.parametrize("r", range(6))
def test_huge_taps_equal_the_symbolic_formula(K, s, pl, pr, d, r):
    n = BIG + r
    out = (n + pl + pr - d * (K - 1) - 1) // s + 1
    count, _ = exact_taps_1d(H, sp.floor((H + pl + pr - d * (K - 1) - 1) / s) + 1, K, s, pl, pr, d)
    assert exact_taps_1d(n, out, K, s, pl, pr, d)[0] == count.subs(H, n)
    tcount, _ = exact_transposed_taps_1d(H, K, s, pl, 0, d)
    assert exact_transposed_taps_1d(n, K, s, pl, 0, d)[0] == tcount.subs(H, n)


def test_huge_values_by_hand():
    # k=3 s=1 p=1 ("same"): every row read 3 times but the 2 border taps: 3n - 2
    assert exact_taps_1d(BIG, BIG, 3, 1, 1, 1, 1)[0] == 3 * BIG - 2
    # k=3 s=2 p=1 on even n: n/2 windows, one tap lost on the left
    assert exact_taps_1d(BIG, BIG // 2, 3, 2, 1, 1, 1)[0] == 3 * BIG // 2 - 1
    # a "full" conv, kernel 10^12 and p = k-1 on n = k rows: 2k-1 windows, each row read by k of them;
    # the first k windows alone read row x k-x times: k(k+1)/2
    k = BIG
    assert exact_taps_1d(k, 2 * k - 1, k, 1, k - 1, k - 1, 1)[0] == k * k
    assert exact_taps_1d(k, k, k, 1, k - 1, k - 1, 1)[0] == k * (k + 1) // 2
    # stride-2 k=2 pooling of an odd size drops the last row; dilation 10^12 on 2*10^12+1 rows reads 2
    assert output_size("maxpool", BIG + 1, 2).dropped == 1
    assert output_size("conv", 2 * BIG + 1, 2, dilation=2 * BIG).dropped == 2 * BIG - 1
    # a k=1 transposed conv with p=1 crops its first and last input
    assert output_size("transposed", BIG, 1, padding=1).dropped == 2
    # halving with a 10^12 kernel: p = floor((k-1)/2); doubling: (floor((k-1)/2), k mod 2)
    assert solve_padding(BIG, stride=2).solutions == ((BIG // 2 - 1, 0),)
    assert solve_padding(BIG + 1, stride=2, transposed=True).solutions == ((BIG // 2, 1),)
    fam = solve_padding(BIG, stride=BIG).solutions
    assert isinstance(fam, SolutionRange) and len(fam) == BIG // 2 and fam[0] == (0, 0) and fam[-1] == (BIG // 2 - 1, 0)


@FEW
@given(K=st.integers(1, 6), s=st.integers(3, 7), pl=st.integers(0, 4), pr=st.integers(0, 2), d=st.integers(1, 3))
def test_symbolic_taps_beyond_the_residue_limit_equal_enumeration(K, s, pl, pr, d):
    """With fewer residue branches allowed than the stride, a right padding below the limit still
    gets its compact Piecewise (one branch per overshoot), and a larger one is left unknown."""
    import analysis.rules.taps as taps
    old = taps.MAX_RESIDUE_BRANCHES
    taps.MAX_RESIDUE_BRANCHES = 2
    try:
        sym_out = sp.floor((H + pl + pr - d * (K - 1) - 1) / s) + 1
        count, n_min = exact_taps_1d(H, sym_out, K, s, pl, pr, d)
        assert exact_taps_1d(H, sym_out, K, s, pl, 3, d) == (None, None)
    finally:
        taps.MAX_RESIDUE_BRANCHES = old
    for n in range(max(1, n_min or 1, d * (K - 1) + 1 - pl - pr), 40):
        out = (n + pl + pr - d * (K - 1) - 1) // s + 1
        assert count.subs(H, n) == len(brute_conv_pairs(n, out, K, s, pl, d)), n
