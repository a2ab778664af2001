"""``archcount rf``: receptive field of every layer (size, jump, start), symbolic in k, optionally verified."""
from __future__ import annotations

import argparse
import json
import re
from typing import Any, Sequence

import sympy as sp

from analysis.errors import ArchcountError

from ._model import add_input_arg, add_model_arg, input_shape_from, model_from

EPILOG = """\
examples:
  archcount rf pool_upsample                 formulas in k (the model's kernel parity is assumed)
  archcount rf unet --kernel 5               numbers for k = 5
  archcount rf mnist_fixed --kernel 3        last spatial layer, then the global layers (whole input)
  archcount rf conv_transpose --verify       also measure it on the real model at k = 3, 5, 7
  archcount rf unet --kernel 3 --size 64 --json
  archcount rf my_net.py:ResNet18 --input 3x224x224   your own model (imports and runs my_net.py)

Sizes are in input pixels per axis (H and W alike for square kernels).  'RF' is the largest
window over output positions (interior units, not clipped by the border); where it depends on the
position the smallest is shown too.  'jump' is the input step per output step; 'start' the centre of
output unit 0's window.  'k mod 4' is the remainder of k divided by 4."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rf", help="receptive field of every layer: size, jump and start, symbolic in k",
        description="The receptive field of every layer of a model: the largest and smallest input window "
                    "over output positions, the jump and the start, exactly and symbolic in k unless "
                    "--kernel is given.  Global layers (global pooling, flatten) read the whole input.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    p.add_argument("--kernel", metavar="K", help="fix the kernel size (default: symbolic k)")
    add_input_arg(p)
    p.add_argument("--size", metavar="N|HxW", help="numeric input size: exact extent read by global layers and "
                   "the largest window inside the image ('visible', with --kernel)")
    p.add_argument("--verify", action="store_true",
                   help="measure the supports on the real model's connectivity copy and compare "
                        "(at --kernel, else at k = 3, 5, 7)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _parse_kernel(text: str | None) -> int | None:
    if text is None or text.strip() in ("k", "K"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise ArchcountError(f"must be an integer >= 1 or the letter k, got {text!r}", argument="--kernel") from None
    if value < 1:
        raise ArchcountError(f"must be an integer >= 1, got {value}", argument="--kernel")
    return value


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(v) for v in parts]
    except ValueError:
        raise ArchcountError(f"expected N or HxW, got {text!r}", argument="--size") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise ArchcountError(f"expected positive N or HxW, got {text!r}", argument="--size")
    return values[0], values[1]


def fmt(expr: Any) -> str:
    """A formula the way people write it.

    >>> from analysis.symbols import k
    >>> fmt(10*k + sp.Mod(k, 4) - 7), fmt(sp.Rational(1, 2)), fmt(sp.Piecewise((0, sp.Eq(k, 1)), (7*k - 10, True)))
    ('10k + (k mod 4) - 7', '1/2', '7k - 10 (0 at k = 1)')
    """
    if expr is None:
        return "-"
    if isinstance(expr, sp.Piecewise):
        *special, (last, _) = expr.args
        if all(isinstance(c, sp.Eq) and c.lhs.is_Symbol for _, c in special):
            where = ", ".join(f"{fmt(v)} at {c.lhs} = {c.rhs}" for v, c in special)
            return f"{fmt(last)} ({where})"
        parts = [f"{fmt(v)} if {_cond(c)}" for v, c in special]
        return "; ".join(parts + [f"{fmt(last)} otherwise"])
    text = sp.sstr(expr)
    text = re.sub(r"Mod\((\w+), (\d+)\)", r"(\1 mod \2)", text)
    text = re.sub(r"(\d)\*(?=[A-Za-z(])", r"\1", text)
    return text


def _cond(cond: Any) -> str:
    if isinstance(cond, sp.Eq):
        return f"{fmt(cond.lhs)} = {fmt(cond.rhs)}"
    return sp.sstr(cond)


def _axes(values: Sequence[Any] | None) -> str:
    if values is None:
        return "-"
    texts = [fmt(v) for v in values]
    return texts[0] if len(set(texts)) == 1 else " x ".join(texts)


def _global_text(size: Sequence[Any], input_size: Sequence[Any]) -> str:
    """'the whole input (28)', or how much of it is read (floor-mode layers can leave rows unread)."""
    whole = _axes(input_size)
    if tuple(size) == tuple(input_size):
        return f"the whole input ({whole})"
    first = size[0]
    if isinstance(first, sp.Piecewise) and all(isinstance(x, sp.Piecewise) for x in size) \
            and tuple(x.args[-1][0] for x in size) == tuple(input_size):
        where = ", ".join(f"{fmt(v)} at {c.lhs} = {c.rhs}" for v, c in first.args[:-1])
        return f"the whole input ({whole}); {where}"
    return f"{_axes(size)} of the {whole} input positions per axis"


def _table(rf: Any) -> list[str]:
    heads = ["layer", "type", "jump", "RF (largest)", "smallest", "start", "period"]
    show_visible = any(r.visible is not None for r in rf.layers)
    if show_visible:
        heads.append("visible")
    show_conn = any(r.connected is not None and r.size is not None and tuple(r.connected) != tuple(r.size)
                    for r in rf.layers)
    if show_conn:
        heads.append("connected")
    rows = []
    for r in rf.layers:
        if r.is_global:
            cells = [r.path, r.type_name, "-", _global_text(r.size, rf.input_size), "-", "-", "-"]
        elif r.unknown:
            cells = [r.path, r.type_name, "-", "unknown", "-", "-", "-"]
        elif r.drift:
            cells = [r.path, r.type_name, "-", "drifts", "-", "-", "-"]
        else:
            cells = [r.path, r.type_name, _axes(r.jump), _axes(r.size),
                     _axes(r.min_size) if r.varies else "same", _axes(r.start), _axes(r.period)]
        if show_visible:
            cells.append(_axes(r.visible))
        if show_conn:
            cells.append(_axes(r.connected))
        rows.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in rows)) for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(heads), line(["-" * w for w in widths])] + [line(c) for c in rows]


def _summary(rf: Any) -> list[str]:
    out = []
    sym = any(isinstance(x, sp.Basic) and x.free_symbols for r in rf.layers for x in (r.size or ()))
    spatial = rf.spatial
    final = rf.layer(rf.output)
    if spatial is not None and spatial.path != rf.output:
        out.append(f"last spatial layer {spatial.path}: receptive field {_axes(spatial.size)} per axis"
                   + (f", {_axes(spatial.min_size)} at some positions" if spatial.varies else ""))
    if final.is_global:
        out.append(f"output {rf.output}: reads {_global_text(final.size, rf.input_size)}")
    elif final.unknown:
        out.append(f"output {rf.output}: unknown ({final.notes[0] if final.notes else 'see the notes'})")
    elif final.size is None:
        out.append(f"output {rf.output}: no receptive field independent of the input size (a drifting merge)")
    else:
        text = f"output {rf.output}: receptive field {_axes(final.size)} per axis"
        if final.varies:
            text += f"; it varies with the output position (smallest {_axes(final.min_size)})"
        else:
            text += ", the same at every interior position"
        out.append(text)
        if sym and rf.kernel_parity != "even":
            ks = (3, 5, 7) if rf.kernel_parity == "odd" else (2, 3, 4, 5)
            values = [fmt(rf.evaluate(k=v).size[0]) for v in ks]
            out.append(f"  at k = {', '.join(map(str, ks))}: {', '.join(values)}")
    return out


def run(args: argparse.Namespace) -> int:
    from analysis.receptive import receptive_field, verify_receptive_field
    hp: dict[str, Any] = {}
    label, model = model_from(args)
    try:
        kernel = _parse_kernel(args.kernel)
        size = _parse_size(args.size)
        shape = input_shape_from(args)
        if shape is not None and size is not None:
            raise ArchcountError("give --input or --size, not both", argument="--input")
        if kernel is not None:
            hp["kernel"] = kernel
        if shape is not None:
            rf = receptive_field(model, input_shape=shape, **hp)
            size = tuple(shape[1:3]) if len(shape) >= 3 and all(isinstance(v, int) for v in shape[1:3]) else None
        else:
            rf = receptive_field(model, input_size=size, **hp)
        square = size[0] if size is not None and size[0] == size[1] else None
        check = verify_receptive_field(model, input_size=square, **hp) if args.verify else None
    except ArchcountError as exc:
        flags = {"kernel": "--kernel", "input_size": "--size"}
        if exc.argument in flags:
            raise ArchcountError(exc.reason, argument=flags[exc.argument], model=exc.model, layer=exc.layer,
                                 shapes=exc.shapes, hint=exc.hint) from None
        raise
    if args.json:
        data = rf.to_dict()
        if check is not None:
            data["verification"] = {"ok": check.ok, "kernels": list(check.kernels), "checks": len(check.rows),
                                    "failures": [r.to_dict() for r in check.failures()]}
        print(json.dumps(data, indent=2))
        return 0 if check is None or check.ok else 1
    what = "symbolic in k" if "kernel" not in hp else f"k = {hp['kernel']}"
    parity = f", k {rf.kernel_parity}" if rf.kernel_parity and "kernel" not in hp else ""
    print(f"{rf.model}: receptive fields in input pixels ({what}{parity}), per axis")
    print()
    for line in _table(rf):
        print(line)
    print()
    for line in _summary(rf):
        print(line)
    notes = sorted({n for r in rf.layers for n in r.notes})
    for note in notes:
        print(f"note: {note}")
    if check is not None:
        print()
        ks = ", ".join(map(str, check.kernels))
        if check.ok:
            print(f"verified on the real model at k = {ks}: {len(check.rows)} checks (largest and smallest windows, "
                  f"starts, every measured window) all agree")
        else:
            print(f"verification FAILED at k = {ks}: {len(check.failures())} of {len(check.rows)} checks differ")
            for r in check.failures()[:10]:
                print(f"  k={r.kernel} {r.path} {r.quantity}: formula {r.formula}, measured {r.measured}")
        return 0 if check.ok else 1
    return 0
