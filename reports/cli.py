"""The ``archcount`` command line.

Each subcommand lives in ``reports/commands/<name>.py`` and provides
``add_parser(subparsers)``; :data:`COMMANDS` lists them explicitly.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from analysis.errors import ArchcountError

#: Subcommand modules under reports.commands, in the order --help shows them.
COMMANDS: tuple[str, ...] = ("models", "count", "solve", "padding", "shape", "rf", "verify", "check", "grade",
                             "train", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archcount",
        description="Exact symbolic counts (weights, outputs, connections) for convolutional networks, "
                    "verified against the real torch models.",
        epilog="Run 'archcount COMMAND --help' for the options of one command.")
    parser.add_argument("--version", action="version", version=f"archcount {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"reports.commands.{name}").add_parser(sub)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("archcount")
    except Exception:  # pragma: no cover - not installed
        return "0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ArchcountError as exc:
        print(f"archcount {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `archcount ... | head`: the reader left; say nothing more
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        except OSError:  # pragma: no cover
            pass
        return 0
    except Exception as exc:  # a bug of ours: one line, not a traceback (ARCHCOUNT_DEBUG=1 shows it)
        if os.environ.get("ARCHCOUNT_DEBUG"):
            raise
        print(f"archcount {args.command}: internal error: {type(exc).__name__}: {exc} "
              f"(please report it; set ARCHCOUNT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
