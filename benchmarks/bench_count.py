"""count() per zoo model: cold process and warm. Target: warm under 1 s.

Run: python benchmarks/bench_count.py
"""
from __future__ import annotations

import subprocess
import sys
import time

from _common import ROOT, table, write_results

TARGET_WARM_S = 1.0


def cold(name: str) -> float:
    code = ("import time; t=time.perf_counter(); from analysis import count; "
            f"count({name!r}).totals(); print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def warm(name: str, repeats: int = 5) -> float:
    from analysis import count
    count(name).totals()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        count(name).totals()
        times.append(time.perf_counter() - t)
    return min(times)


def warm_uncached(name: str, repeats: int = 3) -> float:
    """Warm process, but the fx capture is redone (as for new hyperparameters)."""
    from analysis import count
    from analysis.counting import _cached_capture
    times = []
    for _ in range(repeats):
        _cached_capture.cache_clear()
        t = time.perf_counter()
        count(name).totals()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    import models
    rows = []
    for name in models.available():
        c = cold(name)
        w = warm(name)
        wu = warm_uncached(name)
        rows.append({"model": name, "cold_s": c, "warm_s": w, "warm_uncached_s": wu, "target_warm_s": TARGET_WARM_S,
                     "met": "yes" if max(w, wu) < TARGET_WARM_S else "NO"})
    print(table(rows, "count() per zoo model (cold = new process incl. imports; warm = best of 5, "
                      "symbolic H, W, all hyperparameters symbolic;\n"
                      "warm_uncached = warm process with the fx capture redone)"))
    path = write_results("count", {"rows": rows, "target_warm_s": TARGET_WARM_S})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
