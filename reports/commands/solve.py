"""``archcount solve``: the value of a hyperparameter that makes a total equal a target."""
from __future__ import annotations

import argparse

EPILOG = """example:
  archcount solve N --model mnist_global_pool --equal-to mnist_fixed --quantity weights --convention parameters
  archcount solve NF --model unet --equal-to 100000 --quantity weights --kernel 3

Exit status: 0 with the nearest integers, 1 when no positive value solves it (the reason is
printed; --json says "ok": false), 2 on a usage error.  The target is at most 10^100.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .count import add_common_model_args
    p = sub.add_parser("solve", help="find the hyperparameter value that makes a total equal a target",
                       description="Solve total(model, symbol) = target exactly; print the root and the nearest "
                                   "integers with their totals. Other hyperparameters stay at the model's defaults.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("symbol", help="hyperparameter to solve for: NIC, NF, NC, k, or another (e.g. N)")
    p.add_argument("--model", required=True)
    p.add_argument("--equal-to", required=True, dest="target", help="a number or another zoo model")
    p.add_argument("--quantity", default="weights", choices=("weights", "outputs", "connections"))
    p.add_argument("--size", help="input size N or HxW (default: the model's fixed size, else 32)")
    add_common_model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


#: Arguments of solve_for, as the flags that set them.
FLAGS = {"target": "--equal-to", "quantity": "--quantity", "size": "--size", "input_size": "--size"}


def run(args: argparse.Namespace) -> int:
    """Print the root and the nearest integers; exit 1 (with the reason) when no positive value exists."""
    from analysis.counting import solve_for
    from analysis.errors import ArchcountError
    from reports import formatting
    from .count import hparams_from, parse_size
    try:
        size = parse_size(args.size) if args.size else None
        res = solve_for(args.symbol, args.model, args.quantity, args.target, convention=args.convention,
                        switches=args.switches, input_size=size, **hparams_from(args))
    except ArchcountError as exc:
        if exc.argument in FLAGS:
            raise ArchcountError(exc.reason, argument=FLAGS[exc.argument], model=exc.model, layer=exc.layer,
                                 shapes=exc.shapes, hint=exc.hint) from None
        raise
    if args.json:
        print(formatting.json_text(res.to_dict()))
        return 0 if res.ok else 1
    print(f"{res.quantity} of {args.model} = {formatting.fmt_value(res.equation.lhs)}")
    print(f"target ({args.target}) = {formatting.fmt_value(res.target)}")
    if not res.ok:
        print(f"no solution: {res.reason}")
        return 1
    for r, approx in zip(res.roots, res.roots_float):
        print(f"exact root: {res.symbol} = {formatting.fmt_value(r)} ≈ {approx:.4f}")
    print(formatting.text_table([{"value": v, "total": t, "difference": d} for v, t, d in res.candidates]))
    print(f"closest integer: {res.symbol} = {res.best}" + ("" if res.exact else " (none gives the target exactly)"))
    return 0
