"""Where a training step's time goes (torch.profiler), archcount's epoch against the reference loop.

Run: python benchmarks/profile_train.py [--model unet] [--steps 10]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from _common import write_results


def main(argv=None) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import models
    from bench_train import archcount_epoch, load_arrays, reference_epoch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet")
    ap.add_argument("--steps", type=int, default=10, help="training batches profiled (batch 100)")
    args = ap.parse_args(argv)
    n = args.steps * 100
    x_tr, y_tr, x_va, y_va, source, _ = load_arrays(n)
    dev = torch.device("cpu")
    out = {}
    for kind in ("reference", "archcount"):
        torch.manual_seed(0)
        net = models.build(args.model)
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
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
        conv = sum(e.self_cpu_time_total for e in prof.key_averages()
                   if "conv" in e.key or "mkldnn" in e.key) / 1e6
        print(f"\n=== {kind}: {args.model}, {args.steps} training batches + validation; total self CPU {total:.2f} s, "
              f"convolution kernels {conv:.2f} s ({100 * conv / total:.0f}%)")
        print(table)
        out[kind] = {"total_cpu_s": total, "conv_cpu_s": conv}
    print(write_results(f"profile_train_{args.model}", {"model": args.model, "steps": args.steps, "data": source,
                                                       **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
