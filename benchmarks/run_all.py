"""Run every benchmark and print every table (make bench)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_count.py", "bench_corpus.py", "bench_check.py", "bench_grade.py", "bench_sizes.py", "bench_verify.py",
           "bench_report.py", "bench_train.py"]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n=== {script}", flush=True)
        rc = subprocess.run([sys.executable, str(HERE / script)], cwd=HERE.parent).returncode
        if rc:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
