"""Consistency across a student's answers (issue 15, item 2) and grading a class (item 5).

Expected scores are computed here from the key's credits and the hand-derived formulas of
test_checker.py, not read back from the grader.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import sympy as sp

from analysis import ArchcountError
from analysis.checker.batch import check_many
from analysis.checker.grading import grade, load_answers, load_key, parse_key
from analysis.symbols import NC, NF, H, W, k
from reports.checking import batch_table
from reports.grading import gradescope, grades_csv, grades_markdown, report_json
from test_checker import (PU_BIASES, PU_BN, PU_CONN, PU_OUT, PU_POOL_CONN, PU_POOL_OUT, PU_UP_CONN, PU_UP_OUT,
                          PU_WEIGHTS)

DATA = Path(__file__).parent / "data" / "grading"
f = sp.sstr

# one write-up (issue 15): weights with biases and BatchNorm, outputs under all-layers, connections weighted
WRITE_UP = [
    {"student": "w1", "question": "weights", "model": "pool_upsample", "quantity": "weights",
     "formula": f(PU_WEIGHTS + PU_BIASES + PU_BN)},
    {"student": "w1", "question": "outputs", "model": "pool_upsample", "quantity": "outputs",
     "formula": f(PU_OUT + PU_POOL_OUT + PU_UP_OUT)},
    {"student": "w1", "question": "connections", "model": "pool_upsample", "quantity": "connections",
     "formula": f(PU_CONN)},
]


# ============================================================================================ consistency

def test_each_answer_is_right_on_its_own_but_the_conventions_are_mixed():
    batch = check_many(WRITE_UP)
    assert [e.ok for e in batch.entries] == [True, True, True]
    assert [e.convention for e in batch.entries] == ["parameters", "all-layers", "weighted"]
    (student,) = batch.students
    assert student.mixed and student.right_somewhere == 3
    # parameters (biases and BatchNorm, no pooling) makes weights and connections right: 2 of 3
    assert student.best == "parameters" and student.best_count == 2


def test_a_consistent_student_is_not_flagged():
    same = [dict(e) for e in WRITE_UP]
    same[1]["formula"] = f(PU_OUT)                      # outputs under weighted too
    batch = check_many(same)
    (student,) = batch.students
    assert not student.mixed and student.best == "parameters" and student.best_count == 3


def test_mixed_conventions_in_batch_mode(tmp_path, capsys):
    import yaml

    from reports.cli import main
    sheet = tmp_path / "a.yaml"
    sheet.write_text(yaml.safe_dump(WRITE_UP + [{"student": "w2", "model": "pool_upsample", "quantity": "weights",
                                                 "formula": f(PU_WEIGHTS)}]))
    assert main(["check", "--file", str(sheet)]) == 0
    out = capsys.readouterr()
    assert "**w1**: MIXED conventions (weights: parameters, outputs: all-layers, connections: weighted)" in out.out
    assert "parameters makes 2 of 3 right" in out.out
    assert "1 student(s) with mixed conventions" in out.err
    assert "w2" not in out.out.split("Conventions per student")[1]     # one answer: nothing to compare
    data = json.loads(batch_table(check_many(WRITE_UP), "json"))
    assert data["students"][0]["mixed"] is True and data["counts"]["mixed"] == 1


# ============================================================================================ grading

KEY = {"title": "t", "questions": [
    {"id": "w", "model": "pool_upsample", "quantity": "weights", "kernel": 3, "points": 2,
     "conventions": {"weighted": 1, "weighted[batchnorm=affine]": 1, "parameters": 0.5},
     "slips": {"bias": 0.5, "layer-*": 0.25}, "feedback": {"bias": "ignore the biases"}},
    {"id": "c", "model": "pool_upsample", "quantity": "connections", "kernel": 3, "points": 3,
     "conventions": ["weighted"], "slips": {"nf-for-nc": 0.5}},
    {"id": "p", "padding": {"kernel": 4, "stride": 2, "transposed": True}, "points": 1},
    {"id": "s", "shape": {"layer": "conv k=5 s=2 p=1 out=16", "input": "3x1024x768"}, "points": 1,
     "slips": {"kernel-term-missing": 0.5}},
]}
W3 = sp.expand(PU_WEIGHTS.subs(k, 3))
C3 = sp.expand(PU_CONN.subs(k, 3))


def _rows():
    # block4.0 (conv NF -> NC at H/4 x W/4, 9 NF NC H W / 4 connections) written with NF
    nf_nc = sp.expand(C3 - 9 * NF * NC * H * W / 4 + 9 * NF**2 * H * W / 4)
    return [
        {"student": "ana", "question": "w", "answer": f(W3)},                                  # 2
        {"student": "ana", "question": "c", "answer": f(C3)},                                  # 3
        {"student": "ana", "question": "p", "answer": "2p - op = 2"},                          # 1
        {"student": "ana", "question": "s", "answer": "16x511x383"},                           # 1
        {"student": "bo", "question": "w", "answer": f(W3 + PU_BIASES + PU_BN)},               # parameters: 0.5 * 2
        {"student": "bo", "question": "c", "answer": f(nf_nc)},                                # nf-for-nc: 0.5 * 3
        {"student": "bo", "question": "p", "answer": "p = 1 or p = 2"},                        # 0
        {"student": "bo", "question": "s", "answer": "16x513x385"},                            # 0.5 * 1
        # BatchNorm (accepted) plus the biases of block1.0, block2.0, block3.0 (NF + 2 NF + NF)
        {"student": "cy", "question": "w", "answer": f(W3 + PU_BN + 4 * NF)},                  # bias: 0.5 * 2
        {"student": "cy", "question": "c", "answer": "NF +* NC"},                              # unreadable: 0
    ]


def test_scores_follow_the_key():
    report = grade(_rows(), parse_key(KEY))
    totals = {s.student: s.total for s in report.students}
    assert totals["ana"] == 2 + 3 + 1 + 1
    assert totals["bo"] == 0.5 * 2 + 0.5 * 3 + 0 + 0.5 * 1
    cy = {a.question: a for a in report.students[2].answers}
    assert cy["c"].verdict == "unreadable" and cy["c"].score == 0
    assert cy["p"].verdict == "no answer" and cy["s"].verdict == "no answer"
    # "bias" earns half of the weighted[batchnorm=affine] credit
    assert cy["w"].slips == ("bias",) and cy["w"].score == 0.5 * 2 and "ignore the biases" in cy["w"].feedback
    bo = {a.question: a for a in report.students[1].answers}
    assert bo["w"].convention == "parameters" and bo["w"].verdict == "accepted with 0.5 credit"


def test_class_summary_most_common_slips():
    rows = _rows() + [{"student": "dee", "question": "s", "answer": "16x513x385"}]
    report = grade(rows, parse_key(KEY))
    s = {q.id: q for q in report.questions}["s"]
    assert s.slips[0] == ("kernel-term-missing", 2) and s.answered == 3 and s.right == 1


def test_grading_is_deterministic_and_formats(tmp_path):
    key = parse_key(KEY)
    rows = _rows()
    a, b = grade(rows, key), grade(list(reversed(rows)), key)
    assert grades_csv(a) == grades_csv(b) and grades_markdown(a) == grades_markdown(b)
    assert report_json(a) == report_json(b)
    table = list(csv.DictReader(io.StringIO(grades_csv(a))))
    assert [r["student"] for r in table] == ["ana", "bo", "cy"] and table[0]["total"] == "7" and table[0]["max"] == "7"
    md = grades_markdown(a)
    assert "## Class summary" in md and "| s | 2 | 1 |" in md and "### bo: 3 / 7" in md
    gs = gradescope(a, "bo")
    assert gs["score"] == 3 and [t["name"] for t in gs["tests"]] == ["w", "c", "p", "s"]
    assert gs["tests"][2]["score"] == 0 and gs["tests"][2]["max_score"] == 1 and gs["tests"][2]["status"] == "failed"
    assert "alternative 2 (p = 2) is wrong" in gs["tests"][2]["output"]


def test_wide_and_long_files_give_the_same_grades(tmp_path):
    key = parse_key(KEY)
    long_ = tmp_path / "long.csv"
    long_.write_text("student,question,answer\n" + "".join(f'{r["student"]},{r["question"]},"{r["answer"]}"\n'
                                                           for r in _rows()))
    wide = tmp_path / "wide.json"
    per: dict = {}
    for r in _rows():
        per.setdefault(r["student"], {})[r["question"]] = r["answer"]
    wide.write_text(json.dumps(per))
    yml = tmp_path / "rows.yaml"
    import yaml
    yml.write_text(yaml.safe_dump(_rows()))
    reports = [grade(*load_answers(str(p), key)[:1], key) for p in (long_, wide, yml)]
    assert grades_csv(reports[0]) == grades_csv(reports[1]) == grades_csv(reports[2])


def test_bad_rows_are_reported_and_the_rest_graded():
    rows = _rows() + [{"student": "ana", "question": "zz", "answer": "1"}, {"question": "w", "answer": "1"}, 42,
                      {"student": "ana", "question": "w", "answer": "NF"}]
    report = grade(rows, parse_key(KEY))
    messages = [e.message for e in report.errors]
    assert any("unknown question 'zz'" in m for m in messages) and any("no student" in m for m in messages)
    assert any("must be a mapping" in m for m in messages) and any("a second answer of ana to w" in m for m in messages)
    assert report.students[0].total == 7     # the second answer of ana to w is not graded


@pytest.mark.parametrize("key,message", [
    ({"questions": []}, "non-empty 'questions'"),
    ({"questions": [{"model": "unet", "quantity": "weights"}]}, "field id"),
    ({"questions": [{"id": "a", "model": "unet", "quantity": "weights"}] * 2}, "used twice"),
    ({"questions": [{"id": "a", "model": "unet", "quantity": "weights", "conventions": {"nope": 1}}]}, "nope"),
    ({"questions": [{"id": "a", "model": "unet", "quantity": "weights", "points": -1}]}, "points"),
    ({"questions": [{"id": "a", "padding": {"kernel": 4}, "conventions": {"weighted": 1}}]}, "does not apply"),
    ({"questions": [{"id": "a", "model": "unet", "quantity": "weights", "colour": 1}]}, "colour"),
    ({"questions": [{"id": "a", "shape": {"layer": "conv k=3", "input": "3x8x8", "kernel": 3}}]}, "kernel"),
])
def test_key_errors_name_the_question_and_field(key, message):
    with pytest.raises(ArchcountError, match=message):
        parse_key(key)


def test_the_example_class_in_tests_data(tmp_path, capsys):
    from reports.cli import main
    key = load_key(str(DATA / "key.yaml"))
    assert [q.id for q in key.questions] == ["4.3a", "4.3b", "4.3c", "4.3d", "5.4", "3.1"]
    code = main(["grade", str(DATA / "answers.csv"), "--key", str(DATA / "key.yaml"), "--out", str(tmp_path / "out")])
    assert code == 0
    out = tmp_path / "out"
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["feedback.csv", "grades.csv", "grades.md", "gradescope/ana/results.json",
                     "gradescope/bo/results.json", "gradescope/cy/results.json", "gradescope/dee/results.json",
                     "report.json"]
    grades = {r["student"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    # ana: 4.3b (640 NF + 2048 NC, by hand in tests/data/grading) and 5.4, 3.1, 4.3d right: 2 + 1 + 1 + 1
    assert grades["ana"]["4.3b"] == "2" and grades["ana"]["5.4"] == "1" and grades["ana"]["total"] == "5"
    assert json.loads((out / "gradescope" / "bo" / "results.json").read_text())["score"] == float(grades["bo"]["total"])
    assert "## Class summary" in capsys.readouterr().out


def test_one_student_also_gets_a_top_level_results_json(tmp_path):
    from reports.cli import main
    answers = tmp_path / "a.csv"
    answers.write_text("student,5.4\nzoe,p=1 op=0\n")
    assert main(["grade", str(answers), "--key", str(DATA / "key.yaml"), "--out", str(tmp_path / "o")]) == 0
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["tests"][4]["name"] == "5.4" and data["tests"][4]["score"] == 1


def test_handout_values_used_above():
    # the hand formulas the key relies on: all-layers connections add pooling taps and upsampling copies
    assert sp.expand(PU_POOL_CONN - 4 * PU_POOL_OUT) == 0 and sp.expand(PU_UP_CONN - PU_UP_OUT) == 0
