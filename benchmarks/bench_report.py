"""Report time: the analysis-only report (md + pdf, three models; target under 15 s) in a fresh process,
and, when finished runs exist under --runs, the report that reuses them.

Run: python benchmarks/bench_report.py [--runs runs]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, table, write_results

TARGET_S = 15.0


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reports.cli", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs", help="finished runs to reuse (skipped when absent)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        s = timed(["report", "--out", f"{tmp}/a", "--format", "md,pdf", "--quiet"])
        rows.append({"report": "analysis only (md+pdf, 3 models, new process)", "seconds": s, "target_s": TARGET_S,
                     "met": "yes" if s < TARGET_S else "NO"})
        if (ROOT / args.runs).is_dir():
            s = timed(["report", "--out", f"{tmp}/b", "--runs", args.runs, "--format", "md,pdf", "--quiet"])
            rows.append({"report": f"with finished runs from {args.runs}/ (no training)", "seconds": s,
                         "target_s": "-", "met": "-"})
    print(table(rows, "report build time"))
    print(write_results("report", {"rows": rows, "target_s": TARGET_S}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
