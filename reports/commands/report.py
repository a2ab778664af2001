"""``archcount report``: the comparison report (Markdown and PDF)."""
from __future__ import annotations

import argparse
import shlex
import sys

from analysis.errors import ArchcountError

EPILOG = """examples:
  archcount report --out out/report                           analysis only (no data needed)
  archcount report --out out/report --train --runs runs       train missing runs (25 epochs), reuse finished ones
  archcount report --out out/report --train --sweep           plus the ConvTransposeNet batch-size sweep
  archcount report --out out/report --runs runs --format md   use finished runs, Markdown only
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the comparison report (Markdown and PDF)",
                       description="Counts, verified formulas, paddings, receptive fields and training results "
                                   "side by side, rendered from jinja2 templates to Markdown and PDF (Typst).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/report", help="output folder (default out/report)")
    p.add_argument("--models", default="pool_upsample,conv_transpose,unet", help="comma-separated zoo models")
    p.add_argument("--runs", help="folder of training runs (read; with --train, also written). Default with "
                                  "--train: runs")
    p.add_argument("--train", action="store_true", help="train whatever runs are missing")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--sweep", action="store_true", help="also the ConvTransposeNet batch-size sweep "
                                                         "(32, 64, 100, 128, 256, 512)")
    p.add_argument("--data", help="CIFAR-10 source: the official archive, its folder, or an image-folder tree/zip")
    p.add_argument("--palette", help="palette file (CSV r,g,b in [0,1] or .npy); default: archcount's k-means")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cuda, mps or cpu")
    p.add_argument("--format", default="md,pdf", help="md, pdf or md,pdf (default)")
    p.add_argument("--verify-configs", type=int, default=1, help="random configurations per model to verify "
                                                                  "besides the defaults (0..10000, default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--model", metavar="MODEL", help="instead: a report on one model of your own, "
                   "path/to/file.py:NAME or package.module:NAME (this imports and runs that code), written to "
                   "--out/model_report.md and .json")
    p.add_argument("--input", metavar="CxHxW", help="with --model: its input shape, e.g. 3x224x224")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    if getattr(args, "model", None):
        return _model_report(args)
    if getattr(args, "input", None):
        raise ArchcountError("applies only with --model", argument="--input")
    from reports.report import build_report
    with warnings.catch_warnings(record=True) as caught:  # shown once each, as one line, on stderr
        warnings.simplefilter("always")
        try:
            res = build_report(args.out, models=args.models, runs=args.runs or ("runs" if args.train else None),
                               train=args.train, epochs=args.epochs, data=args.data, formats=args.format,
                               sweep=args.sweep, palette=args.palette, device=args.device,
                               verify_configs=args.verify_configs, quiet=args.quiet,
                               command="archcount " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        finally:
            seen = set()
            for w in caught:
                text = str(w.message)
                if text not in seen and not issubclass(w.category, DeprecationWarning):
                    seen.add(text)
                    print(f"warning: {text}", file=sys.stderr)
    for path in (res.markdown, res.pdf):
        if path:
            print(f"wrote {path}")
    print(f"{len(res.figures)} figures in {res.out_dir / 'figures'}; {res.wall_time_s:.1f} s")
    for m in res.missing:
        print(f"missing: {m}", file=sys.stderr)
    return 0


def _model_report(args: argparse.Namespace) -> int:
    from models.user import resolve_model
    from reports.model_report import model_report

    from ._model import parse_input
    if args.train or args.sweep or args.runs:
        raise ArchcountError("a report on your own model does not train (--train, --sweep, --runs are for the "
                             "zoo models of the exercise)", argument="--model")
    label, model = resolve_model(args.model)
    shape = parse_input(args.input) if args.input else None
    path = model_report(model, label, input_shape=shape, out=args.out, source=args.model,
                        command="archcount " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(f"wrote {path}")
    print(f"wrote {path.with_suffix('.json')}")
    return 0
