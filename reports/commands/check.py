"""``archcount check``: is a hand-written answer right, under which convention, and where does it go wrong?

Exit status: 0 when every checked answer is right, 1 when one is wrong, 2 on a usage or parse
error (in batch mode: when an entry could not be checked).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Mapping

from analysis.errors import ArchcountError

EPILOG = """\
examples:
  archcount check "9*NIC*NF + 36 NF^2 + 9 NF NC + 9 NC^2" --model pool_upsample --quantity weights
  archcount check "k^2 (NIC NF + 4NF^2 + NF NC + NC^2) + 12 NF + 4 NC" --model unet --quantity weights \\
      --convention parameters
  archcount check "90112" --model unet --quantity outputs --size 32 --kernel 3 --nic 1 --nf 32 --nc 24
  archcount check --shape 16x513x385 --layer "conv k=5 s=2 p=1 out=16" --input 3x1024x768
  archcount check --padding p=2 --kernel 4 --stride 2
  archcount check --padding "p=1 op=0" --kernel 4 --stride 2 --transposed
  archcount check --padding "2p - op = 2" --kernel 4 --stride 2 --transposed      (a relation)
  archcount check --padding "p = 1 or p = 2" --kernel 4 --stride 2                 (alternatives)
  archcount check --padding "p = (k-1)/2" --kernel k                               (every kernel size)
  archcount check "32*32*NC = 1024 NC" --model conv_transpose --quantity outputs --size 32   (working)
  archcount check --scaled 4x --model unet --quantity weights          (doubling the input: 4x the weights?)
  archcount check --file answers.yaml --format md

Formulas are plain text (9*NIC*NF + 18 NF^2, implicit multiplication, x, ·, ^, **) or LaTeX
(\\times, \\cdot, ^{2}, \\frac{}{}, \\left( \\right), \\lfloor \\rfloor); they are read safely, never
evaluated as Python.  Without --convention a formula is right when it matches a preset (weighted,
all-layers, parameters); the output names every convention it matches, or the closest one, the
difference per term, and which layers' terms account for it.

Answers: a formula, chained working (a = b = c: every link judged, the first wrong step named),
alternatives (a or b, x ∈ {a, b}: each judged); for --padding also relations on p and op, judged by
their solutions with p >= 0 and 0 <= op < stride.  A wrong answer is explained by the named slip
(or pair of slips) that reproduces it, with the layer names (see analysis.checker.SLIPS).

Batch file (YAML or JSON, a list; entries with a student field are grouped by student, and a
student whose answers are right only under different conventions is flagged; each entry one of):
  - {id: q1, student: ana, model: unet, quantity: weights, formula: "...", size: 32, hparams: {kernel: 3},
     convention: parameters}
  - {id: q2, shape: 16x511x383, layer: "conv k=5 s=2 p=1 out=16", input: 3x1024x768}
  - {id: q3, padding: p=1, kernel: 4, stride: 2, transposed: false}
  - {id: q4, scaled: 4x, model: unet, quantity: connections, factor: 2}

exit status: 0 all right, 1 an answer is wrong, 2 usage/parse error (or an entry that could not be checked)"""

FORMATS = ("md", "csv", "json", "text")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="check a hand-written formula, shape, padding or scaling claim (grading)",
        description="Check a hand-written answer against archcount's exact counts: a formula for the "
                    "weights/outputs/connections of a model, a layer's output shape, a padding, a claim "
                    "about doubling the input size, or a YAML file of such answers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("formula", nargs="?", metavar="FORMULA", help="the formula to check (text or LaTeX)")
    g = p.add_argument_group("formula and scaling checks")
    g.add_argument("--model", help="a zoo model (see 'archcount models'), path/to/file.py:NAME or "
                                   "package.module:NAME (this imports and runs that code)")
    g.add_argument("--quantity", help="weights, outputs or connections")
    g.add_argument("--size", metavar="N|HxW", help="input size; omit to compare symbolically in H, W")
    g.add_argument("--kernel", type=_kernel, metavar="K",
                   help="kernel size (formula: fixes k; padding: the conv's kernel); k keeps it symbolic")
    g.add_argument("--nic", type=int, dest="num_in_channels", metavar="N", help="fix NIC")
    g.add_argument("--nf", type=int, dest="num_filters", metavar="N", help="fix NF")
    g.add_argument("--nc", type=int, dest="num_colours", metavar="N", help="fix NC")
    g.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="fix another hyperparameter")
    g.add_argument("--convention", help="preset or label, e.g. parameters or 'weighted[bias=true]' "
                                        "(default: any preset)")
    g.add_argument("--set", action="append", default=[], dest="switches", metavar="SWITCH=VALUE",
                   help="switch applied to --convention (repeatable)")
    g.add_argument("--scaled", metavar="CLAIM",
                   help="a claim for the input scaled by --factor: a ratio (4x) or the value at that size")
    g.add_argument("--factor", type=int, default=2, help="scaling factor of H and W for --scaled (default 2)")
    s = p.add_argument_group("shape checks")
    s.add_argument("--shape", metavar="CLAIM", help="the claimed output shape, e.g. 16x513x385")
    s.add_argument("--layer", help='the layer, e.g. "conv k=5 s=2 p=1 out=16" (see archcount shape --help)')
    s.add_argument("--input", metavar="SHAPE", help="the input shape, e.g. 3x1024x768")
    d = p.add_argument_group("padding checks")
    d.add_argument("--padding", metavar="CLAIM", help='the claimed padding, e.g. "p=1" or "p=1 op=0"')
    d.add_argument("--stride", type=int, default=1, help="stride (default 1)")
    d.add_argument("--dilation", type=int, default=1, help="dilation (default 1)")
    d.add_argument("--transposed", action="store_true", help="a transposed conv")
    d.add_argument("--scale", metavar="R", help="out/in goal (default: 1/stride, or stride when transposed)")
    b = p.add_argument_group("batch mode")
    b.add_argument("--file", metavar="FILE", help="check every answer in a YAML (or JSON) file; one row per entry, "
                                                 "then the conventions per student")
    b.add_argument("--format", choices=FORMATS, default=None,
                   help="batch output: md (default), csv, json or text")
    p.add_argument("--json", action="store_true", help="print JSON (single checks; --format json in batch mode)")
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------- helpers

def _hparams(args: argparse.Namespace) -> dict[str, Any]:
    hp: dict[str, Any] = {}
    for key in ("kernel", "num_in_channels", "num_filters", "num_colours"):
        value = getattr(args, key, None)
        if value is not None:
            hp[key] = value
    for item in args.hp or []:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ArchcountError(f"expected NAME=VALUE, got {item!r}", argument="--hp")
        try:
            hp[name.strip()] = int(value)
        except ValueError:
            raise ArchcountError(f"{name.strip()} must be an integer, got {value!r}", argument="--hp") from None
    return hp


def _mode(args: argparse.Namespace) -> str:
    modes = [m for m, v in (("formula", args.formula), ("shape", args.shape), ("padding", args.padding),
                            ("scaled", args.scaled), ("file", args.file)) if v is not None]
    if not modes:
        raise ArchcountError("nothing to check: give a FORMULA, --shape, --padding, --scaled or --file",
                             argument="FORMULA")
    if len(modes) > 1:
        flags = {"formula": "FORMULA", "shape": "--shape", "padding": "--padding", "scaled": "--scaled",
                 "file": "--file"}
        raise ArchcountError(f"give one of FORMULA, --shape, --padding, --scaled, --file (got "
                             f"{', '.join(flags[m] for m in modes)})", argument=flags[modes[1]])
    return modes[0]


def _require(args: argparse.Namespace, mode: str, *names: str) -> None:
    for name in names:
        if getattr(args, name.lstrip("-").replace("-", "_"), None) is None:
            raise ArchcountError(f"required with {mode}", argument=name)


def _forbid(args: argparse.Namespace, mode: str, **flags: Any) -> None:
    for flag, default in flags.items():
        attr = flag.lstrip("-").replace("-", "_")
        value = getattr(args, attr, default)
        if value != default and value not in (None, [], False):
            raise ArchcountError(f"does not apply to {mode}", argument=flag)


def _print_result(result: Any, as_json: bool) -> int:
    from reports.checking import explain
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(explain(result))
    return 0 if result.ok else 1


# --------------------------------------------------------------------------------------------- run

#: API argument names -> the flags of this command, for error messages
_FLAGS = {"input_size": "--size", "kernel": "--kernel", "num_in_channels": "--nic", "num_filters": "--nf",
          "num_colours": "--nc", "convention": "--convention", "switches": "--set", "quantity": "--quantity",
          "model": "--model", "factor": "--factor", "stride": "--stride", "dilation": "--dilation",
          "scale": "--scale", "output_padding": "--padding", "padding": "--padding", "input": "--input",
          "shape": "--shape", "layer": "--layer", "in": "--layer", "groups": "--layer", "claim": "--scaled"}


def _kernel(text: str) -> Any:
    """``--kernel``: an integer, or k to keep the kernel symbolic."""
    if text.strip() in ("k", "K"):
        return "k"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or k, got {text[:40]!r}") from None


def run(args: argparse.Namespace) -> int:
    mode = _mode(args)
    flags = dict(_FLAGS, formula="formula" if mode == "formula" else "--scaled")
    try:
        return _run(args, mode)
    except ArchcountError as exc:
        flag = flags.get(exc.argument or "", exc.argument)
        if flag == exc.argument:
            raise
        raise ArchcountError(exc.reason, argument=flag, model=exc.model, layer=exc.layer, shapes=exc.shapes,
                             hint=exc.hint) from None


def _run(args: argparse.Namespace, mode: str) -> int:
    from analysis import checker
    if mode == "file":
        _forbid(args, "--file", **{"--model": None, "--quantity": None, "--layer": None, "--input": None})
        fmt = args.format or ("json" if args.json else "md")
        return run_file(args.file, fmt)
    if args.format is not None:
        raise ArchcountError("applies only to --file (use --json for one check)", argument="--format")
    if mode in ("formula", "scaled"):
        flag = "FORMULA" if mode == "formula" else "--scaled"
        _require(args, flag, "--model", "--quantity")
        _forbid(args, flag, **{"--layer": None, "--input": None, "--transposed": False, "--scale": None})
        if args.stride != 1 or args.dilation != 1:
            raise ArchcountError(f"does not apply to {flag} (it is for --padding)", argument="--stride")
        from models.user import resolve_model
        _, model = resolve_model(args.model)  # a zoo name, or the user's own model (imported here)
        if mode == "formula":
            if args.factor != 2:
                raise ArchcountError("applies only to --scaled", argument="--factor")
            result = checker.check(args.formula, model, args.quantity, input_size=args.size,
                                   convention=args.convention, switches=args.switches, **_hparams(args))
        else:
            result = checker.check_scaled(args.scaled, model, args.quantity, factor=args.factor,
                                          input_size=args.size, convention=args.convention,
                                          switches=args.switches, **_hparams(args))
        return _print_result(result, args.json)
    if mode == "shape":
        _require(args, "--shape", "--layer", "--input")
        _forbid(args, "--shape", **{"--model": None, "--quantity": None, "--kernel": None, "--size": None})
        return _print_result(checker.check_shape(args.shape, args.layer, args.input), args.json)
    _require(args, "--padding", "--kernel")
    _forbid(args, "--padding", **{"--model": None, "--quantity": None, "--size": None, "--layer": None})
    result = checker.check_padding(args.padding, args.kernel, args.stride, transposed=args.transposed,
                                   dilation=args.dilation, scale=args.scale)
    return _print_result(result, args.json)


# -------------------------------------------------------------------------------------- batch mode

def load_entries(path: str) -> list[Any]:
    """The entries of an answers file (a list, or a mapping with an ``answers``/``entries`` list)."""
    from analysis.checker.loaders import load_file
    data = load_file(path, "--file")
    if isinstance(data, Mapping):
        if getattr(data, "duplicates", []):
            raise ArchcountError(f"{path}: field {data.duplicates[0]} is given twice", argument="--file")
        for key in ("answers", "entries", "checks"):
            if isinstance(data.get(key), list):
                return list(data[key])
        raise ArchcountError(f"{path}: expected a list of entries (or a mapping with an 'answers' list)",
                             argument="--file")
    if not isinstance(data, list):
        raise ArchcountError(f"{path}: expected a list of entries, got {type(data).__name__}", argument="--file")
    return data


def run_file(path: str, fmt: str = "md") -> int:
    """Check every entry of ``path``; 2 if the file is malformed or an entry could not be checked,
    else 1 if an answer is wrong, else 0."""
    from analysis.checker.batch import check_many
    from reports.checking import batch_table
    batch = check_many(load_entries(path))
    text = batch_table(batch, fmt)
    print(text, end="" if text.endswith("\n") else "\n")
    c = batch.counts
    mixed = f", {c['mixed']} student(s) with mixed conventions" if c["mixed"] else ""
    print(f"{c['entries']} entries: {c['right']} right, {c['wrong']} wrong, {c['errors']} could not be checked"
          f"{mixed}", file=sys.stderr)
    for e in batch.entries:
        if e.result is None:
            print(f"archcount check: {e.error}", file=sys.stderr)
    if c["errors"]:
        return 2
    return 1 if c["wrong"] else 0
