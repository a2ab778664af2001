"""The formula checker: typical checks in a warm process. Targets: under 0.1 s warm (issue 15),
under 2 s with the checker's tables rebuilt (issue 8).

Columns: first_s = the first such check in this process (the model's capture and tables built);
warm_s = best of 5 repeats, sympy's expression cache cleared before each (the checker's tables of
the model stay: a grader checking many answers); rebuilt_s = best of 3 with the checker's table
cache cleared too (the fx capture stays cached, as for new hyperparameters of a captured model).
The slip search of a wrong answer is part of every wrong check (a pair search is bounded by
``SLIP_BUDGET`` lookups; its use is shown per check).

Run: python benchmarks/bench_check.py
"""
from __future__ import annotations

import time
from typing import Any, Callable

from _common import table, write_results

TARGET_WARM_S = 0.1
TARGET_S = 2.0


def cases() -> list[tuple[str, Callable[[], Any]]]:
    from analysis.checker import check, check_padding, check_scaled, check_shape
    return [
        ("right formula (text, symbolic k)", lambda: check("k^2 (NIC NF + 4 NF^2 + NF NC + NC^2)",
                                                           "pool_upsample", "weights")),
        ("wrong coefficient (k=3 assumed)", lambda: check("9 NIC NF + 27 NF^2 + 9 NF NC + 9 NC^2",
                                                          "pool_upsample", "weights")),
        ("missing biases (unet, parameters)", lambda: check(
            r"k^{2}\left(N_{IC} N_F + 4 N_F^2 + 2 N_F N_C + N_C^2 + N_{IC} N_C\right) + 8 N_F + 2 N_C",
            "unet", "weights", convention="parameters")),
        ("NF for NC in one term (connections)", lambda: check(
            "k^2 H W (NIC NF + 5/8 NF^2 + NF NC/4 + NC^2) + 3/2 NF H W + NF H W/4 + NF H W",
            "pool_upsample", "connections", convention="all-layers")),
        ("numeric answer at 32x32", lambda: check("49728", "pool_upsample", "weights", input_size=32)),
        ("shape (floor, kernel forgotten)", lambda: check_shape("16x513x385", "conv k=5 s=2 p=1 out=16",
                                                                "3x1024x768")),
        ("padding (off by one)", lambda: check_padding("p=2", 4, stride=2)),
        ("doubling claim, 72 conventions (k=3)", lambda: check_scaled("4x", "unet", "connections", kernel=3)),
        ("relation 2p - op = 2 (tconv k=4 s=2)", lambda: check_padding("2p - op = 2", 4, 2, transposed=True)),
        ("alternatives p = 1 or p = 2", lambda: check_padding("p = 1 or p = 2", 4, stride=2)),
        ("relation p = (k-1)/2, symbolic k (64 kernels)", lambda: check_padding("p = (k-1)/2", "k")),
        ("chained working (3 links)", lambda: check(
            "NF*16*16 + 2*NF*8*8 + NF*16*16 + 2*32*32*NC = 640 NF + 2048 NC = 640 NF + 2048 NC",
            "conv_transpose", "outputs", input_size=32, kernel=3)),
        ("pair of slips: BatchNorm at H x W + NF for NC", lambda: check(
            "k^2 H W (NIC NF + 5/8 NF^2 + NF^2/4 + NC^2) + 4 NF H W + NC H W", "pool_upsample", "connections")),
        ("shape per axis (961x641)", lambda: check_shape("16x961x641", "conv k=5 s=2 p=1 out=16", "3x1920x1080")),
        ("size 10^12 (closed form)", lambda: check("NF", "unet", "weights", input_size=10**12, kernel=3)),
    ]


def timed(fn: Callable[[], Any]) -> float:
    from sympy.core.cache import clear_cache
    clear_cache()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    from analysis.checker import cache_clear
    rows = []
    for name, fn in cases():
        first = timed(fn)
        warm = min(timed(fn) for _ in range(5))
        rebuilt = []
        for _ in range(3):
            cache_clear()
            rebuilt.append(timed(fn))
        result = fn()  # leave the cache warm for the next case
        used = getattr(result, "search", {}).get("used", "")
        ok = warm < TARGET_WARM_S and min(rebuilt) < TARGET_S
        rows.append({"check": name, "first_s": first, "warm_s": warm, "rebuilt_s": min(rebuilt),
                     "slip_lookups": used, "target_warm_s": TARGET_WARM_S, "target_rebuilt_s": TARGET_S,
                     "met": "yes" if ok else "NO"})
    print(table(rows, "archcount check: typical checks (first = first in process; warm = best of 5, "
                      "sympy cache cleared; rebuilt = checker tables rebuilt, capture cached)"))
    path = write_results("check", {"rows": rows, "target_warm_s": TARGET_WARM_S, "target_rebuilt_s": TARGET_S})
    print(f"wrote {path}")
    return 0 if all(r["met"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
