"""Training speed: archcount against a reference loop written like the exercise's starter code.

``--mode cli`` (the default) times what a user runs: ``archcount train --model M --epochs E`` with
every other option at its default (threads auto) in a subprocess, against
``benchmarks/reference_train.py`` (the starter-code loop as a program), alternating A B A B. Each
side prints a line per epoch; an epoch is the time between two such lines (training, validation,
checkpoint and metrics writing, logging), and the steady epoch is the median over epochs 2..E of
every repetition. ``--all`` also times the plain ``archcount train`` (all three models, scheduled
on the free cores) against the three reference programs run one after another.

``--mode epoch`` is the older in-process comparison of one epoch (models.loop.train_epoch/evaluate
against the reference epoch, plus ``--amp bf16``).

Run: python benchmarks/bench_train.py [--mode cli] [--epochs 4] [--reps 2] [--models unet,...] [--all]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, table, write_results

from reference_train import reference_epoch  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

MODELS = ("pool_upsample", "conv_transpose", "unet")
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+):")


def load_arrays(n_images: int):
    """Horse images from the shared zip (or the usual data resolution), with the published palette if present."""
    from models.data import find_shared_zip, load_category
    from models.loop import colourization_arrays
    from models.palette import kmeans_palette, load_palette
    data = load_category(None, "horse", quiet=True)
    shared = find_shared_zip()
    pal_path = shared.parent / "colour_kmeans24_cat7.csv" if shared else None
    palette = load_palette(pal_path) if pal_path and pal_path.is_file() else kmeans_palette(data)
    x_tr, y_tr, x_va, y_va = colourization_arrays(data, palette)[:4]
    return (x_tr[:n_images], y_tr[:n_images], x_va[: max(1, n_images // 5)], y_va[: max(1, n_images // 5)],
            data.description, palette.k)


# ----------------------------------------------------------------------------- the CLI against the reference program

def timed(cmd: list[str], cwd: Path) -> dict:
    """Run ``cmd``, time-stamping every per-epoch line of its stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marks, tail = [], []
    assert proc.stderr is not None
    for line in proc.stderr:
        if EPOCH_LINE.search(line):
            marks.append(time.monotonic() - t0)
        tail = (tail + [line.rstrip()])[-5:]
    proc.wait()
    wall = time.monotonic() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {' | '.join(tail)}")
    return {"wall_s": wall, "marks": marks, "epochs_s": [b - a for a, b in zip(marks, marks[1:])],
            "first_epoch_end_s": marks[0] if marks else None}


def cli_command(models: str, epochs: int, runs: Path) -> list[str]:
    exe = Path(sys.executable).with_name("archcount")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "reports.cli"]
    return [*base, "train", "--model", models, "--epochs", str(epochs), "--runs", str(runs)]


def reference_command(model: str, epochs: int) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("reference_train.py")), "--model", model,
            "--epochs", str(epochs)]


def _threads_of(runs: Path) -> list[str]:
    import json
    out = []
    for cfg in sorted(runs.glob("*/config.json")):
        ex = json.loads(cfg.read_text()).get("execution", {})
        out.append(f"{ex.get('threads')} ({(ex.get('thread_choice') or {}).get('method', '?')})")
    return out


def bench_cli(models: list[str], epochs: int, reps: int, all_models: bool) -> dict:
    from models.execution import busy_cpus, cpu_count, cpu_model
    rows, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        for m in models:
            ref, cli, threads, loads = [], [], [], []
            for r in range(reps):  # A B A B
                loads.append(os.getloadavg()[0])
                ref.append(timed(reference_command(m, epochs), work))
                runs = work / f"{m}-{r}"
                cli.append(timed(cli_command(m, epochs, runs), work))
                threads += _threads_of(runs)
                print(f"  {m} rep {r + 1}: reference {ref[-1]['epochs_s']}, archcount {cli[-1]['epochs_s']} "
                      f"(load {loads[-1]:.2f})", flush=True)
            ref_epochs = [e for x in ref for e in x["epochs_s"]]
            cli_epochs = [e for x in cli for e in x["epochs_s"]]
            r_med, c_med = statistics.median(ref_epochs), statistics.median(cli_epochs)
            rows.append({"model": m, "ref_s_per_epoch": r_med, "cli_s_per_epoch": c_med, "ratio": r_med / c_med,
                         "ref_wall_s": statistics.median(x["wall_s"] for x in ref),
                         "cli_wall_s": statistics.median(x["wall_s"] for x in cli),
                         "cli_threads": "; ".join(sorted(set(threads))),
                         "load_1min": f"{min(loads):.2f}-{max(loads):.2f}"})
            raw[m] = {"reference": ref, "archcount": cli}
        if all_models:
            ref_walls, cli_walls, loads = [], [], []
            for r in range(reps):
                loads.append(os.getloadavg()[0])
                ref_walls.append(sum(timed(reference_command(m, epochs), work)["wall_s"] for m in MODELS))
                runs = work / f"all-{r}"
                exe = cli_command("pool_upsample,conv_transpose,unet", epochs, runs)
                cli_walls.append(timed(exe, work)["wall_s"])
                print(f"  all three models rep {r + 1}: reference {ref_walls[-1]:.1f} s, archcount "
                      f"{cli_walls[-1]:.1f} s", flush=True)
            r_med, c_med = statistics.median(ref_walls), statistics.median(cli_walls)
            rows.append({"model": "all three (archcount train)", "ref_s_per_epoch": r_med / (3 * epochs),
                         "cli_s_per_epoch": c_med / (3 * epochs), "ratio": r_med / c_med, "ref_wall_s": r_med,
                         "cli_wall_s": c_med, "cli_threads": "; ".join(sorted(set(_threads_of(runs)))),
                         "load_1min": f"{min(loads):.2f}-{max(loads):.2f}"})
    return {"rows": rows, "raw": raw, "cpu": cpu_model(), "cores": cpu_count(), "busy_cpus_at_end": busy_cpus()}


# ----------------------------------------------------------------------------- in-process epochs

def archcount_epoch(model, optimizer, x, y, x_val, y_val, batch_size, gen, amp_dtype=None):
    from models.loop import evaluate, train_epoch
    loss = train_epoch(model, optimizer, x, y, batch_size, gen, amp_dtype=amp_dtype)
    evaluate(model, x_val, y_val, amp_dtype=amp_dtype)
    return loss


def bench_model(name, arrays, epochs, batch_size, dev):
    import torch

    import models
    from models.execution import channels_last_flag
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
            cl = channels_last_flag("auto", dev)
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
                loss = reference_epoch(net, opt, x_tr, y_tr, x_va, y_va, batch_size, dev, rng)[0]
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
    ap.add_argument("--mode", choices=["cli", "epoch"], default="cli")
    ap.add_argument("--epochs", type=int, default=None, help="cli: 4 per run; epoch: 2")
    ap.add_argument("--reps", type=int, default=2, help="cli: repetitions of each A B pair")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--all", action="store_true", help="cli: also the plain `archcount train` of all three models")
    ap.add_argument("--images", type=int, default=5000, help="epoch mode")
    ap.add_argument("--batch-size", type=int, default=100, help="epoch mode")
    ap.add_argument("--device", default="auto", help="epoch mode")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if args.mode == "cli":
        epochs = args.epochs or 4
        load0 = os.getloadavg()
        res = bench_cli(models, epochs, args.reps, args.all)
        target = 1.5
        for r in res["rows"]:
            r["met"] = "yes" if r["ratio"] >= target else "NO"
        print(table(res["rows"], f"archcount train (defaults, subprocess) against the reference program, {epochs} "
                                 f"epochs, {args.reps} x A B; steady s/epoch = median of epochs 2..{epochs}; "
                                 f"{res['cpu']}, {res['cores']} cores; load {load0[0]:.2f} at the start"))
        path = write_results("train_cli", {"mode": "cli", "epochs": epochs, "reps": args.reps, "target": target,
                                           "cpu": res["cpu"], "cores": res["cores"], "load_avg_start": load0,
                                           "load_avg_end": os.getloadavg(), "busy_cpus_at_end": res["busy_cpus_at_end"],
                                           "rows": res["rows"], "raw": res["raw"]})
        print(f"wrote {path}")
        return 0
    from models.training import select_device
    dev = select_device(args.device)
    x_tr, y_tr, x_va, y_va, source, k = load_arrays(args.images)
    epochs = args.epochs or 2
    rows = [bench_model(m, (x_tr, y_tr, x_va, y_va), epochs, args.batch_size, dev) for m in models]
    target = 5.0 if dev.type == "cuda" else 1.5
    for r in rows:
        r["target"] = target
        r["met"] = "yes" if r["speedup"] >= target else "NO"
        r["losses_agree"] = "yes" if r["max_rel_loss_diff"] < 0.05 else "NO"
    print(table([{k_: v for k_, v in r.items() if k_ not in ("loss_ref", "loss_archcount")} for r in rows],
                f"training epoch in-process (train {len(x_tr)} + validation {len(x_va)} images, batch "
                f"{args.batch_size}, best of {epochs} epochs, {__import__('torch').get_num_threads()} threads) on "
                f"{dev}; data: {source}"))
    for r in rows:
        print(f"  {r['model']}: train loss per epoch, reference {r['loss_ref']} | archcount {r['loss_archcount']}")
    path = write_results("train", {"mode": "epoch", "device": str(dev), "data": source, "palette_colours": k,
                                   "epochs": epochs, "images": len(x_tr), "batch_size": args.batch_size, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
