"""``archcount check``: is a hand-written answer right, under which convention, and where does it go wrong?

Exit status: 0 when every checked answer is right, 1 when one is wrong, 2 on a usage or parse
error (in batch mode: when an entry could not be checked).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
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
  archcount check --scaled 4x --model unet --quantity weights          (doubling the input: 4x the weights?)
  archcount check --file answers.yaml --format md

Formulas are plain text (9*NIC*NF + 18 NF^2, implicit multiplication, x, ·, ^, **) or LaTeX
(\\times, \\cdot, ^{2}, \\frac{}{}, \\left( \\right), \\lfloor \\rfloor); they are read safely, never
evaluated as Python.  Without --convention a formula is right when it matches a preset (weighted,
all-layers, parameters); the output names every convention it matches, or the closest one, the
difference per term, and which layers' terms account for it.

Batch file (YAML, a list; each entry one of):
  - {id: q1, model: unet, quantity: weights, formula: "...", size: 32, hparams: {kernel: 3},
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
    g.add_argument("--model", help="a zoo model (see 'archcount models')")
    g.add_argument("--quantity", help="weights, outputs or connections")
    g.add_argument("--size", metavar="N|HxW", help="input size; omit to compare symbolically in H, W")
    g.add_argument("--kernel", type=int, metavar="K",
                   help="kernel size (formula: fixes k; padding: the conv's kernel)")
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
    b.add_argument("--file", metavar="YAML", help="check every answer in a YAML file; prints one row per entry")
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
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.explain())
    return 0 if result.ok else 1


# --------------------------------------------------------------------------------------------- run

def run(args: argparse.Namespace) -> int:
    from analysis import checker
    mode = _mode(args)
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
        if mode == "formula":
            if args.factor != 2:
                raise ArchcountError("applies only to --scaled", argument="--factor")
            result = checker.check(args.formula, args.model, args.quantity, input_size=args.size,
                                   convention=args.convention, switches=args.switches, **_hparams(args))
        else:
            result = checker.check_scaled(args.scaled, args.model, args.quantity, factor=args.factor,
                                          input_size=args.size, convention=args.convention,
                                          switches=args.switches, **_hparams(args))
        return _print_result(result, args.json)
    if mode == "shape":
        _require(args, "--shape", "--layer", "--input")
        _forbid(args, "--shape", **{"--model": None, "--quantity": None, "--kernel": None, "--size": None})
        try:
            result = checker.check_shape(args.shape, args.layer, args.input)
        except ArchcountError as exc:
            if exc.argument in ("input", "shape"):
                raise ArchcountError(exc.reason, argument=f"--{exc.argument}", layer=exc.layer,
                                     shapes=exc.shapes, hint=exc.hint) from None
            raise
        return _print_result(result, args.json)
    _require(args, "--padding", "--kernel")
    _forbid(args, "--padding", **{"--model": None, "--quantity": None, "--size": None, "--layer": None})
    result = checker.check_padding(args.padding, args.kernel, args.stride, transposed=args.transposed,
                                   dilation=args.dilation, scale=args.scale)
    return _print_result(result, args.json)


# -------------------------------------------------------------------------------------- batch mode

_COMMON = {"id", "name", "note", "notes", "points"}
_FIELDS = {
    "formula": {"formula", "model", "quantity", "size", "input_size", "hparams", "kernel", "nic", "nf", "nc",
                "convention", "switches"},
    "shape": {"shape", "layer", "input"},
    "padding": {"padding", "kernel", "stride", "dilation", "transposed", "scale", "output_padding"},
    "scaled": {"scaled", "model", "quantity", "factor", "size", "input_size", "hparams", "kernel", "nic", "nf",
               "nc", "convention", "switches"},
}
_REQUIRED = {"formula": ("model", "quantity"), "shape": ("layer", "input"), "padding": ("kernel",),
             "scaled": ("model", "quantity")}


class EntryError(ArchcountError):
    """A batch entry that cannot be checked; names the entry and the field."""


def _entry_kind(entry: Mapping[str, Any], index: int) -> str:
    kinds = [kind for kind in _FIELDS if kind in entry]
    if not kinds:
        raise EntryError(f"entry {index}: no answer: give one of formula, shape, padding, scaled",
                         argument="formula")
    if len(kinds) > 1:
        raise EntryError(f"entry {index}: give only one of formula, shape, padding, scaled "
                         f"(got {', '.join(kinds)})", argument=kinds[1])
    return kinds[0]


def _entry_hparams(entry: Mapping[str, Any], index: int) -> dict[str, Any]:
    hp: dict[str, Any] = {}
    raw = entry.get("hparams") or {}
    if not isinstance(raw, Mapping):
        raise EntryError(f"entry {index}: hparams must be a mapping such as {{kernel: 3}}", argument="hparams")
    pairs = [(str(key), value, "hparams") for key, value in raw.items()]
    pairs += [(name, entry[key], key) for key, name in (("kernel", "kernel"), ("nic", "num_in_channels"),
                                                         ("nf", "num_filters"), ("nc", "num_colours")) if key in entry]
    for key, value, field in pairs:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EntryError(f"entry {index}: {key} must be an integer, got {value!r}", argument=field)
        if key in hp and hp[key] != value:
            raise EntryError(f"entry {index}: {key} given twice ({hp[key]} and {value})", argument=field)
        hp[key] = value
    return hp


def check_entry(entry: Any, index: int) -> Any:
    """Check one batch entry (a mapping); raises :class:`EntryError` naming the entry and field."""
    from analysis import checker
    if not isinstance(entry, Mapping):
        raise EntryError(f"entry {index}: expected a mapping of fields, got {type(entry).__name__}",
                         argument="entry")
    kind = _entry_kind(entry, index)
    unknown = sorted(set(map(str, entry)) - _FIELDS[kind] - _COMMON)
    if unknown:
        raise EntryError(f"entry {index}: unknown field {unknown[0]!r} for a {kind} entry; fields: "
                         f"{', '.join(sorted(_FIELDS[kind]))}", argument=unknown[0])
    for name in _REQUIRED[kind]:
        if entry.get(name) in (None, ""):
            raise EntryError(f"entry {index}: missing field {name!r}", argument=name)
    try:
        if kind in ("formula", "scaled"):
            for name in ("model", "quantity"):
                if not isinstance(entry[name], str):
                    raise EntryError(f"entry {index}: {name} must be text, got {entry[name]!r}", argument=name)
            size = entry.get("size", entry.get("input_size"))
            if size is not None and not isinstance(size, (int, str)):
                raise EntryError(f"entry {index}: size must be N or HxW, got {size!r}", argument="size")
            switches = entry.get("switches")
            hp = _entry_hparams(entry, index)
            if kind == "formula":
                formula = entry["formula"]
                if isinstance(formula, bool) or not isinstance(formula, (str, int, float)):
                    raise EntryError(f"entry {index}: formula must be text or a number, got {formula!r}",
                                     argument="formula")
                return checker.check(formula, entry["model"], entry["quantity"], input_size=size,
                                     convention=entry.get("convention"), switches=switches, **hp)
            factor = entry.get("factor", 2)
            return checker.check_scaled(entry["scaled"], entry["model"], entry["quantity"], factor=factor,
                                        input_size=size, convention=entry.get("convention"), switches=switches,
                                        **hp)
        if kind == "shape":
            return checker.check_shape(str(entry["shape"]), str(entry["layer"]), str(entry["input"]))
        transposed = entry.get("transposed", False)
        if not isinstance(transposed, bool):
            raise EntryError(f"entry {index}: transposed must be true or false, got {transposed!r}",
                             argument="transposed")
        return checker.check_padding(entry["padding"], entry["kernel"], entry.get("stride", 1),
                                     transposed=transposed, dilation=entry.get("dilation", 1),
                                     output_padding=entry.get("output_padding"), scale=entry.get("scale"))
    except EntryError:
        raise
    except ArchcountError as exc:
        field = exc.argument if exc.argument in entry else {"input_size": "size", "claim": kind,
                                                            "formula": "formula"}.get(exc.argument or "", None)
        field = field or (exc.argument if exc.argument else kind)
        raise EntryError(f"entry {index}: {exc}", argument=field) from None


def _answer_text(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return ""
    for key in ("formula", "shape", "padding", "scaled"):
        if key in entry:
            return str(entry[key])
    return ""


def _what(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return ""
    if "formula" in entry or "scaled" in entry:
        parts = [str(entry.get("model", "?")), str(entry.get("quantity", "?"))]
        size = entry.get("size", entry.get("input_size"))
        if size is not None:
            parts.append(f"size {size}")
        if "scaled" in entry:
            parts.append(f"input x{entry.get('factor', 2)}")
        return " ".join(parts)
    if "shape" in entry:
        return f"{entry.get('layer', '?')} on {entry.get('input', '?')}"
    if "padding" in entry:
        t = "tconv" if entry.get("transposed") else "conv"
        return f"{t} k={entry.get('kernel', '?')} s={entry.get('stride', 1)}"
    return ""


def load_entries(path: str) -> list[Any]:
    """The entries of a YAML answers file (a list, or a mapping with an ``answers``/``entries`` list)."""
    import yaml
    p = Path(path)
    if not p.is_file():
        raise ArchcountError(f"no such file: {path}", argument="--file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ArchcountError(f"{path} is not valid YAML: {exc}", argument="--file") from None
    except UnicodeDecodeError:
        raise ArchcountError(f"{path} is not UTF-8 text", argument="--file") from None
    if isinstance(data, Mapping):
        for key in ("answers", "entries", "checks"):
            if isinstance(data.get(key), list):
                return list(data[key])
        raise ArchcountError(f"{path}: expected a list of entries (or a mapping with an 'answers' list)",
                             argument="--file")
    if not isinstance(data, list):
        raise ArchcountError(f"{path}: expected a list of entries, got {type(data).__name__}", argument="--file")
    return data


def check_entries(entries: list[Any]) -> list[dict[str, Any]]:
    """One row per entry: index, id, kind, what, answer, verdict (right/wrong/error), explanation, result."""
    rows = []
    for i, entry in enumerate(entries, start=1):
        ident = str(entry.get("id", entry.get("name", ""))) if isinstance(entry, Mapping) else ""
        row: dict[str, Any] = {"#": i, "id": ident, "kind": "", "check": _what(entry), "answer": _answer_text(entry)}
        try:
            result = check_entry(entry, i)
        except ArchcountError as exc:
            field = exc.argument or ""
            row.update(kind=row["kind"] or "error", verdict="error", ok=False, field=field,
                       explanation=exc.reason + (f" (field: {field})" if field else ""), result=None)
        else:
            row.update(kind=result.kind, verdict=result.verdict, ok=result.ok, field="",
                       explanation=result.explanation or ("right" if result.ok else ""), result=result)
        rows.append(row)
    return rows


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def format_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """The batch table as md, csv, json or text."""
    cols = ["#", "id", "kind", "check", "answer", "verdict", "explanation"]
    if fmt == "json":
        out = []
        for r in rows:
            item = {c: r[c] for c in cols}
            item["ok"] = r["ok"]
            item["field"] = r["field"] or None
            item["result"] = r["result"].to_dict() if r["result"] is not None else None
            out.append(item)
        return json.dumps(out, indent=2)
    if fmt == "csv":
        from reports.formatting import csv_text
        return csv_text([{c: r[c] for c in cols} for r in rows], cols)
    if fmt == "text":
        from reports.formatting import text_table
        return text_table([{c: r[c] for c in cols} for r in rows], cols, max_width=120)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_md_cell(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def run_file(path: str, fmt: str = "md") -> int:
    """Check every entry of ``path``; 2 if an entry could not be checked, else 1 if one is wrong, else 0."""
    entries = load_entries(path)
    rows = check_entries(entries)
    text = format_rows(rows, fmt)
    print(text, end="" if text.endswith("\n") else "\n")
    n_err = sum(r["verdict"] == "error" for r in rows)
    n_ok = sum(bool(r["ok"]) for r in rows)
    n_wrong = len(rows) - n_ok - n_err
    print(f"{len(rows)} entries: {n_ok} right, {n_wrong} wrong, {n_err} could not be checked", file=sys.stderr)
    if n_err:
        return 2
    return 1 if n_wrong else 0
