"""Training throughput: archcount's epoch against a reference loop written like the exercise's starter code.

Reference: numpy arrays sliced per batch, converted to tensors and moved to the device at every step,
float32, no channels_last or AMP, validation without no_grad. archcount: tensors on the device once,
channels_last where it helps, validation under inference_mode (models.training.train_epoch/evaluate).
Same model initialisation, batch size, data and number of steps, back to back in one process.
The target is met by the default (fp32) archcount epoch; ``--amp bf16`` (autocast) is measured as well.

Run: python benchmarks/bench_train.py [--epochs 2] [--images 5000] [--device auto]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _common import table, write_results

MODELS = ("pool_upsample", "conv_transpose", "unet")


def load_arrays(n_images: int):
    """Horse images from the shared zip (or the usual data resolution), with the published palette if present."""
    from models.data import find_shared_zip, load_category
    from models.palette import load_palette
    from models.training import colourization_arrays
    data = load_category(None, "horse", quiet=True)
    shared = find_shared_zip()
    pal_path = shared.parent / "colour_kmeans24_cat7.csv" if shared else None
    if pal_path and pal_path.is_file():
        palette = load_palette(pal_path)
    else:
        from models.palette import kmeans_palette  # type: ignore[attr-defined]
        palette = kmeans_palette(data)
    x_tr, y_tr, x_va, y_va = colourization_arrays(data, palette)[:4]
    return (x_tr[:n_images], y_tr[:n_images], x_va[: max(1, n_images // 5)], y_va[: max(1, n_images // 5)],
            data.description, palette.k)


def reference_epoch(model, optimizer, x_np, y_np, x_val, y_val, batch_size, dev, rng):
    """The starter code's way: slice numpy, convert and move every batch, validation with autograd on."""
    import torch
    import torch.nn.functional as F
    model.train()
    perm = rng.permutation(len(x_np))
    x_np, y_np = x_np[perm], y_np[perm]
    losses = []
    for i in range(0, len(x_np), batch_size):
        xs = torch.from_numpy(x_np[i:i + batch_size]).float().to(dev)
        ys = torch.from_numpy(y_np[i:i + batch_size]).long().to(dev)
        optimizer.zero_grad()
        out = model(xs)
        loss = F.cross_entropy(out, ys)
        loss.backward()
        optimizer.step()
        losses.append(loss.item() * len(xs))
    model.eval()
    correct, total = 0, 0
    for i in range(0, len(x_val), batch_size):
        xs = torch.from_numpy(x_val[i:i + batch_size]).float().to(dev)
        ys = torch.from_numpy(y_val[i:i + batch_size]).long().to(dev)
        out = model(xs)  # no torch.no_grad(), as in the starter code
        F.cross_entropy(out, ys).item()
        correct += int((out.argmax(1) == ys).sum())
        total += ys.numel()
    return sum(losses) / len(x_np)


def archcount_epoch(model, optimizer, x, y, x_val, y_val, batch_size, gen, amp_dtype=None):
    from models.training import evaluate, train_epoch
    loss = train_epoch(model, optimizer, x, y, batch_size, gen, amp_dtype=amp_dtype)
    evaluate(model, x_val, y_val, amp_dtype=amp_dtype)
    return loss


def bench_model(name, arrays, epochs, batch_size, dev):
    import torch

    import models
    from models.training import _channels_last
    x_tr, y_tr, x_va, y_va = arrays
    nc = int(max(y_tr.max(), y_va.max())) + 1
    nc = max(nc, 24)
    results = {}
    for kind in ("reference", "archcount", "archcount_bf16"):
        torch.manual_seed(0)
        net = models.build(name, num_colours=nc).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        losses, times = [], []
        if kind.startswith("archcount"):
            cl = _channels_last("auto", dev)
            fmt = torch.channels_last if cl else torch.contiguous_format
            net = net.to(memory_format=fmt)
            x = torch.from_numpy(x_tr).float().to(dev).contiguous(memory_format=fmt)
            y = torch.from_numpy(y_tr).long().to(dev)
            xv = torch.from_numpy(x_va).float().to(dev).contiguous(memory_format=fmt)
            yv = torch.from_numpy(y_va).long().to(dev)
            gen = torch.Generator().manual_seed(0)
        else:
            rng = np.random.default_rng(0)
        for _ in range(epochs):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            if kind.startswith("archcount"):
                amp = torch.bfloat16 if kind == "archcount_bf16" else None
                loss = archcount_epoch(net, opt, x, y, xv, yv, batch_size, gen, amp)
            else:
                loss = reference_epoch(net, opt, x_tr, y_tr, x_va, y_va, batch_size, dev, rng)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            losses.append(loss)
        images = len(x_tr) + len(x_va)
        results[kind] = {"epoch_s": min(times), "images_per_s": images / min(times), "train_losses": losses}
    ref, arc, bf = results["reference"], results["archcount"], results["archcount_bf16"]
    rel = [abs(a - b) / b for a, b in zip(arc["train_losses"], ref["train_losses"])]
    return {"model": name, "ref_epoch_s": ref["epoch_s"], "archcount_epoch_s": arc["epoch_s"],
            "ref_img_s": ref["images_per_s"], "archcount_img_s": arc["images_per_s"],
            "speedup": ref["epoch_s"] / arc["epoch_s"],
            "bf16_epoch_s": bf["epoch_s"], "speedup_bf16": ref["epoch_s"] / bf["epoch_s"],
            "bf16_loss_rel_diff": max(abs(a - b) / b for a, b in zip(bf["train_losses"], ref["train_losses"])),
            "loss_ref": " ".join(f"{v:.3f}" for v in ref["train_losses"]),
            "loss_archcount": " ".join(f"{v:.3f}" for v in arc["train_losses"]),
            "max_rel_loss_diff": max(rel)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    from models.training import select_device
    dev = select_device(args.device)
    x_tr, y_tr, x_va, y_va, source, k = load_arrays(args.images)
    rows = [bench_model(m, (x_tr, y_tr, x_va, y_va), args.epochs, args.batch_size, dev) for m in MODELS]
    target = 5.0 if dev.type == "cuda" else 1.5
    for r in rows:
        r["target"] = target
        r["met"] = "yes" if r["speedup"] >= target else "NO"
        r["losses_agree"] = "yes" if r["max_rel_loss_diff"] < 0.05 else "NO"
    print(table([{k_: v for k_, v in r.items() if k_ not in ("loss_ref", "loss_archcount")} for r in rows],
                f"training epoch (train {len(x_tr)} + validation {len(x_va)} images, batch {args.batch_size}, "
                f"best of {args.epochs} epochs) on {dev}; data: {source}"))
    for r in rows:
        print(f"  {r['model']}: train loss per epoch, reference {r['loss_ref']} | archcount {r['loss_archcount']}")
    path = write_results("train", {"device": str(dev), "data": source, "palette_colours": k, "epochs": args.epochs,
                                   "images": len(x_tr), "batch_size": args.batch_size, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
