"""Grade a class: answers (one row per student and question, or one column per question) against a
key (the questions, their models and quantities, the accepted conventions and the credit for each,
partial credit per named slip).  Deterministic; a bad row is reported and the rest still graded.

>>> key = parse_key({"questions": [
...     {"id": "w", "model": "pool_upsample", "quantity": "weights", "kernel": 3, "points": 2,
...      "conventions": {"weighted": 1, "weighted[batchnorm=affine]": 1}, "slips": {"bias": 0.5}}]})
>>> report = grade([{"student": "ana", "question": "w", "answer": "9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2"},
...                 {"student": "bo", "question": "w",
...                  "answer": "9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2 + 4 NF + 2 NC"}], key)
>>> [(s.student, s.total) for s in report.students]
[('ana', 2.0), ('bo', 1.0)]
>>> report.questions[0].slips
(('bias', 1),)
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import sympy as sp

from ..conventions import PRESETS
from ..errors import ArchcountError
from .batch import FIELDS
from .common import conv_from_label, convention as parse_convention
from .loaders import LongNumber, TooDeep, load_file

IDENTITY = ("student", "id", "name", "email", "sid")
MAX_POINTS = 10 ** 6


# =================================================================================================== key

@dataclass(frozen=True)
class Question:
    """One question of the key."""

    id: str
    kind: str                                    #: formula, padding, shape or scaled
    params: Mapping[str, Any]                    #: what ``check`` needs (model, quantity, size, hparams ...)
    points: float = 1.0
    text: str = ""
    conventions: Mapping[str, float] = field(default_factory=dict)   #: accepted label -> credit (0..1)
    slips: Mapping[str, float] = field(default_factory=dict)         #: slip name (or pattern) -> credit
    feedback: Mapping[str, str] = field(default_factory=dict)        #: slip name (or pattern) -> text

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "points": self.points, "text": self.text,
                "conventions": dict(self.conventions), "slips": dict(self.slips)}


@dataclass(frozen=True)
class Key:
    title: str
    questions: tuple[Question, ...]

    def question(self, qid: str) -> Question | None:
        return next((q for q in self.questions if q.id == qid), None)


def _key_error(where: str, what: str) -> ArchcountError:
    return ArchcountError(f"{where}: {what}", argument="--key")


def _credit(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise _key_error(where, f"credit must be a number from 0 to 1, got {value!r}"[:200])
    return float(value)


def _mapping(q: Mapping[str, Any], name: str, where: str, kind: type) -> dict[str, Any]:
    raw = q.get(name)
    if raw is None:
        return {}
    if isinstance(raw, list) and name == "conventions":
        raw = {label: 1 for label in raw}
    if not isinstance(raw, Mapping):
        raise _key_error(where, f"field {name} must be a mapping of name to "
                                f"{'credit' if kind is float else 'text'}")
    out: dict[str, Any] = {}
    for k_, v in raw.items():
        if not isinstance(k_, str):
            raise _key_error(where, f"field {name}: names must be text, got {k_!r}"[:200])
        if kind is float:
            out[k_] = _credit(v, f"{where}: field {name}.{k_}")
        else:
            if not isinstance(v, str) or isinstance(v, (TooDeep, LongNumber)):
                raise _key_error(where, f"field {name}.{k_} must be text")
            out[k_] = v
    return out


_KEY_FIELDS = {"id", "question", "text", "points", "conventions", "slips", "feedback", "kind"}


def parse_key(data: Any) -> Key:
    """A key from its parsed YAML; every problem names the question and the field."""
    if isinstance(data, list):
        data = {"questions": data}
    if not isinstance(data, Mapping) or not isinstance(data.get("questions"), list) or not data["questions"]:
        raise ArchcountError("expected a mapping with a non-empty 'questions' list", argument="--key")
    dups = getattr(data, "duplicates", [])
    if dups:
        raise _key_error("key", f"field {dups[0]} is given twice")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise _key_error("key", "field title must be text")
    questions: list[Question] = []
    seen: set[str] = set()
    for i, q in enumerate(data["questions"], start=1):
        where = f"question {i}"
        if not isinstance(q, Mapping):
            raise _key_error(where, "must be a mapping of fields")
        qid = q.get("id")
        if isinstance(qid, bool) or not isinstance(qid, (str, int)) or isinstance(qid, (TooDeep, LongNumber)) \
                or not str(qid).strip():
            raise _key_error(where, "field id must be text such as '4.3a'")
        qid = str(qid).strip()
        where = f"question {i} ({qid})"
        if qid in seen:
            raise _key_error(where, "this id is used twice")
        seen.add(qid)
        if getattr(q, "duplicates", []):
            raise _key_error(where, f"field {q.duplicates[0]} is given twice")
        kinds = [kind for kind in FIELDS if kind in q]
        kind = kinds[0] if len(kinds) == 1 and isinstance(q.get(kinds[0]), Mapping) else None
        if kind is None:
            if len(kinds) > 1:
                raise _key_error(where, f"give only one of formula, shape, padding, scaled (got {', '.join(kinds)})")
            # the formula fields may sit on the question itself
            kind = "formula"
            params = {k_: v for k_, v in q.items() if k_ in FIELDS["formula"] and k_ != "formula"}
        else:
            params = dict(q[kind])
        unknown = sorted(set(q) - _KEY_FIELDS - FIELDS["formula"] - set(FIELDS))
        if unknown:
            raise _key_error(where, f"field {unknown[0]} is unknown; fields: conventions, feedback, id, points, "
                                    f"slips, text, and the check's own (model, quantity, size, kernel ...)")
        bad = sorted(set(params) - FIELDS[kind] - {kind})
        if bad:
            raise _key_error(where, f"field {bad[0]} does not apply to a {kind} question")
        points = q.get("points", 1)
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not 0 < points <= MAX_POINTS \
                or not math.isfinite(points):
            raise _key_error(where, f"field points must be a positive number, got {points!r}"[:200])
        conventions = _mapping(q, "conventions", where, float)
        for label in conventions:
            try:
                parse_convention(label)
            except ArchcountError as exc:
                raise _key_error(where, f"field conventions: {label!r}: {exc.reason}") from None
        if kind in ("shape", "padding") and conventions:
            raise _key_error(where, f"field conventions does not apply to a {kind} question")
        text = q.get("text", q.get("question", ""))
        questions.append(Question(qid, kind, params, float(points), str(text) if text else "", conventions,
                                  _mapping(q, "slips", where, float), _mapping(q, "feedback", where, str)))
        _validate_question(questions[-1], where)
    return Key(title, tuple(questions))


def _validate_question(q: Question, where: str) -> None:
    """Check the question itself once, with a placeholder answer: bad models, sizes, kernels fail here."""
    from .batch import EntryError, check_entry
    probe = {"formula": "1", "scaled": "2x", "padding": "p=0", "shape": "1x1x1"}[q.kind]
    entry = dict(q.params)
    entry[q.kind] = probe
    try:
        check_entry(entry, 1)
    except EntryError as exc:
        reason = exc.reason.split(": ", 1)[1] if exc.reason.startswith("entry 1") else exc.reason
        raise _key_error(where, reason) from None


def load_key(path: str) -> Key:
    """Read a key file (YAML or JSON)."""
    return parse_key(load_file(path, "--key"))


# =============================================================================================== answers

@dataclass(frozen=True)
class Submission:
    student: str
    question: str
    answer: Any
    line: int | None = None


@dataclass(frozen=True)
class RowError:
    where: str          #: "line 12" or "row 3"
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "message": self.message}


def _text(value: Any) -> str | None:
    if isinstance(value, (TooDeep, LongNumber)):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value).strip()


def submissions(rows: Any, key: Key) -> tuple[list[Submission], list[RowError]]:
    """Answers from parsed rows: long (student, question, answer) or wide (student and a column per
    question id), or a mapping ``{student: {question: answer}}``.  Bad rows become :class:`RowError`."""
    out: list[Submission] = []
    errors: list[RowError] = []
    ids = {q.id for q in key.questions}
    if isinstance(rows, Mapping) and "answers" in rows and isinstance(rows["answers"], list):
        rows = rows["answers"]
    if isinstance(rows, Mapping):
        rows = [dict({"student": s}, **v) if isinstance(v, Mapping) else {"student": s, "_bad": v}
                for s, v in rows.items()]
    if not isinstance(rows, list):
        raise ArchcountError("expected rows of answers (a CSV table, a list, or a mapping of student to answers)",
                             argument="ANSWERS")
    for i, row in enumerate(rows, start=1):
        where = f"line {row.line}" if getattr(row, "line", None) else f"row {i}"
        if not isinstance(row, Mapping):
            errors.append(RowError(where, "must be a mapping of fields"))
            continue
        if getattr(row, "duplicates", []):
            errors.append(RowError(where, f"field {row.duplicates[0]} is given twice"))
            continue
        student = next((_text(row[k_]) for k_ in IDENTITY if k_ in row and _text(row[k_])), None)
        if not student:
            errors.append(RowError(where, "no student: give a student (or id) field"))
            continue
        if "_bad" in row:
            errors.append(RowError(where, f"the answers of {student} must be a mapping of question to answer"))
            continue
        if "question" in row:
            qid = _text(row["question"])
            if qid not in ids:
                errors.append(RowError(where, f"unknown question {str(row['question'])[:40]!r}; the key has "
                                              f"{', '.join(sorted(ids))}"))
                continue
            if "answer" not in row:
                errors.append(RowError(where, "field answer is missing"))
                continue
            out.append(Submission(student, qid, row["answer"], getattr(row, "line", None)))
            continue
        extra = [c for c in row if c not in ids and c not in IDENTITY and str(c).strip()]
        if extra and not any(c in ids for c in row):
            errors.append(RowError(where, f"no question columns: {', '.join(map(str, extra[:3]))} are not question "
                                          f"ids of the key ({', '.join(sorted(ids))})"))
            continue
        if extra:
            errors.append(RowError(where, f"columns {', '.join(map(str, extra[:3]))} are not question ids; ignored"))
        for qid in [q.id for q in key.questions]:
            if qid in row and row[qid] not in (None, ""):
                out.append(Submission(student, qid, row[qid], getattr(row, "line", None)))
    return out, errors


def load_answers(path: str, key: Key) -> tuple[list[Submission], list[RowError]]:
    """Read an answers file (CSV, YAML or JSON)."""
    return submissions(load_file(path, "ANSWERS"), key)


# ============================================================================================== grading

@dataclass(frozen=True)
class Graded:
    """One student's answer to one question."""

    student: str
    question: str
    answer: str
    score: float
    points: float
    verdict: str
    feedback: tuple[str, ...]
    slips: tuple[str, ...] = ()
    convention: str = ""
    result: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"student": self.student, "question": self.question, "answer": self.answer, "score": self.score,
                "points": self.points, "verdict": self.verdict, "feedback": list(self.feedback),
                "slips": list(self.slips), "convention": self.convention or None}


@dataclass(frozen=True)
class StudentGrade:
    student: str
    answers: tuple[Graded, ...]       #: one per question of the key, in its order

    @property
    def total(self) -> float:
        return round(sum(a.score for a in self.answers), 4)

    @property
    def max_total(self) -> float:
        return round(sum(a.points for a in self.answers), 4)

    def to_dict(self) -> dict[str, Any]:
        return {"student": self.student, "total": self.total, "max": self.max_total,
                "answers": [a.to_dict() for a in self.answers]}


@dataclass(frozen=True)
class QuestionSummary:
    id: str
    answered: int
    right: int
    mean: float
    points: float
    slips: tuple[tuple[str, int], ...]    #: the most common slips, with how many answers had each

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "answered": self.answered, "right": self.right, "mean": self.mean,
                "points": self.points, "slips": [list(s) for s in self.slips]}


@dataclass(frozen=True)
class GradeReport:
    title: str
    questions: tuple[QuestionSummary, ...]
    students: tuple[StudentGrade, ...]
    errors: tuple[RowError, ...] = ()
    unique_answers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "questions": [q.to_dict() for q in self.questions],
                "students": [s.to_dict() for s in self.students], "errors": [e.to_dict() for e in self.errors],
                "unique_answers": self.unique_answers}


def _matches_name(patterns: Mapping[str, Any], name: str) -> Any:
    if name in patterns:
        return patterns[name]
    for pat, value in patterns.items():
        if fnmatch.fnmatchcase(name, pat):
            return value
    return None


def _accepted(q: Question) -> dict[str, float]:
    if q.conventions:
        return dict(q.conventions)
    return {label: 1.0 for label in PRESETS}


def _judge(q: Question, answer: Any) -> tuple[float, str, tuple[str, ...], tuple[str, ...], str, Any]:
    """(credit 0..1, verdict, feedback lines, slips, convention, result) for one answer.

    A formula answer right under an accepted convention earns that convention's credit; otherwise it
    is explained against each accepted convention (highest credit first), and the best partial
    credit of the named slips found is kept (several slips: the product of their credits).
    """
    from .batch import EntryError, check_entry
    accepted = _accepted(q)
    order = sorted(accepted, key=lambda label: (-accepted[label], list(accepted).index(label)))
    counted = q.kind in ("formula", "scaled")
    best: tuple | None = None
    for label in (order if counted else [None]):
        entry = dict(q.params)
        entry[q.kind] = answer
        if label is not None and "convention" not in entry:
            entry["convention"] = label
        try:
            result = check_entry(entry, 1)
        except EntryError as exc:
            reason = exc.reason.split(": ", 2)[-1] if exc.reason.startswith("entry 1") else exc.reason
            return 0.0, "unreadable", (f"could not read the answer: {reason}",), ("unreadable",), "", None
        if counted:
            matches = result.matches if result.kind == "formula" else (
                result.holds_under if result.formula_check is None else result.formula_check.matches)
            switches = {tuple(conv_from_label(m).switches.items()) for m in matches}
            got = [(c, lab) for lab, c in accepted.items()
                   if tuple(conv_from_label(lab).switches.items()) in switches]
            if got:
                credit, convention = max(got, key=lambda g: (g[0], -order.index(g[1])))
                verdict = "right" if credit == 1 else f"accepted with {credit:g} credit"
                lines = (f"right under {convention}",) if credit == 1 else \
                    (f"right under {convention}, which earns {credit:g} of the credit",)
                return credit, verdict, lines, (), convention, result
        elif result.ok:
            return 1.0, "right", ("right",), (), "", result
        slips = tuple(result.slip_names)
        credit = 0.0
        if slips:
            parts = [_matches_name(q.slips, s) for s in slips]
            if all(p is not None for p in parts):
                credit = math.prod(parts) * (accepted[label] if label is not None else 1)
        if best is None or credit > best[0]:
            best = (credit, result, slips, label)
    assert best is not None
    credit, result, slips, label = best
    lines = [result.verdict] + list(result.explanations[:3])
    for s in slips:
        extra = _matches_name(q.feedback, s)
        if extra:
            lines.append(extra)
    shown = tuple(s.name for s in getattr(result, "slips", ()) if not isinstance(s, str)) or slips
    verdict = "wrong" if credit == 0 else f"partial credit ({credit:g}): {', '.join(slips)}"
    return credit, verdict, tuple(lines), shown, label or "", result


def grade(rows: Any, key: Key, errors: Sequence[RowError] = ()) -> GradeReport:
    """Grade answers (rows as in :func:`submissions`, or :class:`Submission` objects) against ``key``.

    Identical answers to a question are judged once; students and questions come out in a fixed
    order (students sorted, questions as in the key), so the same input gives the same report.
    """
    if rows and all(isinstance(r, Submission) for r in rows):
        subs, errs = list(rows), list(errors)
    else:
        subs, errs = submissions(rows, key)
        errs = list(errors) + errs
    by_student: dict[str, dict[str, Submission]] = {}
    for s in subs:
        seen = by_student.setdefault(s.student, {})
        if s.question in seen:
            where = f"line {s.line}" if s.line else f"student {s.student}"
            errs.append(RowError(where, f"a second answer of {s.student} to {s.question}; the first one is graded"))
            continue
        seen[s.question] = s
    cache: dict[tuple[str, str], tuple] = {}
    students = []
    for student in sorted(by_student):
        answers = []
        for q in key.questions:
            sub = by_student[student].get(q.id)
            if sub is None:
                answers.append(Graded(student, q.id, "", 0.0, q.points, "no answer", ("no answer",)))
                continue
            text = _answer_key(sub.answer)
            ck = (q.id, _same_answer(q, text) if isinstance(sub.answer, str) else text)
            if ck not in cache:
                try:
                    cache[ck] = _judge(q, sub.answer)
                except ArchcountError as exc:   # pragma: no cover - check_entry turns these into EntryError
                    cache[ck] = (0.0, "unreadable", (f"could not read the answer: {exc.reason}",), ("unreadable",),
                                 "", None)
            credit, verdict, lines, slips, convention, result = cache[ck]
            answers.append(Graded(student, q.id, text, round(credit * q.points, 4), q.points, verdict, lines, slips,
                                  convention, result))
        students.append(StudentGrade(student, tuple(answers)))
    summaries = []
    for i, q in enumerate(key.questions):
        graded = [s.answers[i] for s in students if s.answers[i].verdict != "no answer"]
        tally: dict[str, int] = {}
        for g in graded:
            for name in g.slips:
                tally[name] = tally.get(name, 0) + 1
        common = tuple(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
        mean = round(sum(g.score for g in graded) / len(graded), 4) if graded else 0.0
        summaries.append(QuestionSummary(q.id, len(graded), sum(g.score == g.points for g in graded), mean,
                                         q.points, common))
    return GradeReport(key.title, tuple(summaries), tuple(students), tuple(errs), len(cache))


def _answer_key(answer: Any) -> str:
    if isinstance(answer, (TooDeep, LongNumber)):
        return answer.describe()
    return str(answer).strip()[:2000] if not isinstance(answer, str) else " ".join(answer.split())


def _same_answer(q: Question, text: str) -> Any:
    """What makes two answers to ``q`` the same for judging: the formula itself for a plain count
    formula (so ``9(NIC NF + NC^2)`` and ``9 NIC NF + 9 NC^2`` are judged once), else the text."""
    if q.kind != "formula" or len(text) > 2000:
        return text
    from ..parsing import parse_answer
    try:
        a = parse_answer(text)
    except ArchcountError:
        return text
    if a.form != "expression":
        return text
    return ("expression", sp.srepr(sp.expand(a.expression)))


__all__ = ["GradeReport", "Graded", "Key", "Question", "QuestionSummary", "RowError", "StudentGrade", "Submission",
           "grade", "load_answers", "load_key", "parse_key", "submissions"]
