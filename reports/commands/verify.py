"""``archcount verify``: prove the formulas against the real torch models (and compare other tools)."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from analysis.errors import ArchcountError

EPILOG = """examples:
  archcount verify unet                          default configurations + 2 random ones
  archcount verify --all --configs 5 --seed 3    every registered model, 5 random configurations each
  archcount verify pool_upsample --config NF=8,NC=4,kernel=5,H=30,W=22
  archcount verify unet --conventions all        all 72 switch combinations
  archcount verify mnist_fixed --compare-tools   also fvcore / thop / torchinfo / ptflops, explained
  archcount verify --all --json > verify.json

What is compared: per layer shapes and output numel (recorded forward), weights split into kernel
weight, bias and BatchNorm affine (parameter numel), connections with padding taps included and
transposed convs input-based (fvcore per module), exact connections (structural: the layer run
on all-ones input with all-ones weights, summed), pooling/upsampling window taps; per convention
every layer and the totals.  Exit status 1 on any mismatch (the mismatching rows are printed
first), 0 when everything matches; skipped configurations are listed with their reasons."""

ROW_COLUMNS = ("model", "config", "convention", "layer", "quantity", "formula", "measured", "source", "note")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify every formula against the real torch models",
                       description="Build each model at several configurations, measure it (parameter numel, "
                                   "output numel and shapes, fvcore, structural connection counts) and compare "
                                   "with archcount's evaluated formulas, layer by layer and in total.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="zoo models (see 'archcount models') or path/to/file.py:NAME / package.module:NAME "
                        "(this imports and runs that code)")
    p.add_argument("--model", dest="model_opt", metavar="MODEL", help="one more model, as MODEL")
    p.add_argument("--input", metavar="CxHxW", help="the input of a model instance (its H and W are checked; "
                                                    "the default configurations otherwise)")
    p.add_argument("--all", action="store_true", help="verify every registered model")
    p.add_argument("--configs", type=int, default=2, metavar="N",
                   help="random configurations per model, besides the default ones (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random configurations (default 0)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=V,...",
                   help="check this configuration instead (keys NIC, NF, NC, kernel, H, W or any "
                        "hyperparameter; repeatable)")
    p.add_argument("--conventions", default=None, metavar="LIST",
                   help="';'-separated convention labels such as 'weighted;all-layers[padding_taps=exclude]', "
                        "or 'all' (default: the presets plus the exact and gather variants)")
    p.add_argument("--literal", action="store_true",
                   help="structural counts run the literal layer shapes instead of folding the input channels")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--all-rows", action="store_true", help="print every compared row, not only the summary")
    p.add_argument("--compare-tools", action="store_true",
                   help="also run fvcore, thop, torchinfo and ptflops (when installed) and explain each difference")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _parse_config(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        key, sep, value = piece.partition("=")
        if not sep:
            raise ArchcountError(f"expected KEY=VALUE, got {piece!r}", argument="--config")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            raise ArchcountError(f"{key.strip()} must be an integer, got {value!r}", argument="--config") from None
    if not out:
        raise ArchcountError("empty configuration", argument="--config")
    return out


def _models(args: argparse.Namespace) -> list[Any]:
    """Zoo names and user models (imported here), before any work."""
    import models
    from models.user import resolve_model
    given = list(args.models) + ([args.model_opt] if getattr(args, "model_opt", None) else [])
    if args.all and given:
        raise ArchcountError("give model names or --all, not both", argument="--all")
    names = models.available() if args.all else given
    if not names:
        raise ArchcountError("name at least one model, or --all", argument="MODEL",
                             hint=f"models: {', '.join(models.available())}")
    return [resolve_model(name, argument="MODEL")[1] for name in names]


def row_records(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [{c: getattr(r, c) for c in ROW_COLUMNS} for r in rows]


def report_text(report: Any, *, all_rows: bool = False) -> str:
    """The text rendering: mismatches first (both values and the layer), skips, then the summary."""
    from reports.formatting import text_table
    out: list[str] = []
    bad = report.mismatches
    if bad:
        out.append(f"MISMATCHES ({len(bad)}): formula != measured")
        out.append(text_table(row_records(bad), ROW_COLUMNS, max_width=90))
        out.append("")
    if report.skipped:
        out.append(f"SKIPPED ({len(report.skipped)} configuration(s)):")
        out.extend(f"  {s.model} [{s.config}]: {s.reason}" for s in report.skipped)
        out.append("")
    if all_rows:
        out.append(text_table(row_records(report.rows), ROW_COLUMNS + ("match",), max_width=60))
        out.append("")
    per_model = []
    for name in report.models:
        cfgs = [c for c in report.configs if c.model == name]
        rows = [r for r in report.rows if r.model == name]
        per_model.append({
            "model": name, "configs": len(cfgs), "skipped": sum(1 for s in report.skipped if s.model == name),
            "quantities": sum(1 for r in rows if r.match is not None),
            "mismatches": sum(1 for r in rows if r.match is False),
            "seconds": round(sum(c.seconds for c in cfgs), 2),
            "checked": "; ".join(c.config.label for c in cfgs)})
    out.append(text_table(per_model, max_width=120))
    out.extend(f"note: {n}" for n in report.notes)
    s = report.summary()
    out.append("")
    convs = report.conventions
    shown = ", ".join(convs) if len(convs) <= 8 else ", ".join(convs[:6]) + f", ... ({len(convs)} in all)"
    out.append(f"conventions: {shown}")
    verdict = ("all match" if report.ok else
               (f"{s['mismatches']} MISMATCH(ES)" if s["mismatches"] else "nothing was checked"))
    out.append(f"verified {s['quantities_checked']:,} quantities in {s['configs_checked']} configuration(s) of "
               f"{s['models']} model(s), {s['configs_skipped']} skipped, in {s['seconds']:.1f} s: {verdict}")
    return "\n".join(out)


def comparison_text(cmp: Any) -> str:
    from reports.formatting import text_table
    lines = [f"== {cmp.model} [{cmp.config.label}]: other counting tools (models in eval mode)"]
    rows = [{"source": f"archcount {label}", "count": t["connections"], "weights": t["weights"],
             "unit": "connections"} for label, t in cmp.archcount.items()]
    for t in cmp.tools:
        if t.available:
            rows.append({"source": t.message, "count": t.total, "weights": t.params, "unit": t.unit})
    lines.append(text_table(rows, ("source", "count", "weights", "unit"), max_width=60))
    for t in cmp.tools:
        if not t.available:
            lines.append(f"skipped {t.tool}: {t.message}")
        elif t.extra.get("per_layer"):
            lines.append(f"{t.tool}: {t.extra['per_layer']}")
    lines += [f"  - {text}" for text in cmp.lines()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from analysis.verify import verify
    from reports.formatting import json_text
    names = _models(args)
    if args.configs < 0:
        raise ArchcountError("must be >= 0", argument="--configs")
    configs = [_parse_config(c) for c in args.config] or None
    if getattr(args, "input", None):
        from ._model import parse_input
        shape = parse_input(args.input)
        if len(shape) < 3 or not all(isinstance(v, int) for v in shape):
            raise ArchcountError("expected a numeric CxHxW shape", argument="--input")
        configs = (configs or [{}])
        configs = [dict(c, H=shape[1], W=shape[2]) for c in configs]
    conventions = None
    if args.conventions:
        conventions = [c for c in args.conventions.split(";") if c.strip()]
    progress = False if (args.quiet or args.json) else None
    report = verify(names, configs, conventions, n_random=args.configs, seed=args.seed,
                    fold_channels=not args.literal, progress=progress)
    comparisons = []
    if args.compare_tools:
        from analysis.compare_tools import compare_tools
        for name in names:
            cfg = configs[0] if configs else None
            try:
                comparisons.append(compare_tools(name, cfg))
            except ArchcountError as exc:
                print(f"archcount verify: --compare-tools skipped {name}: {exc}", file=sys.stderr)
    if not report.configs and report.skipped and not report.rows:
        first = report.skipped[0]
        print(report_text(report, all_rows=args.all_rows))
        raise ArchcountError(f"nothing could be checked: {first.reason}", argument="MODEL")
    if args.json:
        payload = report.to_dict()
        if comparisons:
            payload["tools"] = [c.to_dict() for c in comparisons]
        print(json_text(payload))
    else:
        print(report_text(report, all_rows=args.all_rows))
        for cmp in comparisons:
            print()
            print(comparison_text(cmp))
    return 0 if report.ok else 1
