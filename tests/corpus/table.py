"""Print the corpus as a Markdown table of its independent measurements.

Run from the repository root as ``python tests/corpus/table.py [--fields] [NAME ...]`` or, from
``tests/``, as ``python -m corpus.table``.  Counts are per sample at each entry's input shape;
connections are multiply-accumulates (fvcore counts one flop per MAC, FlopCounterMode two).
``--fields`` adds the brute-force receptive field of each entry's last spatial map (slower).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):            # run as a script: make ``corpus`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus import REGISTRY  # noqa: E402
from corpus.field import measure_field  # noqa: E402
from corpus.reference import measure  # noqa: E402


def _n(v: int | None) -> str:
    return "" if v is None else f"{v:,}"


def rows(names: list[str], fields: bool = False) -> list[str]:
    """Markdown lines: header, rule, one row per corpus model."""
    head = ["model", "input", "parameters", "published", "fvcore conv+linear", "FlopCounterMode/2",
            "act×act products", "not seen by FlopCounterMode", "fvcore, all its ops"]
    if fields:
        head += ["receptive field (last map)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        e, m = REGISTRY[name], measure(name)
        published = _n(e.params) if e.params is not None else (e.params_rounded or "")
        cells = [name, "×".join(map(str, e.input_shape)), _n(m.params), published, _n(m.fvcore_weighted()),
                 _n(m.flop_counter_half), _n(m.activation_products), _n(m.unseen_by_flop_counter),
                 _n(m.fvcore_total)]
        if fields:
            f = measure_field(name)[0]
            cells.append(f"{f.layer or 'output'}: " + ("global" if f.is_global else "×".join(map(str, f.size or ()))))
        out.append("| " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="corpus entries (default: all)")
    parser.add_argument("--fields", action="store_true", help="add brute-force receptive fields")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown corpus entries: {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    start = time.perf_counter()
    print("\n".join(rows(args.names or list(REGISTRY), args.fields)))
    print(f"\n_measured in {time.perf_counter() - start:.1f} s_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
