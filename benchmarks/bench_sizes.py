"""Huge sizes (issue 13): the issue's commands at 10^12 through the CLI, and the closed forms behind them.

Table 1, one row per command: process_s = ``python -m reports.cli ...`` in a fresh process
(interpreter start and imports included); first_s = the first call in a warm process (imports
done; a zoo model's capture built); warm_s = best of 5 repeats.  Target: warm_s under 0.1 s.

Table 2: the closed forms themselves (best of 20 calls, in microseconds) at 10^12 and 10^18.

Run: python benchmarks/bench_sizes.py
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from typing import Any, Callable

from _common import ROOT, table, write_results

TARGET_S = 0.1
T12 = str(10 ** 12)

COMMANDS: list[list[str]] = [
    ["shape", "conv k=3 s=2 p=1", "--input", "3x1000000000x1000000000"],
    ["shape", "conv k=3 s=2 p=1", "--input", f"3x{T12}x{T12}"],
    ["shape", f"conv k={T12} d=3 s=7", "--input", f"1x{4 * 10 ** 12}x{4 * 10 ** 12}"],
    ["padding", "--kernel", T12, "--stride", "2"],
    ["padding", "--kernel", T12, "--stride", T12, "--transposed"],
    ["count", "unet", "--size", T12, "--kernel", "3"],
    ["count", "conv_transpose", "--size", T12, "--kernel", "3", "--set", "transposed=exact",
     "--set", "padding_taps=exclude"],
    ["check", "2 H W NC + 5/8 H W NF", "--model", "unet", "--quantity", "outputs", "--size", T12, "--kernel", "3"],
    ["solve", "NF", "--model", "unet", "--equal-to", "1", "--kernel", "3", "--size", T12],
]


def in_process(argv: list[str]) -> float:
    from reports.cli import main
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(argv)
    return time.perf_counter() - start


def fresh_process(argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reports.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                   timeout=600)
    return time.perf_counter() - start


def closed_forms() -> list[tuple[str, Callable[[], Any]]]:
    from analysis.rules.taps import exact_taps_1d, exact_transposed_taps_1d
    from analysis.shapes import output_size, solve_padding
    from analysis.symbols import H
    n, e18 = 10 ** 12, 10 ** 18
    return [
        ("exact_taps_1d n=1e12 k=3 s=2 p=1", lambda: exact_taps_1d(n, n // 2, 3, 2, 1, 1, 1)),
        ("exact_taps_1d n=1e18 k=1e12 s=7 d=3", lambda: exact_taps_1d(e18, (e18 - 3 * (n - 1) - 1) // 7 + 1,
                                                                      n, 7, 0, 0, 3)),
        ("exact_taps_1d n=H k=1e12 p=1e12-1", lambda: exact_taps_1d(H, H + n - 1, n, 1, n - 1, n - 1, 1)),
        ("exact_transposed_taps_1d n=1e18 k=1e12 s=5 p=1e12", lambda: exact_transposed_taps_1d(e18, n, 5, n, 3, 1)),
        ("output_size conv n=1e18 k=1e12 s=7 d=3 (dropped rows)", lambda: output_size("conv", e18, n, 7, 0, 3)),
        ("output_size transposed n=1e18 k=3 p=1e12 (dropped)", lambda: output_size("transposed", e18, 3, 2, n)),
        ("solve_padding k=1e12 s=1e12 transposed", lambda: solve_padding(n, stride=n, transposed=True)),
    ]


def main() -> int:
    import torch  # noqa: F401  (imports done before timing)

    import analysis.capture  # noqa: F401
    import models  # noqa: F401
    rows = []
    for argv in COMMANDS:
        process = fresh_process(argv)
        first = in_process(argv)
        warm = min(in_process(argv) for _ in range(5))
        text = "archcount " + " ".join(f'"{a}"' if " " in a else a for a in argv)
        rows.append({"command": text if len(text) <= 90 else text[:87] + "...", "process_s": process,
                     "first_s": first, "warm_s": warm, "met": "yes" if warm < TARGET_S else "NO"})
    print(table(rows, f"archcount at 10^12 (process = fresh interpreter; first/warm = in a warm process; "
                      f"target warm < {TARGET_S} s)"))
    forms = []
    for name, fn in closed_forms():
        best = min(_timed(fn) for _ in range(20))
        forms.append({"closed form": name, "best_us": round(best * 1e6, 1)})
    print()
    print(table(forms, "closed forms (best of 20, microseconds)"))
    path = write_results("sizes", {"rows": rows, "closed_forms": forms, "target_s": TARGET_S})
    print(f"wrote {path}")
    return 0 if all(r["met"] == "yes" for r in rows) else 1


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
