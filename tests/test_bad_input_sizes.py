"""Bad input for sizes, kernels, strides, paddings, dilations and solve targets (issue 13, items 1, 2, 9).

Two tables, run by the shared harness (:mod:`badinput`):

- ``HUGE``: valid questions with numbers around 10^9-10^18.  They must answer (exit 0) within
  3 s with the value derived here by hand, never by enumerating positions.
- ``CLI_ERRORS`` / ``API_ERRORS``: numbers too large (10^30, 5000 digits, 1e999999999), zero,
  negative, non-integer, text, symbols where numbers are expected, and equations with no
  solution.  They must give a clean error (exit 2, or 1 for "no solution") naming the argument.
"""
from __future__ import annotations

import importlib

import pytest
import sympy as sp

from badinput import ApiCase, CliCase, run_api_case, run_cli_case, time_limit

T12 = str(10 ** 12)
T9 = str(10 ** 9)
T30 = str(10 ** 30)
D5000 = "1" * 5000
FAST = 3.0  # seconds: every huge-number case answers in milliseconds once torch is imported


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """Import torch and the zoo once, so the per-case limits time archcount, not the imports."""
    import torch  # noqa: F401

    import analysis.capture  # noqa: F401
    import models  # noqa: F401


def _ok(id: str, argv: list[str], *expected: str) -> tuple[CliCase, tuple[str, ...]]:
    return CliCase(id, argv, status=0, timeout=FAST), expected


# ----------------------------------------------------------------------------- huge but valid: answered exactly

HUGE = [
    # the commands
    _ok("shape-conv-1e9", ["shape", "conv k=3 s=2 p=1", "--input", f"3x{T9}x{T9}"],
        "output 3x500000000x500000000", "none; every input row and column is read"),
    _ok("padding-k1e12-s2", ["padding", "--kernel", T12, "--stride", "2"],
        "the only solution:", "padding = 499999999999 "),
    _ok("count-unet-1e12", ["count", "unet", "--size", T12, "--kernel", "3", "--format", "json"],
        # README: unet outputs = 2*H*NC*W + 5*H*NF*W/8 for H, W multiples of 8
        '"outputs": "2000000000000000000000000*NC + 625000000000000000000000*NF"'),
    _ok("check-unet-1e12", ["check", "2 H W NC + 5/8 H W NF", "--model", "unet", "--quantity", "outputs",
                            "--size", T12, "--kernel", "3"], "verdict: right"),
    # our own: kernels, strides, dilations and paddings of 10^12
    _ok("padding-k1e12-transposed", ["padding", "--kernel", T12, "--stride", "2", "--transposed"],
        "(padding, output_padding) = (499999999999, 0)"),
    _ok("padding-k1e12-s1e12", ["padding", "--kernel", T12, "--stride", T12],
        "500000000000 solutions:", "padding = 0 ", "padding = 499999999999 "),
    _ok("padding-s1e12-d1e12-transposed", ["padding", "--kernel", "3", "--stride", T12, "--dilation", T12,
                                          "--transposed"],
        # 2p = d(k-1) + 1 - s + op = 10^12 + 1 + op: op odd, 0 <= op < 10^12
        "500000000000 solutions:", "(padding, output_padding) = (500000000001, 1)"),
    _ok("padding-k1e18", ["padding", "--kernel", str(10 ** 18 - 1), "--stride", "2", "--transposed"],
        "(padding, output_padding) = (499999999999999999, 1)"),
    _ok("shape-maxpool-odd-1e12", ["shape", "maxpool k=2", "--input", f"3x{10 ** 12 + 1}x{10 ** 12 + 1}"],
        "output 3x500000000000x500000000000", "drops 1 on H"),
    _ok("shape-kernel-1e12", ["shape", f"conv k={T12}", "--input", f"1x{T12}x{T12}"], "output 1x1x1"),
    _ok("shape-dilation-1e12", ["shape", f"conv k=2 d={T12}", "--input", f"1x{2 * 10 ** 12 + 1}x{2 * 10 ** 12 + 1}"],
        f"output 1x{10 ** 12 + 1}x{10 ** 12 + 1}", "none; every input row"),
    _ok("shape-stride-1e12", ["shape", f"conv k=3 s={T12}", "--input", f"1x{T12}x{T12}"],
        # windows at 0 and 10^12 ... only the first fits: 3 rows read, 10^12 - 3 dropped
        "output 1x1x1", f"drops {10 ** 12 - 3} on H"),
    _ok("shape-padding-1e12", ["shape", f"maxpool k={2 * 10 ** 12} p={T12} s={T12}", "--input", f"1x{T12}x{T12}"],
        # floor((n + 2p - k)/s) + 1 = floor(10^12/10^12) + 1 = 2 windows, together covering every row
        "output 1x2x2", "none; every input row"),
    _ok("shape-tconv-1e12", ["shape", "tconv k=4 s=2 p=1 out=8", "--input", f"16x{T12}x{T12}"],
        f"output 8x{2 * 10 ** 12}x{2 * 10 ** 12}"),
    _ok("shape-tconv-crop-1e12", ["shape", f"tconv k=1 p={10 ** 11}", "--input", f"1x{T12}x{T12}"],
        f"output 1x{8 * 10 ** 11}x{8 * 10 ** 11}", f"drops {2 * 10 ** 11} on H"),
    _ok("shape-size-1e18", ["shape", "conv k=3 s=2 p=1", "--input", f"1x{10 ** 18}x{10 ** 18}"],
        f"output 1x{10 ** 18 // 2}x{10 ** 18 // 2}"),
    _ok("count-exact-taps-1e12", ["count", "conv_transpose", "--size", T12, "--kernel", "3",
                                  "--set", "transposed=exact", "--set", "padding_taps=exclude"], "total connections:"),
    _ok("solve-1e12", ["solve", "NF", "--model", "unet", "--equal-to", "100000", "--kernel", "3", "--size", T12],
        # 36 NF^2 + 441 NF + 5400 = 100000 (NIC=1, NC=24, k=3): NF = 45.5...; 45 gives 98145
        "closest integer: NF = 45", "98,145"),
    _ok("solve-1e100-target", ["solve", "NF", "--model", "unet", "--equal-to", "1e100", "--kernel", "3"],
        "closest integer: NF = 1666666666666666666666666666666666666666666666666"),
]


@pytest.mark.parametrize("case, expected", HUGE, ids=[c.id for c, _ in HUGE])
def test_huge_numbers_answer_exactly_and_fast(case, expected, tmp_path):
    out = run_cli_case(case, tmp_path)
    for text in expected:
        assert text in out.stdout, f"{case.id}: {text!r} not in the output:\n{out.stdout[-3000:]}"


def test_huge_numeric_count_equals_the_symbolic_count_substituted():
    """The exact taps at 10^12 (closed forms) against the symbolic formula (border sums per residue)."""
    from analysis import count
    from analysis.symbols import H, W
    switches = ["transposed=exact", "padding_taps=exclude"]
    symbolic = count("conv_transpose", kernel=3, switches=switches).total("connections")
    for h, w in ((10 ** 12, 10 ** 12), (10 ** 12 + 8, 10 ** 12 + 16)):
        with time_limit(FAST):
            numeric = count("conv_transpose", kernel=3, switches=switches, input_size=(h, w)).total("connections")
        assert sp.expand(numeric - symbolic.subs({H: h, W: w})) == 0


# ----------------------------------------------------------------------------- CLI errors

def _err(id: str, argv: list[str], *names: str, status: int = 2, timeout: float = FAST) -> CliCase:
    return CliCase(id, argv, names=names, status=status, timeout=timeout)


def _layer(id: str, layer: str, *names: str) -> CliCase:
    """``archcount shape LAYER --input 3x8x8``: a bad layer parameter."""
    return _err(id, ["shape", layer, "--input", "3x8x8"], *names)


def _input(id: str, shape: str, *names: str) -> CliCase:
    """``archcount shape "conv k=3" --input SHAPE``: a bad input size."""
    return _err(id, ["shape", "conv k=3", "--input", shape], *names)


SOLVE = ["solve", "NF", "--model", "unet", "--kernel", "3", "--quantity", "weights"]

CLI_ERRORS = [
    # shape: numbers too large, written out or in many digits
    _input("shape-size-1e30", f"3x{T30}x5", "--input", "at most 10^18"),
    _input("shape-size-5000-digits", f"3x{D5000}x5", "--input", "5000-digit"),
    _layer("shape-kernel-1e30", f"conv k={T30}", "kernel", "at most 10^18"),
    _layer("shape-kernel-5000-digits", f"conv k={D5000}", "k=", "5000-digit"),
    _layer("shape-stride-1e30", f"conv k=3 s={T30}", "stride", "at most 10^18"),
    _layer("shape-padding-1e30", f"conv k=3 p={T30}", "padding", "at most 10^18"),
    _layer("shape-dilation-1e30", f"conv k=3 d={T30}", "dilation", "at most 10^18"),
    _input("shape-size-above-1e18", f"1x{10 ** 18 + 1}x8", "--input", "10^18"),
    _layer("shape-output-padding-1e30", f"tconv k=3 s=2 op={T30}", "output_padding"),
    _layer("shape-upsample-1e30", f"upsample x{T30}", "scale_factor"),
    _layer("shape-upsample-power", "upsample x2**10**10", "scale_factor"),
    _err("shape-kernel-larger-than-input", ["shape", f"conv k={T12}", "--input", f"1x{10 ** 12 - 1}x{T12}"],
         "kernel", "larger than the padded input"),
    _err("shape-tconv-crops-everything", ["shape", f"tconv k=1 p={T12}", "--input", f"1x{T12}x{T12}"], "padding"),
    _err("shape-pool-padding-over-half", ["shape", f"maxpool k={T12} p={T12}", "--input", f"1x{T12}x{T12}"],
         "padding", "kernel/2"),
    # shape: zero, negative, non-integers, text
    _layer("shape-kernel-0", "conv k=0", "kernel"),
    _layer("shape-kernel-negative", "conv k=-3", "kernel"),
    _layer("shape-stride-0", "conv k=3 s=0", "stride"),
    _layer("shape-padding-negative", "conv k=3 p=-1", "padding"),
    _layer("shape-dilation-0", "conv k=3 d=0", "dilation"),
    _layer("shape-kernel-fraction", "conv k=2.5", "kernel"),
    _layer("shape-kernel-text", "conv k=abc", "kernel"),
    _input("shape-size-0", "3x0x8", "--input"),
    _input("shape-size-negative", "3x-8x8", "--input"),
    _input("shape-size-fraction", "3x2.5x8", "--input"),
    _input("shape-size-text", "3xabcx8", "--input"),
    _input("shape-size-empty", "", "--input"),
    # padding
    _err("padding-kernel-1e30", ["padding", "--kernel", T30], "--kernel", "at most 10^18"),
    _err("padding-kernel-5000-digits", ["padding", "--kernel", D5000], "--kernel", "at most 10^18"),
    _err("padding-stride-1e30", ["padding", "--kernel", "3", "--stride", T30], "--stride", "at most 10^18"),
    _err("padding-dilation-1e30", ["padding", "--kernel", "3", "--dilation", T30], "--dilation", "at most 10^18"),
    _err("padding-stride-5000-digits", ["padding", "--kernel", "3", "--stride", D5000], "--stride"),
    _err("padding-kernel-0", ["padding", "--kernel", "0"], "--kernel"),
    _err("padding-kernel-negative", ["padding", "--kernel", "-3"], "--kernel"),
    _err("padding-kernel-fraction", ["padding", "--kernel", "2.5"], "--kernel"),
    _err("padding-kernel-text", ["padding", "--kernel", "abc"], "--kernel"),
    _err("padding-kernel-symbol", ["padding", "--kernel", "NF"], "--kernel"),
    _err("padding-kernel-empty", ["padding", "--kernel", ""], "--kernel"),
    _err("padding-stride-0", ["padding", "--kernel", "3", "--stride", "0"], "--stride"),
    _err("padding-stride-negative", ["padding", "--kernel", "3", "--stride", "-2"], "--stride"),
    _err("padding-stride-fraction", ["padding", "--kernel", "3", "--stride", "1.5"], "--stride"),
    _err("padding-dilation-0", ["padding", "--kernel", "3", "--dilation", "0"], "--dilation"),
    _err("padding-scale-huge-exponent", ["padding", "--kernel", "3", "--scale", "1e999999999"], "--scale", "exponent"),
    _err("padding-scale-power", ["padding", "--kernel", "3", "--scale", "2**10**10"], "--scale"),
    _err("padding-scale-zero-denominator", ["padding", "--kernel", "3", "--stride", "2", "--scale", "1/0"], "--scale"),
    _err("padding-scale-negative", ["padding", "--kernel", "3", "--stride", "2", "--scale", "-1/2"], "--scale"),
    _err("padding-scale-text", ["padding", "--kernel", "3", "--scale", "half"], "--scale"),
    _err("padding-scale-impossible-1e12", ["padding", "--kernel", T12, "--stride", "2", "--scale", T12], "--scale"),
    # solve: no solution is an answer (exit 1, the reason), a bad target an error naming --equal-to
    _err("solve-no-solution", [*SOLVE, "--equal-to", "1"], "no solution", "no positive NF", status=1),
    _err("solve-no-solution-json", [*SOLVE, "--equal-to", "1", "--json"], '"ok": false', "no positive NF",
         status=1),
    _err("solve-negative-target", [*SOLVE, "--equal-to", "-5"], "no solution", status=1),
    _err("solve-zero-target", [*SOLVE, "--equal-to", "0"], "no solution", status=1),
    _err("solve-fraction-below-minimum", [*SOLVE, "--equal-to", "5/2"], "no solution", status=1),
    _err("solve-no-solution-huge-size", [*SOLVE, "--equal-to", "1000", "--quantity", "connections",
                                         "--size", T12], "no solution", status=1),
    _err("solve-400-digit-target", [*SOLVE, "--equal-to", "9" * 400], "--equal-to", "at most 10^100"),
    _err("solve-5000-digit-target", [*SOLVE, "--equal-to", D5000], "--equal-to"),
    _err("solve-1e400-target", [*SOLVE, "--equal-to", "1e400"], "--equal-to", "exponent"),
    _err("solve-1e999999999-target", [*SOLVE, "--equal-to", "1e999999999"], "--equal-to"),
    _err("solve-power-target", [*SOLVE, "--equal-to", "2**10**10"], "--equal-to"),
    _err("solve-empty-target", [*SOLVE, "--equal-to", ""], "--equal-to"),
    _err("solve-blank-target", [*SOLVE, "--equal-to", "   "], "--equal-to"),
    _err("solve-empty-target-bad-model", ["solve", "NF", "--model", "nosuch", "--equal-to", ""], "--equal-to"),
    _err("solve-nan-target", [*SOLVE, "--equal-to", "nan"], "--equal-to"),
    _err("solve-inf-target", [*SOLVE, "--equal-to", "inf"], "--equal-to"),
    _err("solve-text-target", [*SOLVE, "--equal-to", "abc"], "--equal-to"),
    _err("solve-symbol-target", [*SOLVE, "--equal-to", "NF"], "--equal-to"),
    _err("solve-zero-denominator-target", [*SOLVE, "--equal-to", "1/0"], "--equal-to"),
    _err("solve-not-a-hyperparameter", ["solve", "H", "--model", "unet", "--equal-to", "5"], "symbol"),
    _err("solve-empty-symbol", ["solve", "", "--model", "unet", "--equal-to", "5"], "symbol"),
    _err("solve-size-1e30", [*SOLVE, "--equal-to", "5", "--size", T30], "--size", "at most 10^18"),
    # count and check: sizes and kernels beyond the bound (the message comes from the closed forms' checks)
    _err("count-size-1e30", ["count", "unet", "--size", T30, "--kernel", "3"], "size", "at most 10^18"),
    _err("count-kernel-1e30", ["count", "unet", "--size", "32", "--kernel", T30], "kernel", "at most 10^18"),
    _err("check-size-1e30", ["check", "9 NF", "--model", "unet", "--quantity", "outputs", "--size", T30,
                             "--kernel", "3"], "size", "at most 10^18"),
]


@pytest.mark.parametrize("case", CLI_ERRORS, ids=str)
def test_bad_sizes_on_the_command_line(case, tmp_path):
    run_cli_case(case, tmp_path)


# ----------------------------------------------------------------------------- Python API errors

def _later(path: str):
    """``_later("pkg.mod.fn")(*args)``: a call of ``fn(*args)`` made when the case runs (imports included)."""
    module, _, name = path.rpartition(".")

    def bind(*args, **kwargs):
        return lambda: getattr(importlib.import_module(module), name)(*args, **kwargs)
    return bind


_output_size = _later("analysis.shapes.output_size")
_solve_padding = _later("analysis.shapes.solve_padding")
_taps = _later("analysis.rules.taps.exact_taps_1d")
_ttaps = _later("analysis.rules.taps.exact_transposed_taps_1d")


def _solve(target, symbol="NF", **kwargs):
    def call():
        from analysis.counting import solve_for
        return solve_for(symbol, "unet", "weights", target, kernel=3, **kwargs)
    return call


def _api(id: str, call, *names: str) -> ApiCase:
    return ApiCase(id, call, names=names, timeout=FAST)


X = sp.Symbol("x")
BIG = 10 ** 30

API_ERRORS = [
    # output_size: every numeric argument bounded, integers only
    _api("output_size-size-1e30", _output_size("conv", BIG, 3), "size", "at most 10^18"),
    _api("output_size-kernel-1e30", _output_size("conv", 10, BIG), "kernel", "at most 10^18"),
    _api("output_size-stride-1e30", _output_size("conv", 10, 3, stride=BIG), "stride"),
    _api("output_size-padding-1e30", _output_size("conv", 10, 3, padding=BIG), "padding"),
    _api("output_size-dilation-1e30", _output_size("conv", 10, 3, dilation=BIG), "dilation"),
    _api("output_size-tconv-output-padding-1e30", _output_size("transposed", 10, 3, stride=2, output_padding=BIG),
         "output_padding"),
    _api("output_size-pool-padding-1e30", _output_size("maxpool", 10, 3, padding=BIG), "padding"),
    _api("output_size-negative-1e30", _output_size("conv", -BIG, 3), "size"),
    _api("output_size-5000-digits", _output_size("conv", 10 ** 5000, 3), "size", "digits"),
    _api("output_size-size-0", _output_size("conv", 0, 3), "size"),
    _api("output_size-kernel-0", _output_size("conv", 10, 0), "kernel"),
    _api("output_size-stride-0", _output_size("conv", 10, 3, stride=0), "stride"),
    _api("output_size-padding-negative", _output_size("conv", 10, 3, padding=-1), "padding"),
    _api("output_size-size-float", _output_size("conv", 10.5, 3), "size"),
    _api("output_size-size-text", _output_size("conv", "10", 3), "size"),
    _api("output_size-size-bool", _output_size("conv", True, 3), "size"),
    _api("output_size-kernel-rational", _output_size("conv", 10, sp.Rational(3, 2)), "kernel"),
    _api("output_size-stride-float", _output_size("conv", 10, 3, stride=2.0), "stride"),
    _api("output_size-kernel-none", _output_size("conv", 10), "kernel"),
    _api("output_size-upsample-huge-float", _output_size("upsample", 10, scale_factor=1e300), "scale_factor"),
    _api("output_size-upsample-huge-int", _output_size("upsample", 10, scale_factor=BIG), "scale_factor"),
    _api("output_size-upsample-power-text", _output_size("upsample", 10, scale_factor="2**10**10"), "scale_factor"),
    _api("output_size-upsample-nan", _output_size("upsample", 10, scale_factor=float("nan")), "scale_factor"),
    _api("output_size-upsample-zero", _output_size("upsample", 10, scale_factor=0), "scale_factor"),
    _api("output_size-upsample-symbol", _output_size("upsample", 10, scale_factor=X), "scale_factor"),
    _api("output_size-kernel-too-large-1e12", _output_size("conv", 10 ** 12 - 1, 10 ** 12), "kernel"),
    # solve_padding
    _api("solve_padding-kernel-1e30", _solve_padding(BIG), "kernel", "at most 10^18"),
    _api("solve_padding-stride-1e30", _solve_padding(3, stride=BIG), "stride", "at most 10^18"),
    _api("solve_padding-dilation-1e30", _solve_padding(3, dilation=BIG), "dilation", "at most 10^18"),
    _api("solve_padding-kernel-0", _solve_padding(0), "kernel"),
    _api("solve_padding-kernel-negative", _solve_padding(-3), "kernel"),
    _api("solve_padding-kernel-float", _solve_padding(2.5), "kernel"),
    _api("solve_padding-kernel-text", _solve_padding("3"), "kernel"),
    _api("solve_padding-kernel-bool", _solve_padding(True), "kernel"),
    _api("solve_padding-stride-0", _solve_padding(3, stride=0), "stride"),
    _api("solve_padding-stride-symbol", _solve_padding(3, stride=X), "stride"),
    _api("solve_padding-scale-exponent", _solve_padding(3, scale="1e999999999"), "scale", "exponent"),
    _api("solve_padding-scale-power", _solve_padding(3, scale="2**10**10"), "scale"),
    _api("solve_padding-scale-impossible", _solve_padding(10 ** 12, stride=2, scale=3), "scale"),
    # exact tap counts
    _api("exact_taps_1d-size-1e30", _taps(BIG, BIG, 3, 1, 1, 1, 1), "size", "at most 10^18"),
    _api("exact_taps_1d-kernel-1e30", _taps(10, 8, BIG, 1, 0, 0, 1), "kernel"),
    _api("exact_taps_1d-stride-0", _taps(10, 8, 3, 0, 0, 0, 1), "stride"),
    _api("exact_taps_1d-padding-negative", _taps(10, 8, 3, 1, -1, 0, 1), "padding"),
    _api("exact_taps_1d-right-padding-1e30", _taps(10, 8, 3, 1, 0, BIG, 1), "right_padding"),
    _api("exact_taps_1d-dilation-0", _taps(10, 8, 3, 1, 0, 0, 0), "dilation"),
    _api("exact_taps_1d-kernel-rational", _taps(10, 8, sp.Rational(5, 2), 1, 0, 0, 1), "kernel"),
    _api("exact_taps_1d-symbolic-size-stride-1e30", _taps(sp.Symbol("H", positive=True), 1, 3, BIG, 1, 1, 1),
         "stride"),
    _api("exact_transposed_taps_1d-stride-0", _ttaps(10, 3, 0, 1, 0, 1), "stride"),
    _api("exact_transposed_taps_1d-size-1e30", _ttaps(BIG, 3, 2, 1, 1, 1), "size"),
    _api("exact_transposed_taps_1d-output-padding-negative", _ttaps(10, 3, 2, 1, -1, 1), "output_padding"),
    # solve_for targets
    _api("solve_for-400-digits", _solve(10 ** 400), "target", "at most 10^100"),
    _api("solve_for-5000-digit-text", _solve(D5000), "target"),
    _api("solve_for-exponent-text", _solve("1e999999999"), "target", "exponent"),
    _api("solve_for-empty", _solve(""), "target"),
    _api("solve_for-nan", _solve(float("nan")), "target"),
    _api("solve_for-inf", _solve(float("inf")), "target"),
    _api("solve_for-bool", _solve(True), "target"),
    _api("solve_for-symbol", _solve(X), "target"),
    _api("solve_for-sympy-infinity", _solve(sp.oo), "target"),
    _api("solve_for-list", _solve([1, 2]), "target"),
    _api("solve_for-not-a-model", _solve("no_such_model"), "target"),
    _api("solve_for-empty-symbol", _solve(5, symbol=""), "symbol"),
]


@pytest.mark.parametrize("case", API_ERRORS, ids=str)
def test_bad_sizes_in_the_python_api(case):
    run_api_case(case)


def test_no_solution_is_an_answer_not_an_error():
    from analysis.counting import solve_for
    res = solve_for("NF", "unet", "weights", 1, kernel=3)
    assert not res.ok and res.best is None and res.candidates == ()
    assert "no positive NF" in res.reason and "5877" in res.reason  # 36 + 441 + 5400 at NF = 1
    data = res.to_dict()
    assert data["ok"] is False and data["equation"] == "Eq(36*NF**2 + 441*NF + 5400, 1)"
    exact = solve_for("NF", "unet", "weights", 36 * 32 ** 2 + 441 * 32 + 5400, kernel=3)
    assert exact.ok and exact.exact and exact.best == 32 and exact.reason is None
