"""The reference loop, as a program: training written the way the exercise's starter code does it.

Numpy arrays sliced per batch and converted to tensors at every step, the default memory format
and thread count, validation without ``torch.no_grad()``; same model, initialisation, data,
palette, batch size and optimizer as ``archcount train``. One line per epoch on stderr
(``epoch N/E: ...``), so that ``bench_train.py --mode cli`` times it exactly like the CLI.

Run: python benchmarks/reference_train.py --model unet --epochs 4
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def reference_epoch(model, optimizer, x_np, y_np, x_val, y_val, batch_size, dev, rng):
    """One epoch the starter code's way; returns (mean train loss, val loss, val accuracy)."""
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
    correct, total, val_losses = 0, 0, []
    for i in range(0, len(x_val), batch_size):
        xs = torch.from_numpy(x_val[i:i + batch_size]).float().to(dev)
        ys = torch.from_numpy(y_val[i:i + batch_size]).long().to(dev)
        out = model(xs)  # no torch.no_grad(), as in the starter code
        val_losses.append(F.cross_entropy(out, ys).item() * len(xs))
        correct += int((out.argmax(1) == ys).sum())
        total += ys.numel()
    return sum(losses) / len(x_np), sum(val_losses) / max(len(x_val), 1), correct / max(total, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="unet")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    import torch

    import models
    from models.data import load_category
    from models.loop import colourization_arrays
    from models.palette import resolve_palette
    data = load_category(args.data, "horse", quiet=True)
    palette = resolve_palette(None, data)
    x_tr, y_tr, x_va, y_va = colourization_arrays(data, palette)
    torch.manual_seed(0)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = models.build(args.model, num_colours=palette.k).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    print(f"reference {args.model}: {torch.get_num_threads()} threads on {dev}", file=sys.stderr, flush=True)
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        loss, val_loss, val_acc = reference_epoch(net, opt, x_tr, y_tr, x_va, y_va, args.batch_size, dev, rng)
        print(f"epoch {epoch}/{args.epochs}: train loss {loss:.4f}, val loss {val_loss:.4f}, val acc "
              f"{100 * val_acc:.1f}%, {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
