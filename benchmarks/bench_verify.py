"""Verification speed.

1. ``archcount verify --all`` with the default configurations, in a new process (imports
   included).  Target: under 60 s.
2. The exact (structural) connection measurement of a full zoo model — every conv, transposed
   conv, pooling and upsampling layer run on all-ones inputs in float64 — for inputs from 32x32 to
   1024x1024, with the cost per pixel (constant when the cost is linear in pixels).  Target: under
   10 s at 512x512.  ``--literal`` also times the literal layer shapes (no channel folding) up to
   ``--literal-max``.

Run: python benchmarks/bench_verify.py [--threads N] [--literal] [--skip-cli] [--repeats N]
Writes benchmarks/results/verify.json.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _common import ROOT, table, write_results

TARGET_ALL_S = 60.0
TARGET_512_S = 10.0
SIZES = (32, 64, 128, 256, 512, 1024)
MODELS = ("pool_upsample", "conv_transpose", "unet")


def verify_all() -> dict:
    cmd = [sys.executable, "-m", "reports.cli", "verify", "--all", "--quiet", "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    import json
    summary = json.loads(out.stdout)["summary"] if out.stdout.strip().startswith("{") else {}
    return {"command": "archcount verify --all --quiet --json", "seconds": seconds, "exit_status": out.returncode,
            "summary": summary, "target_s": TARGET_ALL_S, "met": seconds < TARGET_ALL_S}


def structural(name: str, size: int, fold: bool, repeats: int = 1) -> dict:
    """Best of ``repeats`` runs of the structural phase of measure() (the model forward and the fx
    interpreter run are timed separately in measure_total_s)."""
    import models
    from analysis.measure import measure
    spec = models.spec(name)
    module = models.build(name)
    best = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        m = measure(module, (1, spec.defaults["num_in_channels"], size, size), model=name, flops=False,
                    fold_channels=fold)
        total = time.perf_counter() - t0
        if best is None or m.seconds["structural"] < best[0].seconds["structural"]:
            best = (m, total)
    m, total = best
    s = m.seconds["structural"]
    exact = sum(lm.connections.get("exclude", lm.connections.get("exact", 0)) for lm in m.layers
                if lm.kind in ("conv", "transposed"))
    return {"model": name, "size": f"{size}x{size}", "fold_channels": fold, "structural_s": s,
            "us_per_pixel": s / size ** 2 * 1e6, "measure_total_s": total,
            "exact_weight_connections": exact}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--literal", action="store_true", help="also time the literal (unfolded) layer shapes")
    ap.add_argument("--literal-max", type=int, default=512, help="largest size for --literal (default 512)")
    ap.add_argument("--skip-cli", action="store_true", help="skip the 'verify --all' timing")
    ap.add_argument("--repeats", type=int, default=3, help="best of N runs per size up to 256x256 (default 3)")
    args = ap.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    payload: dict = {"threads": torch.get_num_threads()}

    if not args.skip_cli:
        cli = verify_all()
        payload["verify_all"] = cli
        print(table([{"command": cli["command"], "seconds": cli["seconds"], "exit": cli["exit_status"],
                      "configs": cli["summary"].get("configs_checked"),
                      "quantities": cli["summary"].get("quantities_checked"),
                      "mismatches": cli["summary"].get("mismatches"), "target_s": TARGET_ALL_S,
                      "met": "yes" if cli["met"] else "NO"}],
                    "archcount verify --all (default configurations, new process, imports included)"))
        print()

    structural("unet", 32, True)  # warm-up (first-call overheads)
    rows = []
    for name in MODELS:
        for size in SIZES:
            reps = args.repeats if size <= 256 else 1
            rows.append(structural(name, size, True, reps))
            if args.literal and size <= args.literal_max:
                rows.append(structural(name, size, False, reps))
    for r in rows:
        base = next(x for x in rows if x["model"] == r["model"] and x["size"] == "256x256"
                    and x["fold_channels"] == r["fold_channels"])
        r["per_pixel_vs_256"] = r["us_per_pixel"] / base["us_per_pixel"]
    shown = [{"model": r["model"], "input": r["size"], "channels": "folded" if r["fold_channels"] else "literal",
              "structural_s": r["structural_s"], "us_per_pixel": r["us_per_pixel"],
              "per_pixel_vs_256": r["per_pixel_vs_256"], "exact_conv_connections": f"{r['exact_weight_connections']:,}"}
             for r in rows]
    print(table(shown, "exact (structural) connection measurement of every layer, float64, batch 1 "
                       f"({payload['threads']} torch thread(s)); per-pixel cost flat = linear in pixels"))
    at512 = [r for r in rows if r["size"] == "512x512" and r["fold_channels"]]
    met512 = all(r["structural_s"] < TARGET_512_S for r in at512)
    print(f"\n512x512 target < {TARGET_512_S:.0f} s: " + ", ".join(f"{r['model']} {r['structural_s']:.2f} s"
                                                           for r in at512) + (" (met)" if met512 else " (NOT met)"))
    payload.update({"structural": rows, "target_512_s": TARGET_512_S, "met_512": met512})
    path = write_results("verify", payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
