"""Bad input to the checker and the grader (issue 13, items 3, 4, 5, 1 and 9 for ``check``; ``grade``).

Every case must end cleanly: exit status 2 for a usage or input error (1 for a wrong answer), no
traceback, a message naming the argument, path or entry, within its time limit, and nothing
changed outside the case folder's allowed paths.  Cases run through the shared harness
(:mod:`badinput`).
"""
from __future__ import annotations


import pytest
import sympy as sp

from badinput import ApiCase, CliCase, run_api_case, run_cli_case

PU = "9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2"
GOOD = f"- {{id: good, model: pool_upsample, quantity: weights, formula: '{PU}'}}\n"


def _laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join(["*" + prev] * 9) + "]")
        prev = name
    lines.append("answers:\n  - {id: *i, model: unet, quantity: weights, formula: NF}")
    return "\n".join(lines) + "\n"


def _sparse(name: str, size: int):
    def setup(tmp):
        with open(tmp / name, "wb") as fh:
            fh.truncate(size)
    return setup


KEY = ("questions:\n"
       "  - {id: w, model: pool_upsample, quantity: weights, kernel: 3, points: 2,\n"
       "     conventions: {weighted: 1}, slips: {bias: 0.5}}\n"
       "  - {id: p, padding: {kernel: 4, stride: 2}}\n")
ANSWERS = ("student,question,answer\n"
           f"ana,w,{PU}\n"
           "ana,p,p=1\n"
           "bo,w,NF\n"
           "bo,zz,p=1\n"        # an unknown question: a bad row
           ",p,p=1\n")          # no student: a bad row

CLI = [
    # ---- item 3: YAML batches
    CliCase("yaml-billion-laughs", ["check", "--file", "laughs.yaml"], ["laughs.yaml", "anchor"],
            files={"laughs.yaml": _laughs()}, timeout=10, isolate=True, memory_gib=2),
    CliCase("yaml-field-types", ["check", "--file", "a.yaml"], ["entry 1: field switches", "entry 2: field convention"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: NF, switches: 123}\n"
                             "- {id: b, model: unet, quantity: weights, formula: NF, convention: [a]}\n" + GOOD}),
    CliCase("yaml-5000-digit-integer", ["check", "--file", "a.yaml"], ["entry 1: field formula", "5000 digits"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: " + "9" * 5000 + "}\n" + GOOD}),
    CliCase("yaml-5000-digit-kernel", ["check", "--file", "a.yaml"], ["entry 1: field kernel"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: NF, kernel: " + "3" * 5000 + "}\n"
                             + GOOD}),
    CliCase("yaml-20000-nested-brackets", ["check", "--file", "a.yaml"], ["entry 1: field formula"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: " + "[" * 20000 + "]" * 20000
                             + "}\n" + GOOD}, timeout=10),
    CliCase("yaml-20000-nested-parentheses-in-formula", ["check", "--file", "a.yaml"], ["entry 1: field formula"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: '" + "(" * 20000 + "NF"
                             + ")" * 20000 + "'}\n" + GOOD}, timeout=10),
    CliCase("yaml-duplicate-key", ["check", "--file", "a.yaml"], ["entry 1: field model is given twice"],
            files={"a.yaml": "- {id: a, model: unet, model: pool_upsample, quantity: weights, formula: NF}\n" + GOOD}),
    CliCase("yaml-duplicate-top-level-key", ["check", "--file", "a.yaml"], ["answers", "twice"],
            files={"a.yaml": "answers: []\nanswers:\n" + "  " + GOOD}),
    CliCase("yaml-python-tag", ["check", "--file", "a.yaml"], ["a.yaml", "not valid YAML"],
            files={"a.yaml": "!!python/object/apply:os.system ['touch pwned']\n"}),
    CliCase("yaml-not-a-list", ["check", "--file", "a.yaml"], ["a.yaml", "list of entries"],
            files={"a.yaml": "just text\n"}),
    CliCase("yaml-entry-not-a-mapping", ["check", "--file", "a.yaml"], ["entry 1: must be a mapping"],
            files={"a.yaml": "- 42\n" + GOOD}),
    CliCase("yaml-unknown-field", ["check", "--file", "a.yaml"], ["entry 1: field colour is unknown"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: NF, colour: red}\n" + GOOD}),
    CliCase("yaml-infinite-float", ["check", "--file", "a.yaml"], ["entry 1: field formula", "finite"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: .inf}\n" + GOOD}),
    CliCase("yaml-kernel-too-large", ["check", "--file", "a.yaml"], ["entry 1: field kernel", "64"],
            files={"a.yaml": "- {id: a, model: unet, quantity: weights, formula: NF, kernel: 1001}\n" + GOOD}),
    CliCase("yaml-transposed-not-bool", ["check", "--file", "a.yaml"], ["entry 1: field transposed"],
            files={"a.yaml": "- {id: a, padding: p=1, kernel: 4, stride: 2, transposed: maybe}\n" + GOOD}),
    CliCase("yaml-mapping-key-not-text", ["check", "--file", "a.yaml"], ["a.yaml", "key must be text"],
            files={"a.yaml": "- {? [a, b] : 1}\n"}),
    CliCase("yaml-not-utf8", ["check", "--file", "a.yaml"], ["a.yaml", "UTF-8"],
            files={"a.yaml": b"- {id: \xff\xfe}\n"}),
    CliCase("json-5000-digit-integer", ["check", "--file", "a.json"], ["entry 1: field formula"],
            files={"a.json": '[{"id": "a", "model": "unet", "quantity": "weights", "formula": ' + "7" * 5000
                             + '}, {"id": "b", "model": "unet", "quantity": "weights", "formula": "NF"}]'}),
    CliCase("yaml-wrong-answer-exits-1", ["check", "--file", "a.yaml"], ["wrong-one"], status=1,
            files={"a.yaml": "- {id: wrong-one, model: unet, quantity: weights, formula: NF}\n" + GOOD}),
    # ---- item 5: files and directories
    CliCase("file-is-a-directory", ["check", "--file", "adir"], ["adir", "directory"], setup=lambda t: (t / "adir").mkdir()),
    CliCase("file-is-dev-zero", ["check", "--file", "/dev/zero"], ["/dev/zero", "not a regular file"], timeout=5),
    CliCase("file-missing", ["check", "--file", "nope.yaml"], ["nope.yaml", "no such file"]),
    CliCase("file-too-large", ["check", "--file", "big.yaml"], ["big.yaml", "bytes"],
            setup=_sparse("big.yaml", 64 * 1024 * 1024), timeout=5),
    # ---- item 1: huge numbers through the checker
    CliCase("size-1e12-answers-fast", ["check", "NF", "--model", "unet", "--quantity", "weights", "--size",
                                       "1000000000000"], ["wrong"], status=1, timeout=30),
    CliCase("size-1e12-outputs", ["check", "NF", "--model", "conv_transpose", "--quantity", "connections",
                                  "--size", "1000000000000", "--kernel", "3"], ["wrong"], status=1, timeout=30),
    CliCase("size-beyond-bound", ["check", "NF", "--model", "unet", "--quantity", "weights", "--size",
                                  "10000000000000000"], ["--size"]),
    CliCase("kernel-beyond-bound", ["check", "NF", "--model", "unet", "--quantity", "weights", "--kernel", "1001"],
            ["--kernel", "64"]),
    CliCase("nf-1e12-substituted", ["check", "NF", "--model", "unet", "--quantity", "weights", "--nf",
                                    "1000000000000", "--kernel", "3"], ["wrong"], status=1, timeout=30),
    CliCase("shape-input-1e9", ["check", "--shape", "16x8x8", "--layer", "conv k=3 s=2 p=1",
                                "--input", "3x1000000000x1000000000"], ["--input"], timeout=5),
    CliCase("padding-stride-1e9", ["check", "--padding", "p=1", "--kernel", "3", "--stride", "1000000000"],
            ["--stride"], timeout=5),
    CliCase("padding-kernel-1e12", ["check", "--padding", "p=1", "--kernel", "1000000000000", "--stride", "2"],
            ["wrong"], status=1, timeout=5),
    CliCase("padding-30-digit-claim", ["check", "--padding", "p=" + "9" * 30, "--kernel", "3"], ["wrong"], status=1,
            timeout=5),
    CliCase("scaled-factor-huge", ["check", "--scaled", "4x", "--model", "unet", "--quantity", "weights",
                                   "--factor", "1000000000"], ["--factor"]),
    # ---- item 9: the argument at fault
    CliCase("scaled-blames-scaled", ["check", "--scaled", "__import__('os')", "--model", "unet",
                                     "--quantity", "weights"], ["argument --scaled"]),
    CliCase("formula-too-large-to-expand", ["check", "(NIC+NF+NC+k+H+W)^64", "--model", "unet", "--quantity",
                                            "weights"], ["argument formula", "too large"], timeout=5),
    CliCase("formula-empty-side", ["check", "weights = ", "--model", "unet", "--quantity", "weights"],
            ["argument formula", "nothing after '='"]),
    CliCase("formula-several-relations", ["check", "NF = 1, NC = 2", "--model", "unet", "--quantity", "weights"],
            ["argument formula"]),
    CliCase("padding-dangling-or", ["check", "--padding", "p = 1 or", "--kernel", "3"], ["--padding", "'or'"]),
    CliCase("padding-relation-other-symbol", ["check", "--padding", "p = H", "--kernel", "3"], ["--padding", "H"]),
    CliCase("padding-op-on-a-conv", ["check", "--padding", "2p - op = 2", "--kernel", "4", "--stride", "2"],
            ["output_padding"]),
    CliCase("padding-negative", ["check", "--padding", "p = -1", "--kernel", "3"], ["--padding", ">= 0"]),
    CliCase("layer-in-channel-mismatch", ["check", "--shape", "16x15x15", "--layer", "conv k=5 s=2 p=1 in=3 out=16",
                                          "--input", "8x32x32"], ["in=3", "8"]),
    CliCase("layer-in-not-divisible-by-groups", ["shape", "conv k=3 in=3 g=2 out=4", "--input", "3x8x8"], ["groups"]),
    CliCase("kernel-not-a-number", ["check", "NF", "--model", "unet", "--quantity", "weights", "--kernel", "three"],
            ["--kernel"]),
    CliCase("convention-malformed-label", ["check", "NF", "--model", "unet", "--quantity", "weights",
                                           "--convention", "weighted[bias=true"], ["--convention"]),
    # ---- grade
    CliCase("grade-bad-rows-still-graded", ["grade", "answers.csv", "--key", "key.yaml", "--out", "out"],
            ["line 5", "unknown question", "line 6", "no student"], status=1,
            files={"answers.csv": ANSWERS, "key.yaml": KEY}, may_change=["out", "out/*", "out/*/*", "out/*/*/*"],
            timeout=60),
    CliCase("grade-key-missing", ["grade", "answers.csv", "--key", "nokey.yaml"], ["--key", "nokey.yaml"],
            files={"answers.csv": ANSWERS}),
    CliCase("grade-key-unknown-model", ["grade", "answers.csv", "--key", "key.yaml"], ["--key", "question 1 (w)"],
            files={"answers.csv": ANSWERS, "key.yaml": "questions:\n  - {id: w, model: nosuch, quantity: weights}\n"}),
    CliCase("grade-key-credit-out-of-range", ["grade", "answers.csv", "--key", "key.yaml"], ["question 1 (w)", "credit"],
            files={"answers.csv": ANSWERS, "key.yaml": "questions:\n  - {id: w, model: unet, quantity: weights,\n"
                                                       "     conventions: {weighted: 1.5}}\n"}),
    CliCase("grade-key-aliases", ["grade", "answers.csv", "--key", "key.yaml"], ["--key", "anchor"],
            files={"answers.csv": ANSWERS, "key.yaml": "q: &q {id: w, model: unet, quantity: weights}\n"
                                                       "questions: [*q]\n"}),
    CliCase("grade-answers-directory", ["grade", "adir", "--key", "key.yaml"], ["ANSWERS", "adir", "directory"],
            files={"key.yaml": KEY}, setup=lambda t: (t / "adir").mkdir()),
    CliCase("grade-out-is-a-file", ["grade", "answers.csv", "--key", "key.yaml", "--out", "f.txt"],
            ["--out", "f.txt", "not a directory"], files={"answers.csv": ANSWERS, "key.yaml": KEY, "f.txt": "x"}),
    CliCase("grade-out-unwritable", ["grade", "answers.csv", "--key", "key.yaml", "--out", "/proc/archcount-grades"],
            ["--out", "/proc/archcount-grades"], files={"answers.csv": ANSWERS, "key.yaml": KEY}),
    CliCase("grade-answers-csv-5000-digits", ["grade", "a.csv", "--key", "key.yaml"], [], status=0,
            files={"a.csv": "student,w,p\nana," + "9" * 5000 + ",p=1\n", "key.yaml": KEY}, timeout=60),
]

API_NAMES = ("switches", "convention", "formula", "input_size", "kernel", "stride", "input", "NF", "factor",
             "entries")


def _check(*args, **kw):
    from analysis.checker import check
    return check(*args, **kw)


def _count(*args, **kw):
    from analysis import count
    return count(*args, **kw)


def _s():
    from analysis.symbols import NC, NF, NIC, H, W, k
    return NIC, NF, NC, k, H, W


API = [
    # ---- item 4: Python arguments of the wrong type
    ApiCase("check-switches-int", lambda: _check("NF", "unet", "weights", switches=5), ["switches"]),
    ApiCase("check-convention-int", lambda: _check("NF", "unet", "weights", convention=123), ["convention"]),
    ApiCase("check-10-to-5000", lambda: _check(10 ** 5000, "unet", "weights"), ["formula", "bits"]),
    ApiCase("check-sympy-too-large", lambda: _check(sum(_s()) ** 64, "unet", "weights"), ["formula", "too large"],
            timeout=3),
    ApiCase("check-sympy-huge-exponent", lambda: _check(_s()[1] ** 1000, "unet", "weights"), ["formula", "exponent"],
            timeout=3),
    ApiCase("count-switches-int", lambda: _count("unet", switches=5), ["switches"]),
    ApiCase("count-convention-int", lambda: _count("unet", convention=123), ["convention"]),
    ApiCase("count-switches-mapping-of-junk", lambda: _count("unet", switches={"bias": [1]}), ["bias"]),
    ApiCase("check-input-size-huge", lambda: _check("NF", "unet", "weights", input_size=10 ** 16), ["input_size"]),
    ApiCase("check-input-size-float", lambda: _check("NF", "unet", "weights", input_size=(1.5, 2)), ["input_size"]),
    ApiCase("check-kernel-huge", lambda: _check("NF", "unet", "weights", kernel=10 ** 6), ["kernel"]),
    ApiCase("check-hparam-text", lambda: _check("NF", "unet", "weights", NF="abc"), ["NF"]),
    ApiCase("check-nan", lambda: _check(float("nan"), "unet", "weights"), ["formula", "finite"]),
    ApiCase("check-unknown-sympy-symbol", lambda: _check(sp.Symbol("x"), "unet", "weights"), ["formula", "x"]),
    ApiCase("check-model-int", lambda: _check("NF", 123, "weights"), ["model"]),
    ApiCase("check-padding-stride-huge", lambda: __import__("analysis.checker", fromlist=["x"]).check_padding(
        "p=1", 3, stride=10 ** 9), ["stride"]),
    ApiCase("check-padding-transposed-text", lambda: __import__("analysis.checker", fromlist=["x"]).check_padding(
        "p=1", 3, transposed="yes"), ["transposed"]),
    ApiCase("check-shape-input-huge", lambda: __import__("analysis.checker", fromlist=["x"]).check_shape(
        "1x1x1", "conv k=3", (3, 10 ** 9, 10 ** 9)), ["input"], timeout=3),
    ApiCase("check-shape-claim-object", lambda: __import__("analysis.checker", fromlist=["x"]).check_shape(
        object(), "conv k=3", "3x8x8"), ["shape"]),
    ApiCase("check-scaled-factor-huge", lambda: __import__("analysis.checker", fromlist=["x"]).check_scaled(
        "4x", "unet", "weights", factor=10 ** 9), ["factor"]),
    ApiCase("check-many-not-a-list", lambda: __import__("analysis.checker.batch", fromlist=["x"]).check_many(42),
            ["entries"]),
    ApiCase("grade-key-question-without-quantity", lambda: __import__(
        "analysis.checker.grading", fromlist=["x"]).parse_key({"questions": [{"id": "a", "model": "unet"}]}),
        ["question 1 (a)", "quantity"]),
]


@pytest.mark.parametrize("case", CLI, ids=str)
def test_cli_bad_input(case, tmp_path):
    run_cli_case(case, tmp_path)


@pytest.mark.parametrize("case", API, ids=str)
def test_api_bad_input(case):
    run_api_case(case)


def test_a_wrong_entry_does_not_stop_the_others(tmp_path, capsys):
    """The good entry after the bad ones is still checked and judged right."""
    from reports.cli import main
    sheet = tmp_path / "a.yaml"
    sheet.write_text("- {id: a, model: unet, quantity: weights, formula: NF, switches: 123}\n"
                     "- {id: b, model: unet, quantity: weights, formula: " + "9" * 5000 + "}\n" + GOOD)
    assert main(["check", "--file", str(sheet), "--format", "csv"]) == 2
    out = capsys.readouterr().out
    assert "good,formula,pool_upsample weights" in out and "right (weighted, all-layers)" in out


def test_size_1e12_is_a_closed_form():
    """At 10^12 the count is the symbolic table evaluated, not an enumeration (the harness cases
    above bound the time); the value agrees with the count written out by hand."""
    from analysis.checker import check
    from analysis.symbols import NC, NF, NIC
    n = 10 ** 12
    # ConvTransposeNet outputs by hand: NF (n/2)^2 + 2NF (n/4)^2 + NF (n/2)^2 + NC n^2 + NC n^2 (n even)
    hand = NF * (n // 2) ** 2 + 2 * NF * (n // 4) ** 2 + NF * (n // 2) ** 2 + 2 * NC * n ** 2
    r = check(hand, "conv_transpose", "outputs", input_size=n, kernel=3)
    assert r.ok, r.explanations
    assert NIC not in sp.sympify(r.expected).free_symbols
