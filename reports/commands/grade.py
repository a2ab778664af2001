"""``archcount grade ANSWERS --key KEY``: score a class's answers against a key, with feedback.

Exit status: 0 when every row was graded, 1 when some rows could not be (they are listed; the
rest is graded and written), 2 when the key or the answers file cannot be read.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from analysis.errors import ArchcountError

EPILOG = """\
examples:
  archcount grade answers.csv --key key.yaml                  (class summary and scores on stdout)
  archcount grade answers.yaml --key key.yaml --out grades/   (grades.csv, feedback.csv, grades.md,
                                                              report.json, gradescope/<student>/results.json)

ANSWERS: CSV, YAML or JSON; one row per student and question (student, question, answer) or one
column per question id (student, 4.3a, 4.3b, ...), or a mapping {student: {question: answer}}.

KEY (YAML): a list of questions, each with an id, points, what to check and the credit:
  title: Assignment 2
  questions:
    - id: 4.3a
      model: pool_upsample        # a formula question: model, quantity, kernel, size, ...
      quantity: weights
      kernel: 3
      points: 2
      conventions: {weighted: 1, "weighted[batchnorm=affine]": 1}   # accepted, with credit
      slips: {bias: 0.5, "nf-for-nc": 0.5}                         # partial credit per named slip
      feedback: {layer-missing: "Count every conv layer."}
    - id: 5.4
      padding: {kernel: 4, stride: 2, transposed: true}
    - id: 3.1
      shape: {layer: "conv k=5 s=2 p=1 out=16", input: 3x1024x768}
    - id: 4.4
      scaled: {model: unet, quantity: connections, factor: 2}
Without conventions any preset earns full credit.  Slip names: see analysis.checker.SLIPS
(patterns such as "nf-for-*" work)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grade", help="grade a class's answers against a key (CSV, Markdown, Gradescope)",
                       description="Score every answer of a class against a key: accepted conventions and the "
                                   "credit for each, partial credit per named slip, feedback per answer, and "
                                   "a class summary with the most common slips per question.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("answers", metavar="ANSWERS", help="the answers: CSV, YAML or JSON")
    p.add_argument("--key", required=True, metavar="KEY", help="the key: YAML (or JSON)")
    p.add_argument("--out", metavar="DIR", help="write grades.csv, feedback.csv, grades.md, report.json and "
                                                "gradescope/<student>/results.json there")
    p.add_argument("--format", choices=("md", "csv", "json"), default="md", help="what to print (default md)")
    p.set_defaults(func=run)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "student"


def _check_out(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ArchcountError(f"{out} exists and is not a directory", argument="--out")
    parent = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    import os
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArchcountError(f"{parent} is not writable", argument="--out")
    return path


def write_outputs(report, out: Path) -> list[Path]:
    """Every output file under ``out`` (written atomically)."""
    from analysis.files import write_atomic
    from reports.grading import feedback_csv, gradescope_json, grades_csv, grades_markdown, report_json
    written = [write_atomic(out / "grades.csv", grades_csv(report)),
               write_atomic(out / "feedback.csv", feedback_csv(report)),
               write_atomic(out / "grades.md", grades_markdown(report)),
               write_atomic(out / "report.json", report_json(report))]
    used: dict[str, int] = {}
    for s in report.students:
        name = _safe(s.student)
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name}-{used[name]}"
        written.append(write_atomic(out / "gradescope" / name / "results.json", gradescope_json(report, s.student)))
    if len(report.students) == 1:
        written.append(write_atomic(out / "results.json", gradescope_json(report, report.students[0].student)))
    return written


def run(args: argparse.Namespace) -> int:
    from analysis.checker.grading import grade, load_answers, load_key
    from reports.grading import grades_csv, grades_markdown, report_json
    out = _check_out(args.out) if args.out else None
    key = load_key(args.key)
    subs, errors = load_answers(args.answers, key)
    report = grade(subs, key, errors)
    if out is not None:
        try:
            written = write_outputs(report, out)
        except OSError as exc:
            raise ArchcountError(f"cannot write {exc.filename or out}: {exc.strerror or exc}",
                                 argument="--out") from None
        print(f"wrote {len(written)} files under {out}", file=sys.stderr)
    text = {"md": grades_markdown, "csv": grades_csv, "json": report_json}[args.format](report)
    print(text, end="")
    n = sum(a.verdict != "no answer" for s in report.students for a in s.answers)
    print(f"{len(report.students)} students, {n} answers graded ({report.unique_answers} distinct), "
          f"{len(report.errors)} rows could not be graded", file=sys.stderr)
    for e in report.errors:
        print(f"archcount grade: {e.where}: {e.message}", file=sys.stderr)
    return 1 if report.errors else 0
