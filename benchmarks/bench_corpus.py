"""The real-architecture corpus (tests/corpus): count() of ResNet-50, symbolic sizes, verify of every model,
and the CLI on a user's file.

Targets (issue 12): count() of ResNet-50 at 224x224 with concrete channels under 1 s warm; with
symbolic H, W under 5 s; verify of the whole corpus under 120 s.  The CLI row times what a user
runs: ``archcount count FILE.py:NAME --input 3x224x224`` in a new process (imports included).

Run: python benchmarks/bench_corpus.py
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _common import ROOT, table, write_results

sys.path.insert(0, str(ROOT / "tests"))
TARGETS = {"count_resnet50_warm_s": 1.0, "count_resnet50_symbolic_s": 5.0, "verify_corpus_s": 120.0}


def best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    warnings.simplefilter("ignore")
    from analysis import H, W, count
    from analysis.verify import verify
    from corpus import REGISTRY
    resnet = REGISTRY["resnet50"].make()
    t = time.perf_counter()
    count(resnet, input_shape=(3, 224, 224)).totals()
    first = time.perf_counter() - t
    warm = best(lambda: count(resnet, input_shape=(3, 224, 224)).totals())
    symbolic = best(lambda: count(resnet, input_shape=(3, H, W)).totals(), repeats=2)
    rows = [{"what": "count(resnet50, 3x224x224), first in process", "seconds": first, "target_s": "-"},
            {"what": "count(resnet50, 3x224x224), warm (best of 3)", "seconds": warm,
             "target_s": TARGETS["count_resnet50_warm_s"]},
            {"what": "count(resnet50, 3xHxW) symbolic, warm (best of 2)", "seconds": symbolic,
             "target_s": TARGETS["count_resnet50_symbolic_s"]}]
    per_model = []
    t_all = time.perf_counter()
    for name, entry in REGISTRY.items():
        model = entry.make()
        t = time.perf_counter()
        rep = verify(model, configs=[{"H": entry.input_shape[1], "W": entry.input_shape[2]}], n_random=0,
                     conventions=["weighted", "all-layers", "parameters"], progress=False)
        s = rep.summary()
        per_model.append({"model": name, "seconds": time.perf_counter() - t, "quantities": s["quantities_checked"],
                          "mismatches": s["mismatches"], "skipped": s["configs_skipped"]})
    total = time.perf_counter() - t_all
    rows.append({"what": f"verify of the whole corpus ({len(per_model)} models, "
                         f"{sum(r['quantities'] for r in per_model):,} quantities, "
                         f"{sum(r['mismatches'] for r in per_model)} mismatches)", "seconds": total,
                 "target_s": TARGETS["verify_corpus_s"]})
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "my_resnet.py"
        src.write_text(f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
                       "from corpus.resnet import resnet50\n")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reports.cli", "count", f"{src}:resnet50", "--input", "3x224x224"],
                       cwd=ROOT, check=True, capture_output=True)
        rows.append({"what": "archcount count my_resnet.py:resnet50 --input 3x224x224 (new process)",
                     "seconds": time.perf_counter() - t, "target_s": "-"})
    for r in rows:
        r["met"] = "-" if r["target_s"] == "-" else ("yes" if r["seconds"] < r["target_s"] else "NO")
    print(table(rows, "real-architecture corpus"))
    print()
    print(table(per_model, "verify per corpus model (weighted, all-layers, parameters; its published input size)"))
    path = write_results("corpus", {"rows": rows, "verify": per_model, "targets": TARGETS})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
