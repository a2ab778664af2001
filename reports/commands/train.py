"""``archcount train``: train the colourization models on CIFAR-10 (one run, or a sweep of combinations)."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, Callable

from analysis.errors import ArchcountError

_DESCRIPTION = """\
Train colourization models on one CIFAR-10 category (default: horse) as in the published exercise:
greyscale input, per-pixel nearest-palette-colour targets, per-pixel cross-entropy, Adam.
Comma lists (--model, --batch-size, --lr, --kernel, --num-filters, --seed, --epochs) run every
combination; finished runs (keyed by a hash of their configuration) are skipped.

Data are looked for in this order: --data, $ARCHCOUNT_DATA, the cache directory ($ARCHCOUNT_CACHE or
~/.cache/archcount), ../shared/data/cifar10-jpeg.zip (a JPEG re-encoding), then the official archive
is downloaded (md5 checked)."""

_EPILOG = """\
examples:
  archcount train --model unet --epochs 2 --palette ../shared/data/colour_kmeans24_cat7.csv
  archcount train --model pool_upsample,conv_transpose,unet --batch-size 32,64,100,128,256,512
  archcount train --model unet --run-dir runs/my-unet --resume"""


def _list(convert: Callable[[str], Any], what: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected one or more {what} separated by commas")
        try:
            return [convert(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} separated by commas, got {text!r}") from None
    return parse


def _threads(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}")
    return value


def _hparam(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the colourization models on CIFAR-10 (runs, sweeps, resume)",
                       description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to train (comma lists run every combination)")
    what.add_argument("--model", "-m", type=_list(str, "model names"),
                      default=["pool_upsample", "conv_transpose", "unet"],
                      help="registered colourization model(s) (default: pool_upsample,conv_transpose,unet)")
    what.add_argument("--batch-size", "-b", type=_list(int, "integers"), default=[100], help="default: 100")
    what.add_argument("--epochs", "-e", type=_list(int, "integers"), default=[25], help="default: 25")
    what.add_argument("--lr", type=_list(float, "numbers"), default=[1e-3], help="Adam learning rate (default: 1e-3)")
    what.add_argument("--kernel", "-k", type=_list(int, "integers"), default=[3], help="default: 3")
    what.add_argument("--num-filters", "--nf", type=_list(int, "integers"), default=[32], help="NF (default: 32)")
    what.add_argument("--seed", type=_list(int, "integers"), default=[0], help="torch and numpy seed (default: 0)")
    what.add_argument("--hparam", type=_hparam, action="append", default=[], metavar="NAME=VALUE",
                      help="a further model hyperparameter (repeatable)")
    what.add_argument("--category", "-c", default="horse",
                      help="CIFAR-10 class name or label 0-9 (default: horse = 7)")
    what.add_argument("--palette", metavar="FILE",
                      help="palette CSV (r,g,b in [0,1]) or .npy, e.g. ../shared/data/colour_kmeans24_cat7.csv; "
                           "default: archcount's own k-means palette of the category's training pixels (cached)")
    what.add_argument("--palette-k", type=int, default=24, help="colours of the k-means palette (default: 24)")
    what.add_argument("--palette-seed", type=int, default=0, help="seed of the k-means palette (default: 0)")

    data = p.add_argument_group("data")
    data.add_argument("--data", metavar="PATH", help="cifar-10-python.tar.gz, cifar-10-batches-py/, or an image-folder "
                                                     "tree or zip (<root>/{train,test}/<class>/*.png|jpg)")
    data.add_argument("--cache-dir", metavar="DIR", help="cache directory (default: $ARCHCOUNT_CACHE or "
                                                         "~/.cache/archcount)")
    data.add_argument("--no-download", action="store_true", help="never download the official archive")

    runs = p.add_argument_group("runs")
    runs.add_argument("--runs", metavar="ROOT", default="runs", help="runs root; each run in ROOT/<model>-<hash>/ "
                                                                      "(default: runs)")
    runs.add_argument("--run-dir", metavar="DIR", help="the run directory of a single run (instead of ROOT/...)")
    runs.add_argument("--resume", action="store_true", help="continue unfinished runs from their last checkpoint")
    runs.add_argument("--force", action="store_true", help="replace what the run directory holds and retrain")

    speed = p.add_argument_group("device and speed")
    speed.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    speed.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                       help="mixed precision: auto = bf16 on CUDA, off elsewhere; bf16 can also speed up CPUs "
                            "with AMX (the numbers then differ slightly from fp32)")
    speed.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                       help="channels_last memory format (auto: on CPU both formats are timed for a few steps "
                            "and the faster kept; on for cuda, off for mps)")
    speed.add_argument("--threads", default="auto", type=_threads,
                       help="torch CPU threads per run, or auto (default): every core of an idle machine; on a "
                            "busy one the counts that fit the free cores are timed for a few steps and the "
                            "fastest kept (recorded in config.json; a resumed run keeps its count)")
    speed.add_argument("--jobs", "-j", default="auto", type=_threads,
                       help="runs trained at once, each in its own process, or auto (default): one per core on a "
                            "CPU (the free cores shared out as threads; up to twice the cores all start at once, "
                            "one thread each), one on a GPU")
    speed.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, for long runs)")
    speed.add_argument("--samples", type=int, default=8, help="validation images in samples.png (default: 8)")

    out = p.add_argument_group("output")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-epoch lines")
    out.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                     help="progress bar (auto: when stderr is a terminal)")
    out.add_argument("--json", action="store_true", help="print the run summaries as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.training import sweep_configs

    hparams = dict(args.hparam)
    configs = sweep_configs(args.model, batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
                            kernel=args.kernel, num_filters=args.num_filters, seed=args.seed,
                            category=args.category, palette=args.palette, palette_k=args.palette_k,
                            palette_seed=args.palette_seed, hparams=tuple(sorted(hparams.items())))
    if args.run_dir and len(configs) > 1:
        raise ArchcountError(f"--run-dir holds one run but the lists give {len(configs)} combinations; use "
                             f"--runs ROOT for sweeps", argument="run_dir")
    if args.data is not None and not args.data.strip():
        raise ArchcountError("is an empty path; leave --data out to use $ARCHCOUNT_DATA, the cache or the shared zip",
                             argument="--data")
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            summaries = _train(configs, args, progress)
        finally:
            for w in caught:  # one clean line each, not "file.py:123: UserWarning:"
                print(f"archcount train: warning: {w.message}", file=sys.stderr)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2))
        return 0
    _print_table(summaries)
    if len(summaries) > 1 and hasattr(summaries, "wall_time_s"):
        print(f"wall time: {summaries.wall_time_s:.1f} s, {summaries.jobs} run(s) at a time on {summaries.cores} "
              f"cores ({summaries.cpu})")
    return 0


def _train(configs: list[Any], args: argparse.Namespace, progress: bool | None) -> Any:
    from models.training import train_many
    return train_many(configs, data=args.data, cache_dir=args.cache_dir, download=not args.no_download,
                      quiet=args.quiet, runs_root=args.runs, run_dir=args.run_dir, resume=args.resume,
                      force=args.force, device=args.device, amp=args.amp, channels_last=args.channels_last,
                      threads=args.threads, jobs=args.jobs, compile=args.compile, progress=progress,
                      samples=args.samples)


def _print_table(summaries: list[Any]) -> None:
    if not summaries:
        return
    first = summaries[0]
    print(f"data:    {first.data_description}")
    palettes = sorted({s.palette_description for s in summaries})
    for desc in palettes:
        print(f"palette: {desc}")
    print(f"device:  {first.device} ({first.device_name}), amp {first.amp}, channels_last "
          f"{', '.join(sorted({str(s.channels_last) for s in summaries}))}")
    header = ("model", "batch", "epochs", "weights", "val loss", "val acc", "best loss", "best acc", "s/epoch",
              "img/s", "threads", "status", "run")
    rows = []
    for s in summaries:
        rows.append((s.model, str(s.batch_size), str(s.epochs_completed), f"{s.num_weights:,}",
                     f"{s.final_val_loss:.4f}", f"{100 * s.final_val_acc:.1f}%", f"{s.best_val_loss:.4f}",
                     f"{100 * s.best_val_acc:.1f}%", f"{s.mean_epoch_time_s:.1f}", f"{s.images_per_s:.0f}", str(s.threads), s.status,
                     s.run_dir))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    sys.stdout.flush()
