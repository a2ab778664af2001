"""Grading a class with the CLI: 200 students x 6 questions, ``archcount grade`` in a new process.

The class is generated deterministically (seed 0): each answer is drawn from the right answer
written in several ways (plain text, LaTeX, factored, terms reordered), named slips (biases,
BatchNorm, a layer missing, NF for NC, wrong paddings and shapes), and in half of the formula
answers a random coefficient typo (nearly always unique, so judged on its own: answers with the
same formula are judged once).
Target: under 60 s for the whole class, imports and outputs included.

Run: python benchmarks/bench_grade.py [--students 200]
"""
from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, table, write_results

TARGET_S = 60.0

KEY = """\
title: "Benchmark class"
questions:
  - {id: w, model: conv_transpose, quantity: weights, kernel: 3, points: 2,
     conventions: {weighted: 1, "weighted[batchnorm=affine]": 1}, slips: {bias: 0.5, layer-missing: 0.25}}
  - {id: o, model: conv_transpose, quantity: outputs, kernel: 3, size: 32, points: 2,
     slips: {channels-only: 0.25}}
  - {id: c, model: pool_upsample, quantity: connections, kernel: 3, points: 2,
     conventions: {weighted: 1}, slips: {"nf-for-nc": 0.5, batchnorm-full-size: 0.5}}
  - {id: d, scaled: {model: conv_transpose, quantity: connections, kernel: 3}, points: 1}
  - {id: p, padding: {kernel: 4, stride: 2, transposed: true}, points: 1}
  - {id: s, shape: {layer: "conv k=5 s=2 p=1 out=16", input: 3x1024x768}, points: 1,
     slips: {kernel-term-missing: 0.5}}
"""


def _terms(rng: random.Random, terms: list[str]) -> str:
    terms = list(terms)
    rng.shuffle(terms)
    sep = rng.choice([" + ", "+", " +  "])
    return sep.join(terms)


def _typo(rng: random.Random, terms: list[str]) -> list[str]:
    """One coefficient of the terms changed at random (a unique wrong answer, most of the time)."""
    i = rng.randrange(len(terms))
    coef, _, rest = terms[i].partition(" ")
    terms = list(terms)
    terms[i] = f"{rng.randint(2, 400)}/{rng.choice([1, 2, 4, 8])} {rest}" if rest else str(rng.randint(2, 999))
    return terms


def answers(rng: random.Random, typos: float = 0.5) -> dict[str, str]:
    """One student's six answers: a share ``typos`` of the formula answers carry a random typo."""
    w_right = ["9 NIC NF", "36 NF^2", "9 NF NC", "9 NC^2"]
    w = rng.choice([
        lambda: _terms(rng, w_right),
        lambda: "9(NIC NF + 4NF^2 + NF NC + NC^2)",
        lambda: r"9 N_{IC} N_F + 36 N_F^{2} + 9 N_F \cdot N_C + 9 N_C^2",
        lambda: _terms(rng, w_right + ["12 NF", "4 NC"]),                     # parameters
        lambda: _terms(rng, w_right + ["4 NF", "2 NC"]),                      # biases
        lambda: _terms(rng, w_right + ["8 NF", "2 NC"]),                      # BatchNorm (accepted)
        lambda: _terms(rng, ["9 NIC NF", "18 NF^2", "9 NF NC", "9 NC^2"]),    # a layer missing
        lambda: _terms(rng, ["9 NIC NF", f"{rng.randint(1, 80)} NF^2", "9 NF NC", "9 NC^2"]),   # a typo
        lambda: f"{rng.randint(1, 99)} NIC NF + {rng.randint(1, 99)} NC",                       # nonsense
    ])()
    o = rng.choice([lambda: "640 NF + 2048 NC", lambda: "NF*16*16 + 2*NF*8*8 + NF*16*16 + 2*32*32*NC",
                    lambda: "4 NF + 2 NC", lambda: f"{rng.randint(100, 900)} NF + 2048 NC",
                    lambda: f"{rng.randint(100, 900)} NF + {rng.randint(100, 3000)} NC",
                    lambda: "640 NF + 2048 NC = 2688 NF NC"])()
    a = "H W"
    c_right = [f"9 NIC NF {a}", f"45/8 NF^2 {a}", f"9/4 NF NC {a}", f"9 NC^2 {a}"]
    c = rng.choice([
        lambda: _terms(rng, c_right),
        lambda: _terms(rng, [f"9 NIC NF {a}", f"45/8 NF^2 {a}", f"9/4 NF^2 {a}", f"9 NC^2 {a}"]),   # NF for NC
        lambda: _terms(rng, c_right + [f"4 NF {a}", f"NC {a}"]),              # BatchNorm at H x W
        lambda: _terms(rng, c_right + [f"5 NF {a}"]),                         # both slips
        lambda: _terms(rng, ["9 NIC NF", "45/8 NF^2", "9/4 NF NC", "9 NC^2"]),                 # no area
    ])() if rng.random() >= typos else _terms(rng, _typo(rng, c_right + rng.choice([[], [f"4 NF {a}", f"NC {a}"]])))
    d = rng.choice(["4x", "4", "x4", "2x", "16x", "4 times"])
    p = rng.choice(["2p - op = 2", "p=1 op=0", "p = 1, op = 0", "p = 1 or p = 2", "p=2 op=0", "p ∈ {1, 2}",
                    "p = 1", "2p = op + 1"])
    s = rng.choice(["16x511x383", "16x513x385", "16x510.5x382.5", "16x512x384", "3x511x383", "16 x 511 x 383"])
    return {"w": w, "o": o, "c": c, "d": d, "p": p, "s": s}


def make_class(folder: Path, students: int, seed: int = 0, typos: float = 0.5) -> tuple[Path, Path]:
    rng = random.Random(seed)
    key = folder / "key.yaml"
    key.write_text(KEY)
    path = folder / "answers.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["student", "w", "o", "c", "d", "p", "s"])
        writer.writeheader()
        for i in range(students):
            writer.writerow({"student": f"s{i:03d}", **answers(rng, typos)})
    return path, key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=200)
    args = ap.parse_args(argv)
    rows = []
    for label, typos in (("half the formula answers with a typo", 0.5), ("every formula answer a typo", 1.0)):
        with tempfile.TemporaryDirectory() as tmp:
            row = _run(Path(tmp), args.students, typos)
            if row is None:
                return 2
            rows.append({"class": f"{args.students} students x 6 questions, {label}", **row})
    print(table(rows, "archcount grade (CLI, new process, imports and outputs included)"))
    path = write_results("grade", {"rows": rows, "target_s": TARGET_S, "students": args.students})
    print(f"wrote {path}")
    return 0 if all(r["met"] == "yes" for r in rows) else 1


def _run(folder: Path, students: int, typos: float) -> dict | None:
    import resource
    answers_csv, key = make_class(folder, students, typos=typos)
    cmd = [sys.executable, "-m", "reports.cli", "grade", str(answers_csv), "--key", str(key),
           "--out", str(folder / "out")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    line = next((x for x in proc.stderr.splitlines() if "answers graded" in x), "")
    return {"cli_s": seconds, "cpu_s": cpu, "per_answer_ms": 1000 * seconds / (6 * students),
            "graded": line.split(",")[1].strip() if "," in line else line, "target_s": TARGET_S,
            "met": "yes" if seconds < TARGET_S else "NO"}


if __name__ == "__main__":
    raise SystemExit(main())
