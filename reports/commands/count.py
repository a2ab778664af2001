"""``archcount count``: exact per-layer formulas of a model."""
from __future__ import annotations

import argparse
from typing import Any



from analysis.errors import ArchcountError

from ._model import add_input_arg, add_model_arg, input_shape_from, model_from

EPILOG = """examples:
  archcount count pool_upsample                       symbolic in NIC, NF, NC, k, H, W
  archcount count unet --kernel 3 --size 32            numbers for H = W = 32
  archcount count unet --size 32x48 --nf 16 --format json
  archcount count conv_transpose --set transposed=exact --set padding_taps=exclude --kernel 3
  archcount count pool_upsample --convention parameters --simplify
  archcount count my_net.py:ResNet18 --input 3x224x224   your own model (imports and runs my_net.py)
  archcount count mypkg.models:make_net --input 3xHxW --hp depth=3
"""


def add_common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel", type=int, help="fix the kernel size k (default: symbolic)")
    p.add_argument("--nic", type=int, dest="num_in_channels", help="fix NIC (input channels)")
    p.add_argument("--nf", type=int, dest="num_filters", help="fix NF (number of filters)")
    p.add_argument("--nc", type=int, dest="num_colours", help="fix NC (number of colours/classes)")
    p.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                   help="fix any other hyperparameter (repeatable)")
    p.add_argument("--convention", default="weighted", help="preset: weighted (default), all-layers, parameters")
    p.add_argument("--set", action="append", default=[], dest="switches", metavar="SWITCH=VALUE",
                   help="switch: bias=true|false, batchnorm=ignore|affine|layer, pooling=true|false, "
                        "padding_taps=include|exclude, transposed=scatter|exact|gather (repeatable)")


def parse_size(text: str | None) -> Any:
    """``32`` -> (32, 32); ``32x48`` -> (32, 48); None -> symbolic (H, W)."""
    from analysis.symbols import H, W
    if text is None:
        return (H, W)
    from analysis.bounds import bounded_int
    parts = text.lower().replace("×", "x").split("x")
    if any(len(p.strip()) > 40 for p in parts):
        raise ArchcountError("must be at most 10^18 (a number of more than 40 digits)", argument="--size")
    try:
        ints = [int(p) for p in parts]
    except ValueError:
        raise ArchcountError(f"expected N or HxW, got {text!r}", argument="--size") from None
    values = [bounded_int(v, "--size", minimum=1) for v in ints]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ArchcountError(f"expected positive N or HxW, got {text!r}", argument="--size")
    return tuple(values)


def hparams_from(args: argparse.Namespace) -> dict[str, Any]:
    hp: dict[str, Any] = {}
    for key in ("kernel", "num_in_channels", "num_filters", "num_colours"):
        value = getattr(args, key, None)
        if value is not None:
            hp[key] = value
    for item in getattr(args, "hp", []) or []:
        if "=" not in item:
            raise ArchcountError(f"expected NAME=VALUE, got {item!r}", argument="--hp")
        name, _, value = item.partition("=")
        try:
            hp[name.strip()] = int(value)
        except ValueError:
            raise ArchcountError(f"{name} must be an integer, got {value!r}", argument="--hp") from None
    return hp


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("count", help="exact weights, outputs and connections of every layer",
                       description="Exact per-layer formulas of a model under a named convention.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arg(p)
    p.add_argument("--size", help="input size N or HxW (omit for symbolic H, W)")
    add_input_arg(p)
    add_common_model_args(p)
    p.add_argument("--symbol", action="append", default=[], metavar="NAME",
                   help="lift another hyperparameter to a symbol, e.g. --symbol N")
    p.add_argument("--simplify", action="store_true",
                   help="simplify assuming H, W are multiples of the model's downsampling factor")
    p.add_argument("--format", choices=("table", "latex", "json", "csv"), default="table")
    p.add_argument("--all-rows", action="store_true", help="also list layers that contribute nothing")
    p.add_argument("--strict", action="store_true", help="unsupported layers are an error")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from analysis.counting import count
    from analysis.symbols import positive_int_symbol
    from reports import formatting
    label, model = model_from(args)
    symbols = {name: positive_int_symbol(name) for name in args.symbol}
    shape = input_shape_from(args)
    if shape is not None and args.size is not None:
        raise ArchcountError("give --input or --size, not both", argument="--input")
    size = None if shape is not None else parse_size(args.size)
    hp = hparams_from(args)
    if hp and not isinstance(model, str) and hasattr(model, "parameters"):
        raise ArchcountError("hyperparameters cannot be set on a model instance; name its class or factory",
                             argument="--hp", model=label)
    table = count(model, convention=args.convention, switches=args.switches, input_size=size, input_shape=shape,
                  symbols=symbols or None, strict=args.strict, **hp)
    if args.simplify:
        table = table.simplified()
    if args.format == "json":
        print(formatting.json_text(table.to_dict()))
    elif args.format == "csv":
        print(formatting.count_csv(table, all_rows=args.all_rows), end="")
    elif args.format == "latex":
        print(formatting.count_latex(table))
    else:
        print(formatting.count_text(table, all_rows=args.all_rows))
    return 0


