"""``archcount models``: list the registered models."""
from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every registered model with its hyperparameters",
                       description="List every registered model with its hyperparameters and a description.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import models
    rows = []
    for spec in models.registry:
        rows.append({"name": spec.name, "task": spec.task, "hparams": dict(spec.defaults),
                     "input_size": spec.size_rule(), "description": spec.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        hp = ", ".join(f"{k}={v}" for k, v in r["hparams"].items())
        print(f"{r['name']:<{width}}  {r['description']}")
        print(f"{'':<{width}}  hparams: {hp}; input H, W {r['input_size']}")
    return 0
