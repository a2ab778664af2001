"""Answer forms (issue 15, item 1): relations, alternatives, chained working, a symbolic kernel.

The right paddings are measured here with torch (meta tensors: shapes only), independently of the
solver: a (padding, output_padding) is right when torch's output size is exactly in/s (conv) or
s*in (transposed) for every input size of the class.
"""
from __future__ import annotations

import pytest
import sympy as sp
import torch

from analysis import ArchcountError
from analysis.checker import check, check_padding
from analysis.parsing import parse_answer
from analysis.symbols import NC, NF, NIC
from reports.checking import explain

SIZES = range(2, 41, 2)   # even input sizes (the class a stride-2 conv halves exactly)


def _out(n: int, kernel: int, stride: int, p: int, op: int, transposed: bool) -> int:
    if transposed:
        layer = torch.nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=p, output_padding=op, device="meta")
    else:
        layer = torch.nn.Conv2d(1, 1, kernel, stride=stride, padding=p, device="meta")
    return layer(torch.empty(1, 1, n, n, device="meta")).shape[-1]


def measured_right(kernel: int, stride: int, transposed: bool) -> set[tuple[int, int]]:
    """The (p, op) torch maps every n in SIZES (or 1..40 for stride 1) to n/s (conv) or s*n (transposed)."""
    sizes = SIZES if stride > 1 and not transposed else range(1, 41)
    out = set()
    for p in range(0, kernel + 1):
        for op in (range(stride) if transposed else [0]):
            try:
                got = [_out(n, kernel, stride, p, op, transposed) for n in sizes]
            except RuntimeError:      # torch refuses (output too small)
                continue
            want = [n * stride if transposed else n // stride for n in sizes]
            if got == want:
                out.add((p, op))
    return out


# ================================================================================= relations and values

def test_the_relation_from_the_write_up_is_right():
    right = measured_right(4, 2, transposed=True)
    assert right == {(1, 0)}
    for text in ("2·padding − output_padding = 2", "2p - op = 2", r"2 p - \text{op} = 2", "2p = op + 2"):
        r = check_padding(text, 4, stride=2, transposed=True)
        assert r.ok and r.form == "relation", (text, explain(r))
        assert set(r.admitted) == right


def test_a_relation_is_judged_by_its_solution_set():
    right = measured_right(4, 2, transposed=True)            # {(1, 0)}
    r = check_padding("2p - op = 1", 4, stride=2, transposed=True)   # admits (1, 1): not right
    assert not r.ok and set(r.admitted) == {(1, 1)} and not (set(r.admitted) & right)
    assert "it admits p=1, op=1" in r.explanations[0] and "it excludes p=1, op=0" in r.explanations[0]
    r = check_padding("op = 0", 4, stride=2, transposed=True)        # p left free
    assert not r.ok and "holds for every p" in r.explanations[0]
    r = check_padding("p + op = 1", 4, stride=2, transposed=True)    # admits (1, 0) and (0, 1)
    assert not r.ok and set(r.admitted) == {(1, 0), (0, 1)}


@pytest.mark.parametrize("kernel,stride,transposed", [(3, 2, False), (5, 2, False), (4, 2, True), (5, 2, True),
                                                      (3, 1, False), (5, 1, False), (3, 2, True)])
def test_plain_values_match_torch(kernel, stride, transposed):
    right = measured_right(kernel, stride, transposed)
    for p in range(0, 4):
        for op in (range(stride) if transposed else [0]):
            claim = f"p={p} op={op}" if transposed else f"p={p}"
            assert check_padding(claim, kernel, stride, transposed=transposed).ok == ((p, op) in right), claim
            relation = f"p = {p}, op = {op}" if transposed else f"padding = {p}"
            assert check_padding(relation, kernel, stride, transposed=transposed).ok == ((p, op) in right)


# ======================================================================================== alternatives

def test_alternatives_are_each_judged_and_the_wrong_one_named():
    right = measured_right(4, 2, transposed=False)
    assert right == {(1, 0)}
    for text in ("p = 1 or p = 2", "p ∈ {1, 2}", r"p \in \{1, 2\}", r"$p = 1 \lor p = 2$"):
        r = check_padding(text, 4, stride=2)
        assert not r.ok and r.form == "alternatives", text
        assert [a.ok for a in r.alternatives] == [True, False]
        assert r.explanations[0].startswith("alternative 2 (p = 2) is wrong: p=2 gives H/2 + 1")
    r = check_padding("p = 1 or p = 1", 4, stride=2)
    assert r.ok


def test_alternatives_of_a_count_formula():
    right = 9 * NIC * NF + 36 * NF**2 + 9 * NF * NC + 9 * NC**2
    r = check(f"{sp.sstr(right)} or 9 NIC NF", "pool_upsample", "weights")
    assert not r.ok and [a.ok for a in r.alternatives] == [True, False]
    assert r.verdict == "wrong: alternative 2 (9 NIC NF) is wrong"


# ======================================================================================== chained working

def test_chained_working_every_link_judged():
    # ConvTransposeNet outputs at 32 x 32 (k = 3), by hand: NF 16^2 + 2NF 8^2 + NF 16^2 + NC 32^2 + NC 32^2
    hand = "NF*16*16 + 2*NF*8*8 + NF*16*16 + 2*32*32*NC"
    r = check(f"outputs = {hand} = 640 NF + 2048 NC", "conv_transpose", "outputs", input_size=32, kernel=3)
    assert r.ok and r.form == "chain" and [s.holds for s in r.steps] == [True]
    r = check(f"{hand} = 640 NF + 1024 NC = 1664 NC", "conv_transpose", "outputs", input_size=32, kernel=3)
    assert not r.ok and [s.holds for s in r.steps] == [False, False] and r.first_wrong_step == 1
    assert r.explanations[0].startswith("step 1 does not hold") and "up to it the working equals" in r.explanations[0]


def test_the_chain_from_the_write_up_parses():
    a = parse_answer("32 * 32 * NC = 1024NC")
    assert a.form == "chain" and a.alternatives[0][0].sides == (1024 * NC, 1024 * NC)
    r = check("32 * 32 * NC = 1024NC", "conv_transpose", "outputs", input_size=32, kernel=3)
    assert r.steps[0].holds and not r.ok and r.first_wrong_step == 0
    assert "every step of the working holds" in r.explanations[0]


def test_a_right_final_count_after_a_false_step_is_wrong():
    r = check("9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2 = 9 (NIC NF + 4 NF^2 + NF NC) = 9 (NIC NF + 4 NF^2 + NF NC + NC^2)",
              "pool_upsample", "weights")
    assert not r.ok and [s.holds for s in r.steps] == [False, False] and r.first_wrong_step == 1
    assert r.verdict.startswith("wrong: the final count is right, but step 1")


# ======================================================================================== symbolic kernel

def test_symbolic_kernel_relation_for_every_k():
    # keeping the size with stride 1: torch says p = (k-1)/2 for odd k, nothing for even k
    for kv in range(1, 10):
        want = {((kv - 1) // 2, 0)} if kv % 2 else set()
        assert measured_right(kv, 1, False) == want
    r = check_padding("p = (k-1)/2", "k")
    assert r.ok and r.failing_kernels == ()
    r = check_padding("p = k // 2", "k")            # k/2 for even k: no padding keeps an even kernel's size
    assert not r.ok and r.failing_kernels[:3] == (2, 4, 6)
    r = check_padding("p = floor((k-1)/2)", "k", stride=2)   # halving: torch-measured below
    for kv in range(1, 8):
        assert ((kv - 1) // 2, 0) in measured_right(kv, 2, False)
    assert r.ok


def test_symbolic_kernel_formula():
    r = check("k^2 (NIC NF + 4 NF^2 + NF NC + NC^2)", "pool_upsample", "weights", kernel="k")
    assert r.ok and "kept symbolic" in r.assumptions[0]
    r = check("9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2", "pool_upsample", "weights", kernel="k")
    assert not r.ok and r.slip_names == ("kernel-substituted",) and "right for k=3" in r.explanations[0]
    assert check("9 NIC NF + 36 NF^2 + 9 NF NC + 9 NC^2", "pool_upsample", "weights").ok   # k = 3 assumed


def test_cli_kernel_k(capsys):
    from reports.cli import main
    assert main(["check", "--padding", "p = (k-1)/2", "--kernel", "k"]) == 0
    assert "right for every kernel size" in capsys.readouterr().out
    assert main(["check", "k^2 (NIC NF + 4NF^2 + NF NC + NC^2)", "--model", "pool_upsample", "--quantity",
                 "weights", "--kernel", "k"]) == 0


# ======================================================================================== parse_answer

@pytest.mark.parametrize("text,form,n_alts", [
    ("9 NIC NF", "expression", 1), ("weights = 9 NIC NF", "expression", 1), ("a = 9 NF = 9NF", "chain", 1),
    ("p = 1 or p = 2", "alternatives", 2), ("p ∈ {1, 2, 3}", "alternatives", 3), ("p = 1, op = 0", "system", 1),
    ("p=1; op=0 or p=2 and op=1", "alternatives", 2), ("2p - op = 2", "relation", 1)])
def test_parse_answer_forms(text, form, n_alts):
    p, op = sp.Symbol("p"), sp.Symbol("op")
    a = parse_answer(text, unknowns={"p": p, "op": op})
    assert a.form == form and len(a.alternatives) == n_alts


@pytest.mark.parametrize("text,message", [("p = ", "nothing after '='"), ("or p = 1", "nothing before 'or'"),
                                          ("p ∈ 1, 2", "expected a set"), ("p ∈ {1} ∈ {2}", "more than one '∈'"),
                                          ("p = " + " or p = ".join(map(str, range(20))), "more than 16 alternatives")])
def test_parse_answer_errors(text, message):
    with pytest.raises(ArchcountError, match=message):
        parse_answer(text, unknowns={"p": sp.Symbol("p")})


def test_parse_formula_keeps_one_formula():
    from analysis.parsing import parse_formula
    with pytest.raises(ArchcountError, match="'or'"):
        parse_formula("NF or NC")
    with pytest.raises(ArchcountError, match="one formula is expected"):
        parse_formula("NF ∈ {1}")
    assert parse_answer("NF or NC").form == "alternatives"
    assert parse_answer("NF or NC").alternatives[1][0].sides == (NC,)


# ======================================================================================== rendering

def test_notebook_reprs_delegate_to_reports():
    from analysis.checker import check_scaled, check_shape
    from reports import checking
    r = check("9 NIC NF + 27 NF^2 + 9 NF NC + 9 NC^2", "pool_upsample", "weights")
    assert r._repr_markdown_() == checking.markdown(r) and "| NF^2 | 36 | **27** |" in r._repr_markdown_()
    assert r._repr_latex_().startswith("$") and "36 NF^{2}" in r._repr_latex_()
    assert r._repr_html_().startswith("<pre>") and "per-term table" in r._repr_html_()
    for res in (check_shape("16x513x385", "conv k=5 s=2 p=1 out=16", "3x1024x768"),
                check_padding("p = 1 or p = 2", 4, stride=2), check_scaled("4x", "unet", "weights")):
        assert res.verdict in res._repr_markdown_() and res._repr_latex_().startswith("$")
        assert explain(res) in res._repr_html_().replace("&gt;", ">").replace("&#x27;", "'")
    assert not hasattr(r, "explain") and not hasattr(r, "table")    # rendering lives in reports


def test_layer_text_input_channels():
    from analysis.layertext import layer_output_shape, parse_layer
    layer = parse_layer("conv k=5 s=2 p=1 in=3 out=16")
    assert layer.in_channels == 3 and str(layer) == "conv k=5 s=2 p=1 in=3 out=16" and parse_layer(str(layer)) == layer
    conv = torch.nn.Conv2d(3, 16, 5, stride=2, padding=1, device="meta")
    assert layer_output_shape(layer, "3x32x32").output_shape == tuple(conv(torch.empty(1, 3, 32, 32,
                                                                                  device="meta")).shape[1:])
    with pytest.raises(RuntimeError):                     # torch refuses 8 channels too
        conv(torch.empty(1, 8, 32, 32, device="meta"))
    with pytest.raises(ArchcountError, match="in=3 channels, but the input has 8") as info:
        layer_output_shape(layer, "8x32x32")
    assert info.value.argument == "in"
    assert "in= is not checked" in " ".join(layer_output_shape(layer, "32x32").notes)
