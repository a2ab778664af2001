"""Rendering of a graded class: per-student CSV, Markdown feedback with a class summary, Gradescope JSON.

>>> from analysis.checker.grading import grade, parse_key
>>> key = parse_key({"questions": [{"id": "p", "padding": {"kernel": 4, "stride": 2}, "points": 1}]})
>>> report = grade([{"student": "ana", "p": "p=1"}, {"student": "bo", "p": "p = 1 or p = 2"}], key)
>>> print(grades_csv(report), end="")
student,p,total,max
ana,1,1,1
bo,0,0,1
>>> gradescope(report, "bo")["tests"][0]["score"]
0.0
"""
from __future__ import annotations

import json
from typing import Any

_CELL = 400


def _num(v: float) -> str:
    return f"{v:g}"


def _md(text: Any) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def grades_csv(report: Any) -> str:
    """One row per student: the score of each question, the total and the maximum."""
    from .formatting import csv_text
    qids = [q.id for q in report.questions]
    rows = []
    for s in report.students:
        row: dict[str, Any] = {"student": s.student}
        for a in s.answers:
            row[a.question] = _num(a.score)
        row["total"], row["max"] = _num(s.total), _num(s.max_total)
        rows.append(row)
    cols = ["student", *qids, "total", "max"]
    if not rows:
        return ",".join(cols) + "\n"
    return csv_text(rows, cols)


def feedback_csv(report: Any) -> str:
    """One row per student and question: score, verdict, slips and the feedback text."""
    from .formatting import csv_text
    rows = [{"student": a.student, "question": a.question, "score": _num(a.score), "points": _num(a.points),
             "verdict": a.verdict, "slips": " ".join(a.slips), "convention": a.convention,
             "feedback": " | ".join(a.feedback), "answer": a.answer}
            for s in report.students for a in s.answers]
    cols = ["student", "question", "score", "points", "verdict", "slips", "convention", "feedback", "answer"]
    return csv_text(rows, cols) if rows else ",".join(cols) + "\n"


def summary_markdown(report: Any) -> str:
    """The class summary: per question the answers, how many were right, the mean and the most common slips."""
    lines = ["| question | answered | right | mean | points | most common slips |", "|---|---|---|---|---|---|"]
    for q in report.questions:
        slips = ", ".join(f"{name} ({n})" for name, n in q.slips) or "-"
        lines.append(f"| {_md(q.id)} | {q.answered} | {q.right} | {_num(q.mean)} | {_num(q.points)} | {_md(slips)} |")
    return "\n".join(lines)


def grades_markdown(report: Any) -> str:
    """The whole report: the class summary, the score table, then the feedback of every student."""
    title = report.title or "Grades"
    n = len(report.students)
    qids = [q.id for q in report.questions]
    out = [f"# {title}", "", f"{n} student{'s' if n != 1 else ''}, {len(qids)} question{'s' if len(qids) != 1 else ''}"
           f"; {report.unique_answers} distinct answers judged.", "", "## Class summary", "", summary_markdown(report),
           "", "## Scores", ""]
    out.append("| student | " + " | ".join(_md(q) for q in qids) + " | total |")
    out.append("|---|" + "---|" * len(qids) + "---|")
    for s in report.students:
        out.append(f"| {_md(s.student)} | " + " | ".join(_num(a.score) for a in s.answers)
                   + f" | {_num(s.total)} / {_num(s.max_total)} |")
    if report.errors:
        out += ["", "## Rows that could not be graded", ""]
        out += [f"- {_md(e.where)}: {_md(e.message)}" for e in report.errors]
    out += ["", "## Feedback", ""]
    for s in report.students:
        out += [f"### {_md(s.student)}: {_num(s.total)} / {_num(s.max_total)}", ""]
        for a in s.answers:
            out.append(f"- **{_md(a.question)}** ({_num(a.score)} / {_num(a.points)}): {_md(a.verdict)}"
                       + (f" — answer `{_md(a.answer)}`" if a.answer else ""))
            out += [f"  - {_md(line)}" for line in a.feedback[1:] if line != a.verdict]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def gradescope(report: Any, student: str) -> dict[str, Any]:
    """The Gradescope autograder ``results.json`` of one student (a test per question)."""
    s = next((x for x in report.students if x.student == student), None)
    if s is None:
        raise KeyError(student)
    tests = []
    for i, a in enumerate(s.answers, start=1):
        tests.append({"name": a.question, "number": str(i), "score": a.score, "max_score": a.points,
                      "status": "passed" if a.score == a.points else "failed",
                      "output": "\n".join(a.feedback), "visibility": "visible"})
    return {"score": s.total, "output": f"{s.total:g} / {s.max_total:g}", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def gradescope_json(report: Any, student: str) -> str:
    return json.dumps(gradescope(report, student), indent=2, sort_keys=False) + "\n"


def report_json(report: Any) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


__all__ = ["feedback_csv", "gradescope", "gradescope_json", "grades_csv", "grades_markdown", "report_json",
           "summary_markdown"]
