"""Report time, in a fresh process each: the analysis-only report (md + pdf, three models; target
under 10 s), and the report from finished runs with the comparison figures and evidence (target under
20 s): once with the evidence computed (a copy of the runs without evidence.json), once with it cached.

Run: python benchmarks/bench_report.py [--runs runs] [--data PATH]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, table, write_results

TARGET_ANALYSIS_S = 10.0
TARGET_RUNS_S = 20.0


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reports.cli", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def row(what: str, seconds: float, target: float) -> dict:
    return {"report": what, "seconds": seconds, "target_s": target, "met": "yes" if seconds < target else "NO"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs", help="finished runs to reuse (skipped when absent)")
    ap.add_argument("--data", help="the data the runs were trained on (for the evidence), if not where they say")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(row("analysis only (md+pdf, 3 models, new process)",
                        timed(["report", "--out", f"{tmp}/a", "--format", "md,pdf", "--quiet"]), TARGET_ANALYSIS_S))
        src = ROOT / args.runs
        if src.is_dir() and any(src.glob("*/summary.json")):
            runs = Path(tmp) / "runs"
            shutil.copytree(src, runs, ignore=shutil.ignore_patterns("evidence.json"))
            extra = ["--data", args.data] if args.data else []
            cmd = ["report", "--out", f"{tmp}/b", "--runs", str(runs), "--format", "md,pdf", "--quiet", *extra]
            rows.append(row(f"from {len(list(runs.glob('*/summary.json')))} finished runs, evidence computed",
                            timed(cmd), TARGET_RUNS_S))
            rows.append(row("the same, evidence cached in <run>/evidence.json", timed(cmd), TARGET_RUNS_S))
    print(table(rows, "report build time"))
    print(write_results("report", {"rows": rows, "targets_s": {"analysis": TARGET_ANALYSIS_S,
                                                                "runs": TARGET_RUNS_S}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
