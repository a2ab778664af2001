"""Where training time goes.

``--mode cli`` (default): the whole ``archcount train`` command in this process under cProfile, split
into its phases: imports aside, data loading, palette, inputs and targets, the thread choice, the
training steps, validation, checkpoint and metrics writing, samples, progress output.

``--mode ops``: torch.profiler over one epoch of archcount's loop and of the reference loop
(which operators take the time).

Run: python benchmarks/profile_train.py [--mode cli] [--model unet] [--epochs 3]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time

import numpy as np

from _common import table, write_results

#: (phase, module file suffix, function name): cumulative time of these functions.
PHASES = [
    ("data: load the category (decoded cache)", "models/data.py", "load_category"),
    ("palette", "models/palette.py", "resolve_palette"),
    ("inputs and targets (greyscale, nearest colour)", "models/loop.py", "colourization_arrays"),
    ("model size check (before any data are read)", "models/training.py", "check_memory"),
    ("thread choice (free cores, timed steps)", "models/execution.py", "choose"),
    ("training steps", "models/loop.py", "train_epoch"),
    ("validation", "models/loop.py", "evaluate"),
    ("checkpoint serialisation", "models/runs.py", "checkpoint_bytes"),
    ("run files written (atomic, fsync, manifest)", "models/runs.py", "write_run_files"),
    ("samples.png", "models/loop.py", "samples_png"),
    ("progress lines", "models/execution.py", "__call__"),
]


def profile_cli(model: str, epochs: int) -> list[dict]:
    import models.schedule  # noqa: F401 - imports (torch) are not part of the command's phases
    import reports.commands.train  # noqa: F401
    from reports.cli import main
    with tempfile.TemporaryDirectory(prefix="profile-train-") as tmp:
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        rc = main(["train", "--model", model, "--epochs", str(epochs), "--runs", tmp])
        prof.disable()
        wall = time.perf_counter() - t0
    if rc:
        raise SystemExit(f"archcount train failed ({rc})")
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = []
    for phase, suffix, name in PHASES:
        cum = sum(v[3] for (file, _, fn), v in stats.items() if fn == name and file.endswith(suffix))
        rows.append({"phase": phase, "s": cum, "share %": 100 * cum / wall})
    rest = wall - sum(r["s"] for r in rows if r["phase"] != "checkpoint serialisation")  # inside the writes
    rows.append({"phase": "everything else (model build, startup of the run)", "s": rest, "share %": 100 * rest / wall})
    rows.append({"phase": "whole command (imports excluded)", "s": wall, "share %": 100.0})
    return rows


def profile_ops(model: str, steps: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import models
    from bench_train import archcount_epoch, load_arrays
    from reference_train import reference_epoch
    x_tr, y_tr, x_va, y_va, source, _ = load_arrays(steps * 100)
    dev = torch.device("cpu")
    out = {}
    for kind in ("reference", "archcount"):
        torch.manual_seed(0)
        net = models.build(model)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        if kind == "archcount":
            net = net.to(memory_format=torch.channels_last)
            x = torch.from_numpy(x_tr).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(y_tr).long()
            xv = torch.from_numpy(x_va).contiguous(memory_format=torch.channels_last)
            yv = torch.from_numpy(y_va).long()
            run = lambda: archcount_epoch(net, opt, x, y, xv, yv, 100, torch.Generator().manual_seed(0))  # noqa: E731
        else:
            rng = np.random.default_rng(0)
            run = lambda: reference_epoch(net, opt, x_tr, y_tr, x_va, y_va, 100, dev, rng)  # noqa: E731
        run()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
        conv = sum(e.self_cpu_time_total for e in prof.key_averages()
                   if "conv" in e.key or "mkldnn" in e.key) / 1e6
        print(f"\n=== {kind}: {model}, {steps} training batches + validation; total self CPU {total:.2f} s, "
              f"convolution kernels {conv:.2f} s ({100 * conv / total:.0f}%)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        out[kind] = {"total_cpu_s": total, "conv_cpu_s": conv, "data": source}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["cli", "ops"], default="cli")
    ap.add_argument("--model", default="unet")
    ap.add_argument("--epochs", type=int, default=3, help="cli mode")
    ap.add_argument("--steps", type=int, default=10, help="ops mode: training batches profiled (batch 100)")
    args = ap.parse_args(argv)
    if args.mode == "cli":
        import os
        load = os.getloadavg()[0]
        rows = profile_cli(args.model, args.epochs)
        print(table(rows, f"archcount train --model {args.model} --epochs {args.epochs} (defaults) under cProfile; "
                          f"load {load:.2f}"))
        print(write_results(f"profile_train_cli_{args.model}", {"model": args.model, "epochs": args.epochs,
                                                               "load_avg": load, "rows": rows}))
        return 0
    out = profile_ops(args.model, args.steps)
    print(write_results(f"profile_train_{args.model}", {"model": args.model, "steps": args.steps, **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
